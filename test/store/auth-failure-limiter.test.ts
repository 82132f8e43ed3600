// The per-address limiter of failed authentications, and the counter store under it.

import Fastify from 'fastify'
import type { Test } from 'tap'
import t from 'tap'
import { sha256Hex } from '../../src/credentials.js'
import { registerAuthFailureLimiter } from '../../src/http/admission/rate-limit.js'
import { newRequestContext, type RequestContext } from '../../src/http/request-context.js'
import { KnownGoodCredentials } from '../../src/policy/known-good.js'
import { AuthFailureLimiter, addressKey } from '../../src/store/auth-failure-limiter.js'
import { LocalCounterStore } from '../../src/store/counter-store.js'
import { validPolicy } from '../policy/fixtures.js'

t.test('LocalCounterStore: fixed windows, bounded keys', async (t) => {
  let now = 0
  const store = new LocalCounterStore({ clock: () => now, maxKeys: 2 })
  t.same(await store.incr('a', 1000), { count: 1, resetAt: 1000 })
  now = 500
  t.same(await store.incr('a', 1000), { count: 2, resetAt: 1000 }, 'the window does not slide')
  t.same(await store.get('a'), { count: 2, resetAt: 1000 })
  t.equal(await store.get('missing'), null)
  now = 1000
  t.equal(await store.get('a'), null, 'expired at resetAt')
  t.same(await store.incr('a', 1000), { count: 1, resetAt: 2000 })
  await store.incr('b', 1000)
  await store.incr('c', 1000)
  t.equal(store.size, 2, 'the least recently used key is forgotten')
  t.equal(await store.get('a'), null)
  const real = new LocalCounterStore()
  t.equal((await real.incr('x', 60_000)).count, 1, 'defaults: Date.now, 10000 keys')
})

t.test('addressKey: IPv4 as is, IPv6 by /64, mapped IPv4 as IPv4', async (t) => {
  t.equal(addressKey('192.0.2.7'), 'authfail:192.0.2.7')
  t.equal(addressKey('::ffff:192.0.2.7'), 'authfail:192.0.2.7')
  t.equal(addressKey('2001:db8:1:2:3:4:5:6'), 'authfail:2001:db8:1:2::/64')
  t.equal(addressKey('2001:db8:1:2::ffff'), 'authfail:2001:db8:1:2::/64')
  t.equal(addressKey('garbage'), 'authfail:garbage')
})

t.test('AuthFailureLimiter: blocked after max failures until the window ends', async (t) => {
  let now = 10_000
  let limit = { max: 3, timeWindowMs: 60_000 }
  const limiter = new AuthFailureLimiter({
    store: new LocalCounterStore({ clock: () => now }),
    limit: () => limit,
    clock: () => now,
  })
  for (let i = 0; i < 3; i++) {
    t.same(await limiter.isBlocked('192.0.2.1'), { blocked: false, retryAfterSeconds: 0 })
    await limiter.recordFailure('192.0.2.1')
  }
  now += 20_500
  t.same(await limiter.isBlocked('192.0.2.1'), { blocked: true, retryAfterSeconds: 40 })
  t.same(await limiter.isBlocked('192.0.2.2'), { blocked: false, retryAfterSeconds: 0 }, 'per address')
  now += 39_500
  t.same(await limiter.isBlocked('192.0.2.1'), { blocked: false, retryAfterSeconds: 0 }, 'window over')
  limit = { max: 0, timeWindowMs: 60_000 }
  for (let i = 0; i < 5; i++) await limiter.recordFailure('192.0.2.3')
  t.same(await limiter.isBlocked('192.0.2.3'), { blocked: false, retryAfterSeconds: 0 }, 'max 0: off')
  const defaults = new AuthFailureLimiter({
    store: new LocalCounterStore(),
    limit: () => ({ max: 1, timeWindowMs: 1000 }),
  })
  await defaults.recordFailure('192.0.2.9')
  t.equal((await defaults.isBlocked('192.0.2.9')).blocked, true)
})

/** A Fastify app with the limiter, whose route plays Trisul: token "good" is accepted, anything else refused. */
async function limitedApp(t: Test, gatewayYaml: string, now: () => number, exemptRoutes?: string[]) {
  const holder = { current: await validPolicy(t, { 'gateway.yaml': gatewayYaml }) }
  const knownGood = new KnownGoodCredentials({ seconds: () => 600, clock: now })
  const app = Fastify()
  app.decorateRequest('gw', null as unknown as RequestContext)
  app.decorateRequest('upstreamAuth', null)
  app.addHook('onRequest', async (request) => {
    request.gw = newRequestContext(holder.current)
  })
  registerAuthFailureLimiter(app, {
    store: holder,
    clock: now,
    counterStore: new LocalCounterStore({ clock: now }),
    knownGood,
    ...(exemptRoutes ? { exemptRoutes } : {}),
  })
  app.get('/api/x', async (request, reply) => {
    const token = String(request.headers.authorization ?? '').replace(/^Bearer /, '')
    request.gw.operation = 'list'
    request.upstreamAuth = { username: 'crm', token, tokenHash: sha256Hex(token), context: 'default' }
    if (token !== 'good') return reply.code(401).send({ code: 'IPDR_GW_UPSTREAM_INVALID_TOKEN' })
    return { ok: true }
  })
  app.get('/healthz', async (_request, reply) => reply.code(401).send('probe 401'))
  app.get('/readyz', async () => 'ready')
  t.teardown(() => app.close())
  return { app, knownGood }
}

t.test(
  'registerAuthFailureLimiter: unproven credentials are charged as they start, refunded when Trisul accepts them',
  async (t) => {
    let now = 1_700_000_000_000
    const { app } = await limitedApp(
      t,
      'auth: { failureLimit: { max: 2, timeWindow: "1 minute" } }\n',
      () => now,
    )
    const attempt = (token: string, remoteAddress = '198.51.100.7') =>
      app.inject({
        url: '/api/x',
        headers: { authorization: `Bearer ${token}`, 'x-trisul-username': 'crm' },
        remoteAddress,
      })

    t.equal((await attempt('bad1')).statusCode, 401)
    t.equal((await attempt('good')).statusCode, 200, 'a token Trisul accepts is refunded')
    t.equal((await attempt('bad2')).statusCode, 401)
    now += 10_000
    const blocked = await attempt('bad3')
    t.equal(blocked.statusCode, 429, 'the third unproven request is past the budget of 2')
    t.same(blocked.json(), {
      statusCode: 429,
      error: 'Too Many Requests',
      code: 'IPDR_GW_AUTH_RATE_LIMITED',
      message: 'Too many failed authentications from this address',
    })
    t.equal(blocked.headers['retry-after'], '50')
    t.equal(
      (await attempt('good')).statusCode,
      200,
      'a proven token is not refused by the block (SPEC 13: NAT)',
    )
    t.equal((await attempt('bad4', '198.51.100.8')).statusCode, 401, 'other addresses are not affected')
    t.equal(
      (await app.inject({ url: '/readyz', remoteAddress: '198.51.100.7' })).statusCode,
      200,
      'probes exempt',
    )
    now += 50_000
    t.equal((await attempt('bad5')).statusCode, 401, 'the window ended')
  },
)

t.test('registerAuthFailureLimiter: parallel guesses cannot outrun the budget', async (t) => {
  const now = 5_000
  const { app } = await limitedApp(t, 'auth: { failureLimit: { max: 5, timeWindow: 1000 } }\n', () => now)
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      app.inject({
        url: '/api/x',
        headers: { authorization: `Bearer guess${i}`, 'x-trisul-username': 'crm' },
        remoteAddress: '203.0.113.9',
      }),
    ),
  )
  t.equal(answers.filter((r) => r.statusCode === 401).length, 5, 'only the budget reached the route')
  t.equal(answers.filter((r) => r.statusCode === 429).length, 45)
})

t.test('registerAuthFailureLimiter: exempt routes are neither charged nor blocked', async (t) => {
  const now = 5_000
  const { app } = await limitedApp(t, 'auth: { failureLimit: { max: 1, timeWindow: 1000 } }\n', () => now, [
    '/healthz',
  ])
  t.equal((await app.inject('/healthz')).statusCode, 401)
  t.equal((await app.inject('/healthz')).statusCode, 401, 'exempt: not blocked')
  t.equal((await app.inject('/api/x')).statusCode, 401, 'the first unproven request')
  const r = await app.inject('/api/x')
  t.equal(r.statusCode, 429, 'then the address is blocked')
  t.equal(r.headers['retry-after'], '1')
  t.equal((await app.inject('/nowhere')).statusCode, 429, 'unknown routes are blocked too')
})
