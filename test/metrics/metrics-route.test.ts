import Fastify from 'fastify'
import { Gauge } from 'prom-client'
import t, { type Test } from 'tap'
import { errorBody, WWW_AUTHENTICATE } from '../../src/errors.js'
import { registerMetricsRoute, startMetricsListener } from '../../src/http/routes/metrics.js'
import { createMetrics, type GatewayMetrics } from '../../src/metrics.js'

const TOKEN = 'test-scrape-token-not-a-secret'

async function appWith(t: Test, token?: string | null) {
  const metrics = createMetrics({ sources: { upstreamUp: () => 1 } })
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await registerMetricsRoute(app, { metrics, token })
  await app.ready()
  return { app, metrics }
}

/** A registry whose collection fails, as a broken custom collector would. */
function breakRegistry(metrics: GatewayMetrics): void {
  new Gauge({
    name: 'test_broken',
    help: 'fails on purpose',
    registers: [metrics.registry],
    collect() {
      throw new Error('secret internal detail')
    },
  })
}

t.test('without a token /metrics is open and serves the Prometheus text format', async (t) => {
  for (const token of [undefined, null]) {
    const { app, metrics } = await appWith(t, token)
    const res = await app.inject({ method: 'GET', url: '/metrics' })
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], metrics.registry.contentType)
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(res.body, /^# TYPE ipdr_gateway_upstream_up gauge$/m)
    t.match(res.body, /^ipdr_gateway_upstream_up 1$/m)
    t.match(res.body, /^process_cpu_seconds_total /m, 'default metrics included')
  }
})

t.test('with a token a scrape needs Authorization: Bearer <token>', async (t) => {
  const { app } = await appWith(t, TOKEN)
  const expectedBody = errorBody('IPDR_GW_METRICS_UNAUTHORIZED')

  const missing = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(missing.statusCode, 401)
  t.same(missing.json(), expectedBody)
  t.equal(missing.json().code, 'IPDR_GW_METRICS_UNAUTHORIZED')
  t.equal(missing.headers['www-authenticate'], WWW_AUTHENTICATE)
  t.match(missing.headers['content-type'], /^application\/json/)

  const wrong = [
    'Bearer wrong-token',
    `Bearer ${TOKEN}x`,
    `Bearer ${TOKEN.slice(0, -1)}`,
    `Basic ${Buffer.from(`user:${TOKEN}`).toString('base64')}`,
    TOKEN,
    'Bearer',
    'Bearer ',
    `Bearer ${TOKEN} extra`,
    `Token ${TOKEN}`,
  ]
  for (const authorization of wrong) {
    const res = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization } })
    t.equal(res.statusCode, 401, `refused: ${authorization.slice(0, 24)}`)
    t.same(res.json(), expectedBody)
    t.match(res.headers['www-authenticate'], /^Bearer realm="ipdr-gateway"/)
    t.notMatch(res.body, TOKEN, 'the token is never echoed')
  }
  const invalid = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: 'Bearer nope' },
  })
  t.equal(invalid.headers['www-authenticate'], `${WWW_AUTHENTICATE}, error="invalid_token"`)

  for (const authorization of [`Bearer ${TOKEN}`, `bearer ${TOKEN}`, `BEARER  ${TOKEN}`]) {
    const ok = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization } })
    t.equal(ok.statusCode, 200, `accepted: ${authorization.split(' ')[0]}`)
    t.match(ok.body, /ipdr_gateway_upstream_up 1/)
  }

  const head = await app.inject({
    method: 'HEAD',
    url: '/metrics',
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  t.equal(head.statusCode, 200, 'HEAD works with the token')
  const headMissing = await app.inject({ method: 'HEAD', url: '/metrics' })
  t.equal(headMissing.statusCode, 401, 'HEAD needs it too')
})

t.test('an unusable token is refused at registration', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  for (const token of ['', ' ', 'has space', 'line\nbreak', 'caf\u00e9', 42 as unknown as string]) {
    const app = Fastify({ logger: false })
    t.teardown(() => app.close())
    await t.rejects(
      registerMetricsRoute(app, { metrics, token }),
      TypeError,
      `refused: ${JSON.stringify(token)}`,
    )
  }
})

t.test('works as a Fastify plugin through app.register too', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  await app.register(registerMetricsRoute, { metrics, token: TOKEN })
  const res = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${TOKEN}` },
  })
  t.equal(res.statusCode, 200)
})

t.test('a failing collector is an error for the app error handler, not a crash', async (t) => {
  const { app, metrics } = await appWith(t, null)
  breakRegistry(metrics)
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 500)
})

t.test('the separate listener serves only /metrics', async (t) => {
  const metrics = createMetrics({ sources: { upstreamUp: () => 1 } })
  const listener = await startMetricsListener({ metrics, host: '127.0.0.1', port: 0 })
  t.teardown(() => listener.close())
  t.ok(listener.port > 0, 'an ephemeral port was chosen and reported')
  const base = `http://127.0.0.1:${listener.port}`

  const res = await fetch(`${base}/metrics`)
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), metrics.registry.contentType)
  t.match(await res.text(), /^ipdr_gateway_upstream_up 1$/m)

  const other = await fetch(`${base}/api/ipdrcustomers`)
  t.equal(other.status, 404)
  t.same(await other.json(), errorBody('IPDR_GW_NOT_FOUND'))
})

t.test('the separate listener enforces the token', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const listener = await startMetricsListener({ metrics, host: '127.0.0.1', port: 0, token: TOKEN })
  t.teardown(() => listener.close())
  const url = `http://127.0.0.1:${listener.port}/metrics`
  const refused = await fetch(url)
  t.equal(refused.status, 401)
  t.equal(refused.headers.get('www-authenticate'), WWW_AUTHENTICATE)
  t.same(await refused.json(), errorBody('IPDR_GW_METRICS_UNAUTHORIZED'))
  const ok = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(ok.status, 200)
  await ok.text()
})

t.test('the separate listener hides collector errors', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  breakRegistry(metrics)
  const listener = await startMetricsListener({ metrics, host: '127.0.0.1', port: 0 })
  t.teardown(() => listener.close())
  const res = await fetch(`http://127.0.0.1:${listener.port}/metrics`)
  t.equal(res.status, 500)
  const body = await res.text()
  t.same(JSON.parse(body), errorBody('IPDR_GW_INTERNAL'))
  t.notMatch(body, /secret internal detail/)
})

t.test('listener start errors are clear', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const first = await startMetricsListener({ metrics, host: '127.0.0.1', port: 0 })
  t.teardown(() => first.close())
  await t.rejects(
    startMetricsListener({ metrics, host: '127.0.0.1', port: first.port }),
    {
      message: new RegExp(`metrics listener could not listen on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`),
    },
    'a port in use',
  )
  for (const port of [-1, 65536, 1.5, Number.NaN]) {
    await t.rejects(startMetricsListener({ metrics, host: '127.0.0.1', port }), RangeError, `port ${port}`)
  }
  await t.rejects(startMetricsListener({ metrics, host: '127.0.0.1', port: 0, token: '' }), TypeError)
})

t.test('close() stops the listener', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const listener = await startMetricsListener({ metrics, host: '127.0.0.1', port: 0 })
  const url = `http://127.0.0.1:${listener.port}/metrics`
  t.equal((await fetch(url)).status, 200)
  await listener.close()
  await t.rejects(fetch(url), 'connection refused after close')
})
