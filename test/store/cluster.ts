/**
 * Several gateway instances over one upstream and one real Redis, for the
 * shared-store tests (not a test file).
 */
import type { Test } from 'tap'
import { request } from 'undici'
import type { AppOptions } from '../../src/app.js'
import { startEmulator } from '../../src/emulator/index.js'
import { makePolicy, type PolicySpec, startGateway, type TestGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'
import type { TestRedis } from '../helpers/redis-server.js'

export const ALICE = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }

export interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  ms: number
}

export async function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = ALICE,
  body?: unknown,
): Promise<Reply> {
  const started = performance.now()
  const res = await request(`${base}${path}`, {
    method: method as 'GET',
    headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, ms: performance.now() - started }
}

/** `n` gateways with the same policy (its `store.redis` naming `redis`), listening on loopback. */
export async function startInstances(
  t: Test,
  opts: {
    n: number
    /** The store's URL; null with `redisOverrides` naming sentinels or a cluster. */
    redis: Pick<TestRedis, 'url'> | { url: null }
    upstreamUrl: string
    spec?: PolicySpec
    redisOverrides?: Record<string, unknown>
    app?: Partial<Omit<AppOptions, 'policy'>>
  },
): Promise<TestGateway[]> {
  const spec = opts.spec ?? {}
  const policy = await makePolicy(t, {
    ...spec,
    gateway: {
      cache: { ttlSeconds: 300 },
      ...(spec.gateway ?? {}),
      store: { redis: { url: opts.redis.url, leaseMs: 1000, ...(opts.redisOverrides ?? {}) } },
    },
  })
  const out: TestGateway[] = []
  for (let i = 0; i < opts.n; i++) {
    out.push(await startGateway(t, { policy, upstreamUrl: opts.upstreamUrl, ...(opts.app ?? {}) }))
  }
  return out
}

/** Resolves once every instance serves cached listings (lease held, grace over), bounded. */
export async function untilShared(gateways: readonly TestGateway[], ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const states = await Promise.all(gateways.map((g) => g.app.storeState()))
    if (states.every((s) => s.up && s.servingCached)) return
    if (Date.now() > deadline) throw new Error(`instances not shared in time: ${JSON.stringify(states)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** The emulator with user alice (token tokA) and `seed` customers, in memory, closed with the test. */
export async function startTestEmulator(t: Test, seed: number): Promise<{ url: string }> {
  const emu = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [{ name: 'alice', token: 'tokA', contexts: null }],
    seed,
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  return emu
}

/** `n` instances sharing `redis` over an upstream whose listings are empty, once they all share. */
export async function sharedOverEmptyUpstream(
  t: Test,
  redis: TestRedis,
  n: number,
  gateway: Record<string, unknown>,
): Promise<TestGateway[]> {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const gws = await startInstances(t, { n, redis, upstreamUrl: upstream.url, spec: { gateway } })
  await untilShared(gws)
  return gws
}
