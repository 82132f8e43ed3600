// CORS from the policy in force: off when no origins, preflight and exposed headers otherwise.
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { corsOptionsFor, registerCors } from '../../src/http/cors.js'
import type { Policy } from '../../src/policy/types.js'
import { validPolicy } from '../policy/fixtures.js'

async function build(t: Test, holder: { current: Policy }) {
  const app = Fastify()
  await registerCors(app, { store: holder })
  app.get('/api/ipdrcustomers', async (_r, reply) => reply.header('x-cache', 'HIT').send([]))
  app.setNotFoundHandler((_r, reply) => reply.code(404).send({ code: 'IPDR_GW_NOT_FOUND' }))
  t.teardown(() => app.close())
  return app
}

const preflight = (app: FastifyInstance, origin: string) =>
  app.inject({
    method: 'OPTIONS',
    url: '/api/ipdrcustomers',
    headers: {
      origin,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'authorization, x-trisul-username',
    },
  })

t.test('off when the policy lists no origins', async (t) => {
  const holder = { current: await validPolicy(t) }
  const app = await build(t, holder)
  const pre = await preflight(app, 'https://crm.example')
  t.equal(pre.statusCode, 404, 'no preflight handling')
  t.notOk(pre.headers['access-control-allow-origin'])
  const get = await app.inject({ url: '/api/ipdrcustomers', headers: { origin: 'https://crm.example' } })
  t.equal(get.statusCode, 200)
  t.notOk(get.headers['access-control-allow-origin'])
  t.notOk(get.headers['access-control-expose-headers'])
})

t.test('listed origins: preflight allows the gateway headers, responses expose its headers', async (t) => {
  const holder = {
    current: await validPolicy(t, {
      'gateway.yaml': 'cors: { origins: ["https://crm.example", "http://localhost:5173"] }\n',
    }),
  }
  const app = await build(t, holder)
  const pre = await preflight(app, 'https://crm.example')
  t.equal(pre.statusCode, 204)
  t.equal(pre.headers['access-control-allow-origin'], 'https://crm.example')
  t.equal(
    pre.headers['access-control-allow-headers'],
    'Authorization, X-Trisul-Username, X-Trisul-Context, If-None-Match, Content-Type, X-Request-Id',
  )
  t.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, POST, PUT, PATCH, DELETE')
  t.equal(pre.headers['access-control-max-age'], '600')
  t.notOk(pre.headers['access-control-allow-credentials'], 'no cookies: credentials travel in headers')
  t.match(pre.headers.vary, /Origin/)

  const get = await app.inject({ url: '/api/ipdrcustomers', headers: { origin: 'http://localhost:5173' } })
  t.equal(get.headers['access-control-allow-origin'], 'http://localhost:5173')
  t.equal(
    get.headers['access-control-expose-headers'],
    'X-Cache, ETag, X-Total-Count, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After, X-Request-Id',
  )

  const other = await app.inject({ url: '/api/ipdrcustomers', headers: { origin: 'https://evil.example' } })
  t.equal(other.statusCode, 200)
  t.notOk(other.headers['access-control-allow-origin'], 'an unlisted origin gets no grant')
  const otherPre = await preflight(app, 'https://evil.example')
  t.notOk(otherPre.headers['access-control-allow-origin'])

  const bad = await app.inject({
    method: 'OPTIONS',
    url: '/api/ipdrcustomers',
    headers: { origin: 'https://crm.example' },
  })
  t.equal(bad.statusCode, 400, 'a preflight without Access-Control-Request-Method is refused')
})

t.test('origins follow the policy in force (reload)', async (t) => {
  const holder = { current: await validPolicy(t) }
  const app = await build(t, holder)
  t.equal((await preflight(app, 'https://crm.example')).statusCode, 404)
  holder.current = await validPolicy(t, { 'gateway.yaml': 'cors: { origins: ["*"] }\n' })
  const pre = await preflight(app, 'https://crm.example')
  t.equal(pre.statusCode, 204)
  t.equal(pre.headers['access-control-allow-origin'], '*')
})

t.test('corsOptionsFor', async (t) => {
  t.same(corsOptionsFor(await validPolicy(t)), { origin: false })
  const opts = corsOptionsFor(
    await validPolicy(t, { 'gateway.yaml': 'cors: { origins: ["https://a.example"] }\n' }),
  )
  t.same(opts.origin, ['https://a.example'])
})
