/**
 * SPEC 14's `access` lines: every answer that discloses subscriber data writes exactly one, on every
 * path that answers — the hit below Fastify, the `onRequest` fast path, the routes (plain listing,
 * filter, single read, mapping read, IP-at-time lookup) — with the Trisul user and context; a `304`
 * sends no record and writes none; past `audit.readUserIds` a count and the digest of the sorted
 * UserIDs; `audit.reads: false` writes none. Written against the real emulator.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startEmulator } from '../../src/emulator/index.js'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway, tempDir } from '../helpers/gateway.js'

const ALICE = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }

async function setup(t: Test, audit: Record<string, unknown>) {
  const emu = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [{ name: 'alice', token: 'tokA', contexts: null }],
    seed: 5,
    seedMappings: true,
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  const file = join(tempDir(t), 'audit.jsonl')
  const policy = await makePolicy(t, {
    gateway: { audit: { file, ...audit }, cache: { ttlSeconds: 300 } },
    consumers: { default: PERMISSIVE_DEFAULT },
  })
  let fastify = 0
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: emu.url,
    prepare: (app: FastifyInstance) =>
      app.addHook('onResponse', async () => {
        fastify++
      }),
  })
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`${gw.url}${path}`, { headers: { ...ALICE, ...headers } })
    const text = await res.body.text()
    return { status: res.statusCode, headers: res.headers, text }
  }
  const lines = () =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.phase === 'access')
  /** The access lines after `before`, once `n` have come (bounded), and no more a moment later. */
  const next = async (before: number, n: number) => {
    const deadline = Date.now() + 5000
    while (lines().length < before + n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    await new Promise((r) => setTimeout(r, 50))
    return lines().slice(before)
  }
  return { gw, get, lines, next, fastify: () => fastify }
}

t.test('one access line per disclosing answer, on every path; none for a 304', async (t) => {
  const { get, lines, next, fastify } = await setup(t, {})
  const customers = JSON.parse((await get('/api/ipdrcustomers')).text) as { UserID: string; id: number }[]
  const all = customers.map((c) => c.UserID).sort()
  let seen = 0
  const expectOne = async (what: string, shape: Record<string, unknown>) => {
    const got = await next(seen, 1)
    t.equal(got.length, 1, `${what}: exactly one access line`)
    t.match(
      got[0],
      {
        phase: 'access',
        consumer: 'default',
        trisulUser: 'alice',
        context: 'default',
        status: 200,
        ...shape,
      },
      what,
    )
    seen += got.length
    return got[0] as Record<string, unknown>
  }
  const line = await expectOne('a miss through the route', {
    resource: 'customers',
    operation: 'list',
    count: 5,
    userIds: all,
  })
  t.match(line, { client: '127.0.0.1', redacted: [] })
  t.notOk(JSON.stringify(line).includes('tokA'), 'no token in the line')

  const before = fastify()
  const hit = await get('/api/ipdrcustomers')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.equal(fastify(), before, 'answered below Fastify')
  await expectOne('a hit below Fastify', { resource: 'customers', operation: 'list', count: 5, userIds: all })

  const viaHook = await get('/api/ipdrcustomers', { origin: 'https://crm.example' })
  t.equal(viaHook.headers['x-cache'], 'HIT')
  await expectOne('a hit on the onRequest fast path', { operation: 'list', count: 5, userIds: all })

  const etag = hit.headers.etag as string
  const notModified = await get('/api/ipdrcustomers', { 'if-none-match': etag })
  t.equal(notModified.status, 304)
  t.equal((await next(seen, 1)).length, 0, 'a 304 discloses nothing and writes no line')

  const target = all[2] as string
  await get(`/api/ipdrcustomers?UserID=${target}`)
  await expectOne('a filter', { operation: 'list', query: { UserID: target }, count: 1, userIds: [target] })
  await get('/api/ipdrcustomers?limit=2&offset=1')
  await expectOne('a page', { operation: 'list', count: 2, query: { limit: '2', offset: '1' } })
  await get(`/api/ipdrcustomers/${target}`)
  await expectOne('a single read', {
    operation: 'read',
    count: 1,
    userIds: [target],
    query: { UserID: target },
  })
  const readAgain = await get(`/api/ipdrcustomers/${target}`)
  t.equal(
    (await get(`/api/ipdrcustomers/${target}`, { 'if-none-match': readAgain.headers.etag as string })).status,
    304,
  )
  await expectOne('the second read (its 304 wrote none)', { operation: 'read', userIds: [target] })

  const mappings = JSON.parse((await get('/api/ipdrcustomers_mapping')).text) as {
    ipsubnet: string
    UserID: string
  }[]
  t.equal(mappings.length, 5)
  // A mapping names its customer (SPEC 17), so its line can too: `audit search --user-id` finds it.
  await expectOne('a mapping listing names the customers', {
    resource: 'mappings',
    operation: 'list',
    count: mappings.length,
    userIds: [...new Set(mappings.map((m) => m.UserID))].sort(),
  })
  const first = mappings[0] as { ipsubnet: string; UserID: string }
  await get(`/api/ipdrcustomers_mapping?ip=${first.ipsubnet}`)
  await expectOne('who had this IP: the customer it disclosed', {
    resource: 'mappings',
    operation: 'read',
    query: { ip: first.ipsubnet },
    count: 1,
    userIds: [first.UserID],
  })
  await get(`/api/ipdrcustomers_mapping/${target}`)
  await expectOne('a mapping read by UserID', { resource: 'mappings', operation: 'read', userIds: [target] })
  t.equal(lines().length, seen, 'nothing else was written')
})

t.test('past audit.readUserIds: a count and the digest of the sorted UserIDs', async (t) => {
  const { get, next } = await setup(t, { readUserIds: 2 })
  const customers = JSON.parse((await get('/api/ipdrcustomers')).text) as { UserID: string }[]
  const [line] = await next(0, 1)
  const sorted = customers.map((c) => c.UserID).sort()
  t.match(line, { count: 5, userIdsDigest: createHash('sha256').update(sorted.join('\n')).digest('hex') })
  t.notOk(line && 'userIds' in line, 'no list past the limit')
})

t.test('audit.reads: false writes no access line', async (t) => {
  const { get, lines } = await setup(t, { reads: false })
  await get('/api/ipdrcustomers')
  await get('/api/ipdrcustomers')
  await get('/api/ipdrcustomers?limit=1')
  await new Promise((r) => setTimeout(r, 100))
  t.equal(lines().length, 0)
})
