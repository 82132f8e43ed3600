// The per-address limiter of failed authentications, and the counter store under it.
import Fastify from 'fastify'
import t from 'tap'
import { registerAuthFailureLimiter } from '../../src/http/rate-limit.js'
import { AuthFailureLimiter, addressKey } from '../../src/policy/auth-failure-limiter.js'
import { LocalCounterStore } from '../../src/policy/counter-store.js'
import { validPolicy } from './fixtures.js'

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

t.test('registerAuthFailureLimiter: 401s count, then 429 IPDR_GW_AUTH_RATE_LIMITED', async (t) => {
  let now = 1_700_000_000_000
  const holder = {
    current: await validPolicy(t, {
      'gateway.yaml': 'auth: { failureLimit: { max: 2, timeWindow: "1 minute" } }\n',
    }),
  }
  const app = Fastify()
  registerAuthFailureLimiter(app, { store: holder, clock: () => now })
  app.get('/api/x', async (request, reply) => {
    if (request.headers.authorization !== 'Bearer good')
      return reply.code(401).send({ code: 'IPDR_GW_MISSING_CREDENTIALS' })
    return { ok: true }
  })
  app.get('/healthz', async (_request, reply) => reply.code(401).send('probe 401'))
  app.get('/readyz', async () => 'ready')
  t.teardown(() => app.close())

  const attempt = (token: string, remoteAddress = '198.51.100.7') =>
    app.inject({ url: '/api/x', headers: { authorization: `Bearer ${token}` }, remoteAddress })

  t.equal((await attempt('bad1')).statusCode, 401)
  t.equal((await attempt('good')).statusCode, 200, 'successes do not count')
  t.equal((await attempt('bad2')).statusCode, 401)
  now += 10_000
  const blocked = await attempt('good')
  t.equal(blocked.statusCode, 429, 'even a good token waits: guessing cannot be confirmed')
  t.same(blocked.json(), {
    statusCode: 429,
    error: 'Too Many Requests',
    code: 'IPDR_GW_AUTH_RATE_LIMITED',
    message: 'Too many failed authentications from this address',
  })
  t.equal(blocked.headers['retry-after'], '50')
  t.equal((await attempt('good', '198.51.100.8')).statusCode, 200, 'other addresses are not affected')
  t.equal(
    (await app.inject({ url: '/readyz', remoteAddress: '198.51.100.7' })).statusCode,
    200,
    'probes exempt',
  )
  now += 50_000
  t.equal((await attempt('good')).statusCode, 200, 'the window ended')
})

t.test('registerAuthFailureLimiter: exempt routes do not block but their 401s count', async (t) => {
  const now = 5_000
  const holder = {
    current: await validPolicy(t, {
      'gateway.yaml': 'auth: { failureLimit: { max: 1, timeWindow: 1000 } }\n',
    }),
  }
  const app = Fastify()
  registerAuthFailureLimiter(app, {
    store: holder,
    clock: () => now,
    counterStore: new LocalCounterStore({ clock: () => now }),
    exemptRoutes: ['/metrics'],
  })
  app.get('/metrics', async (_r, reply) => reply.code(401).send('token needed'))
  app.get('/api/x', async () => 'ok')
  t.teardown(() => app.close())
  t.equal((await app.inject('/metrics')).statusCode, 401)
  t.equal((await app.inject('/metrics')).statusCode, 401, 'exempt: not blocked')
  const r = await app.inject('/api/x')
  t.equal(r.statusCode, 429, 'a scrape-token guess counts as a failed authentication')
  t.equal(r.headers['retry-after'], '1')
  t.equal((await app.inject('/nowhere')).statusCode, 429, 'unknown routes are blocked too')
})
