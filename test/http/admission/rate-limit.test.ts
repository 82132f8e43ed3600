// Rate limits over a small Fastify app: a stub preValidation hook plays the
// gateway core and sets request.gw; a fake clock drives the windows.
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { apiRouteRateLimitConfig, registerRateLimits } from '../../../src/http/admission/rate-limit.js'
import { newRequestContext, type RequestContext } from '../../../src/http/request-context.js'
import type { Policy } from '../../../src/policy/types.js'
import { LocalCounterStore } from '../../../src/store/counter-store.js'
import { validPolicy } from '../../policy/fixtures.js'

type Holder = { current: Policy }

const GATEWAY = 'rateLimit: { max: 2, timeWindow: "1 minute" }\n'
const CONSUMERS = {
  'consumers/crm.yaml': 'usernames: [crm]\nrateLimit: { max: 3, timeWindow: "1 minute" }\n',
  'consumers/default.yaml': 'operations: { customers: [list] }\n',
}

async function build(
  t: Test,
  holder: Holder,
  clock: () => number,
  limited: string[] = [],
): Promise<FastifyInstance> {
  const app = Fastify()
  app.decorateRequest('gw', null as unknown as RequestContext)
  app.addHook('preValidation', async (request) => {
    const policy = holder.current
    const user = request.headers['x-user']
    const username = typeof user === 'string' ? user : null
    const consumer =
      username === null
        ? null
        : (policy.consumers.find((c) => c.usernames.includes(username)) ??
          policy.consumers.find((c) => c.name === 'default') ??
          null)
    request.gw = {
      ...newRequestContext(policy),
      resource: 'customers',
      operation: 'list',
      consumer,
      consumerName: consumer?.name ?? 'unknown',
      rateKey:
        consumer === null
          ? null
          : consumer.name === 'default'
            ? `default:${username}`
            : `consumer:${consumer.name}`,
    }
  })
  await registerRateLimits(app, { store: holder, clock, onLimited: (c) => limited.push(c) })
  const config = { rateLimit: apiRouteRateLimitConfig() }
  app.get('/api/a', { config }, async () => ({ route: 'a' }))
  app.get('/api/b', { config }, async () => ({ route: 'b' }))
  app.get('/free', async () => ({ route: 'free' }))
  t.teardown(() => app.close())
  await app.ready()
  return app
}

const get = (app: FastifyInstance, url: string, user?: string, remoteAddress = '127.0.0.1') =>
  app.inject({ method: 'GET', url, headers: user === undefined ? {} : { 'x-user': user }, remoteAddress })

t.test('RateLimit-* headers, then 429 with Retry-After and the JSON body', async (t) => {
  let now = 1_700_000_000_000
  const limited: string[] = []
  const holder = { current: await validPolicy(t, { 'gateway.yaml': GATEWAY, ...CONSUMERS }) }
  const app = await build(t, holder, () => now, limited)

  const first = await get(app, '/api/a', 'crm')
  t.equal(first.statusCode, 200)
  t.equal(first.headers['ratelimit-limit'], '3')
  t.equal(first.headers['ratelimit-remaining'], '2')
  t.equal(first.headers['ratelimit-reset'], '60')
  t.notOk(first.headers['x-ratelimit-limit'], 'draft-spec names only')

  now += 15_000
  const second = await get(app, '/api/b', 'crm')
  t.equal(second.headers['ratelimit-remaining'], '1', 'one budget across routes')
  t.equal(second.headers['ratelimit-reset'], '45')
  await get(app, '/api/a', 'crm')

  now += 5_000
  const over = await get(app, '/api/b', 'crm')
  t.equal(over.statusCode, 429)
  t.same(over.json(), {
    statusCode: 429,
    error: 'Too Many Requests',
    code: 'IPDR_GW_RATE_LIMITED',
    message: 'Rate limit exceeded, retry in 40 seconds',
  })
  t.equal(over.headers['retry-after'], '40')
  t.equal(over.headers['ratelimit-limit'], '3')
  t.equal(over.headers['ratelimit-remaining'], '0')
  t.equal(over.headers['ratelimit-reset'], '40')
  t.same(limited, ['crm'])

  now += 40_000
  const again = await get(app, '/api/a', 'crm')
  t.equal(again.statusCode, 200, 'a new window')
  t.equal(again.headers['ratelimit-remaining'], '2')

  const free = await get(app, '/free', 'crm')
  t.equal(free.statusCode, 200)
  t.notOk(free.headers['ratelimit-limit'], 'routes without the config are not limited')
})

t.test('the default consumer is counted per upstream username, with the gateway budget', async (t) => {
  const now = 1_700_000_000_000
  const limited: string[] = []
  const holder = { current: await validPolicy(t, { 'gateway.yaml': GATEWAY, ...CONSUMERS }) }
  const app = await build(t, holder, () => now, limited)
  for (const user of ['alice', 'bob']) {
    const r1 = await get(app, '/api/a', user)
    t.equal(r1.headers['ratelimit-limit'], '2')
    t.equal(r1.headers['ratelimit-remaining'], '1', `${user} has an own counter`)
    t.equal((await get(app, '/api/b', user)).statusCode, 200)
    t.equal((await get(app, '/api/a', user)).statusCode, 429)
  }
  t.same(limited, ['default', 'default'])
  t.equal((await get(app, '/api/a', 'crm')).statusCode, 200, 'crm has its own budget')
})

t.test('requests without a rate key are counted per client address', async (t) => {
  const now = 1_700_000_000_000
  const holder = { current: await validPolicy(t, { 'gateway.yaml': GATEWAY }) }
  const limited: string[] = []
  const app = await build(t, holder, () => now, limited)
  t.equal((await get(app, '/api/a', undefined, '10.0.0.1')).headers['ratelimit-remaining'], '1')
  t.equal((await get(app, '/api/a', undefined, '10.0.0.2')).headers['ratelimit-remaining'], '1')
  await get(app, '/api/a', undefined, '10.0.0.1')
  t.equal((await get(app, '/api/a', undefined, '10.0.0.1')).statusCode, 429)
  t.same(limited, ['unknown'])
})

t.test('counters survive a policy reload; the new budget applies at once', async (t) => {
  const now = 1_700_000_000_000
  const holder = { current: await validPolicy(t, { 'gateway.yaml': GATEWAY, ...CONSUMERS }) }
  const app = await build(t, holder, () => now)
  await get(app, '/api/a', 'crm')
  await get(app, '/api/a', 'crm')
  t.equal((await get(app, '/api/a', 'crm')).headers['ratelimit-remaining'], '0')
  holder.current = await validPolicy(t, {
    'gateway.yaml': GATEWAY,
    ...CONSUMERS,
    'consumers/crm.yaml': 'usernames: [crm]\nrateLimit: { max: 5, timeWindow: "1 minute" }\n',
  })
  const after = await get(app, '/api/a', 'crm')
  t.equal(after.statusCode, 200)
  t.equal(after.headers['ratelimit-limit'], '5')
  t.equal(after.headers['ratelimit-remaining'], '1', 'the 3 earlier requests still count')
})

t.test('a shared counter store can be plugged in', async (t) => {
  let now = 1_000
  const shared = new LocalCounterStore({ clock: () => now })
  const holder = { current: await validPolicy(t, { 'gateway.yaml': GATEWAY, ...CONSUMERS }) }
  const build2 = async () => {
    const app = Fastify()
    app.addHook('preValidation', async (request) => {
      request.gw = { ...newRequestContext(holder.current), rateKey: 'default:alice' }
    })
    await registerRateLimits(app, { store: holder, counterStore: shared, clock: () => now })
    app.get('/x', { config: { rateLimit: apiRouteRateLimitConfig() } }, async () => 'ok')
    t.teardown(() => app.close())
    return app
  }
  const one = await build2()
  const two = await build2()
  t.equal((await one.inject('/x')).headers['ratelimit-remaining'], '1')
  t.equal((await two.inject('/x')).headers['ratelimit-remaining'], '0', 'two instances, one budget')
  t.equal((await one.inject('/x')).statusCode, 429)
  now += 60_000
  t.equal((await two.inject('/x')).statusCode, 200)
})

t.test('a failing counter store lets requests through (fail open) and does not crash', async (t) => {
  const holder = { current: await validPolicy(t, { 'gateway.yaml': GATEWAY }) }
  const app = Fastify()
  await registerRateLimits(app, {
    store: holder,
    counterStore: {
      incr: () => Promise.reject(new Error('store down')),
      get: () => Promise.resolve(null),
      decr: () => Promise.reject(new Error('store down')),
    },
  })
  app.get('/x', { config: { rateLimit: apiRouteRateLimitConfig() } }, async () => 'ok')
  t.teardown(() => app.close())
  const r = await app.inject('/x')
  t.equal(r.statusCode, 200)
  t.equal(r.body, 'ok')
})
