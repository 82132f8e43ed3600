/**
 * Bounded labels (SPEC section 5): whatever a client sends, the http_* series
 * carry only known methods, route patterns, status codes and consumer names.
 * This is the unit part; the end-to-end part against buildApp() lives with the app tests.
 */
import fc from 'fast-check'
import Fastify from 'fastify'
import t from 'tap'
import { recordHttp as reexported } from '../../src/http/routes/metrics.js'
import {
  consumerLabel,
  createMetrics,
  type GatewayMetrics,
  HTTP_METHODS,
  methodLabel,
  recordHttp,
  routeLabel,
  statusLabel,
} from '../../src/metrics.js'
import { samples } from './populate.js'

const ROUTES = ['/api/ipdrcustomers', '/api/ipdrcustomers/:UserID']
const CONSUMERS = ['crm', 'default']
const METHOD_LABELS = new Set([...HTTP_METHODS, 'OTHER'])

async function httpSeries(metrics: GatewayMetrics) {
  return samples(metrics, 'ipdr_gateway_http_requests_total')
}

t.test('label helpers', async (t) => {
  t.equal(reexported, recordHttp, 'metrics-route re-exports the same recorder')
  t.equal(methodLabel('get'), 'GET', 'known methods upper-cased')
  t.equal(methodLabel('Patch'), 'PATCH')
  t.equal(methodLabel('OPTIONS'), 'OPTIONS')
  t.equal(methodLabel('PROPFIND'), 'OTHER')
  t.equal(methodLabel('GET\r\nX-Evil: 1'), 'OTHER')
  t.equal(methodLabel('g'.repeat(10_000)), 'OTHER')
  t.equal(methodLabel(undefined), 'OTHER')
  t.equal(methodLabel(42), 'OTHER')

  t.equal(routeLabel('/api/ipdrcustomers/:UserID'), '/api/ipdrcustomers/:UserID')
  t.equal(routeLabel('/*'), '/*')
  t.equal(routeLabel(undefined), 'unmatched', 'the 404 handler has no pattern')
  t.equal(routeLabel(null), 'unmatched')
  t.equal(routeLabel(''), 'unmatched')
  t.equal(routeLabel('api/x'), 'unmatched', 'a pattern starts with /')
  t.equal(routeLabel('/a b'), 'unmatched', 'no spaces')
  t.equal(routeLabel('/a\nb'), 'unmatched', 'no control characters')
  t.equal(routeLabel('/caf\u00e9'), 'unmatched', 'ASCII only')
  t.equal(routeLabel(`/${'a'.repeat(200)}`), 'unmatched', 'at most 200 characters')

  t.equal(statusLabel(200), '200')
  t.equal(statusLabel(599), '599')
  t.equal(statusLabel(99), '0')
  t.equal(statusLabel(600), '0')
  t.equal(statusLabel(200.5), '0')
  t.equal(statusLabel('200'), '0')

  t.equal(consumerLabel('crm'), 'crm')
  t.equal(consumerLabel('billing.eu-1_a'), 'billing.eu-1_a')
  t.equal(consumerLabel('default'), 'default')
  t.equal(consumerLabel(undefined), 'unknown')
  t.equal(consumerLabel(null), 'unknown')
  t.equal(consumerLabel(''), 'unknown')
  t.equal(consumerLabel('user@example.com'), 'unknown', 'a username is not a consumer name')
  t.equal(consumerLabel('Bearer abc'), 'unknown')
  t.equal(consumerLabel('a'.repeat(65)), 'unknown')
  t.equal(consumerLabel('-x'), 'unknown')
})

t.test('recordHttp counts and times one request', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  recordHttp(metrics, {
    method: 'get',
    route: '/api/ipdrcustomers',
    statusCode: 200,
    consumer: 'crm',
    seconds: 0.02,
  })
  recordHttp(metrics, {
    method: 'GET',
    route: '/api/ipdrcustomers',
    statusCode: 200,
    consumer: 'crm',
    seconds: 0.03,
  })
  const series = await httpSeries(metrics)
  t.same(series, [
    { labels: { method: 'GET', route: '/api/ipdrcustomers', status_code: '200', consumer: 'crm' }, value: 2 },
  ])
  const duration = await samples(metrics, 'ipdr_gateway_http_request_duration_seconds')
  const count = duration.find((s) => s.labels.le === undefined && s.value === 2)
  t.ok(count, 'two observations')
  t.notOk(
    duration.some((s) => 'consumer' in s.labels),
    'the histogram has no consumer label',
  )
})

t.test('a bad duration still counts the request but is not observed', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  for (const seconds of [Number.NaN, -1, Number.POSITIVE_INFINITY, undefined as unknown as number]) {
    recordHttp(metrics, { method: 'GET', route: '/x', statusCode: 200, consumer: 'crm', seconds })
  }
  t.equal((await httpSeries(metrics))[0]?.value, 4)
  t.same(await samples(metrics, 'ipdr_gateway_http_request_duration_seconds'), [])
})

t.test('hostile methods, routes, statuses and consumers keep the series bounded', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  // Every hostile value carries a marker, so "none of them leaked" is a substring check.
  const hostile = fc.string({ unit: 'binary', maxLength: 300 }).map((s) => `zzHOSTILE${s}`)
  const method = fc.oneof(hostile, fc.constantFrom('get', 'POST', 'delete', 'PROPFIND', 'M-SEARCH', ''))
  // A route is a pattern when one matched, else nothing, as Fastify reports it.
  const route = fc.oneof(fc.constantFrom(...ROUTES), fc.constant(undefined), fc.constant(null))
  const consumer = fc.oneof(
    fc.constantFrom(...CONSUMERS),
    fc.constant(undefined),
    hostile.map((s) => `${s} `),
    hostile.map((s) => `${s}@example.com`),
  )
  const statusCode = fc.oneof(fc.constantFrom(200, 304, 401, 404, 429, 502), fc.integer(), fc.double())
  const seconds = fc.oneof(fc.double({ min: 0, max: 30, noNaN: true }), fc.double())
  fc.assert(
    fc.property(method, route, statusCode, consumer, seconds, (m, r, s, c, d) => {
      recordHttp(metrics, { method: m, route: r, statusCode: s, consumer: c, seconds: d })
    }),
    { numRuns: 2000, seed: 424242 },
  )

  const exposition = await metrics.registry.metrics()
  t.notMatch(exposition, /hostile/i, 'no hostile value reached the exposition')
  const series = await httpSeries(metrics)
  const routes = new Set([...ROUTES, 'unmatched'])
  const consumers = new Set([...CONSUMERS, 'unknown'])
  for (const s of series) {
    if (
      !METHOD_LABELS.has(s.labels.method ?? '') ||
      !routes.has(s.labels.route ?? '') ||
      !consumers.has(s.labels.consumer ?? '') ||
      !/^(?:[1-5]\d\d|0)$/.test(s.labels.status_code ?? '')
    ) {
      t.fail(`unexpected series ${JSON.stringify(s.labels)}`)
    }
  }
  // 8 method labels x 3 routes x 501 status labels x 3 consumers is the hard ceiling; the
  // real count is far lower because statuses are drawn from few values plus noise.
  t.ok(series.length <= METHOD_LABELS.size * routes.size * 501 * consumers.size, 'within the ceiling')
  const total = series.reduce((n, s) => n + s.value, 0)
  t.equal(total, 2000, 'every request counted once')
})

t.test('hostile paths through a real router only ever yield route patterns', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const app = Fastify({ logger: false })
  t.teardown(() => app.close())
  app.addHook('onResponse', async (request, reply) => {
    // The hook as the app writes it: pattern from routeOptions, never request.url.
    recordHttp(metrics, {
      method: request.method,
      route: request.routeOptions.url,
      statusCode: reply.statusCode,
      consumer: undefined,
      seconds: reply.elapsedTime / 1000,
    })
  })
  app.get('/api/ipdrcustomers', async () => [])
  app.get('/api/ipdrcustomers/:UserID', async (_request, reply) => reply.code(404).send({ missing: true }))

  const segment = fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 40 }).map(encodeURIComponent)
  const paths = fc.sample(
    fc.oneof(
      segment.map((s) => `/api/ipdrcustomers/zzHOSTILE${s}`),
      segment.map((s) => `/zzHOSTILE${s}/../../etc/passwd`),
      segment.map((s) => `/api/ipdrcustomers?zzHOSTILE=${s}`),
      segment.map((s) => `/api/ipdrcustomers/zzHOSTILE${s}/extra/${s}`),
      segment.map((s) => `//zzHOSTILE.example/${s}`),
    ),
    { numRuns: 200, seed: 7 },
  )
  const methods = ['GET', 'POST', 'DELETE', 'PROPFIND', 'OPTIONS']
  let sent = 0
  for (const [i, url] of paths.entries()) {
    await app.inject({ method: methods[i % methods.length] as 'GET', url })
    sent++
  }
  const exposition = await metrics.registry.metrics()
  t.notMatch(exposition, /hostile/i, 'no path, query or host reached the exposition')
  const series = await httpSeries(metrics)
  const routes = new Set(series.map((s) => s.labels.route))
  t.ok(
    [...routes].every((r) => r === 'unmatched' || ROUTES.includes(r ?? '')),
    `routes are patterns: ${[...routes].join(', ')}`,
  )
  t.ok(series.length <= 20, `few series for ${sent} hostile requests (${series.length})`)
  t.equal(
    series.reduce((n, s) => n + s.value, 0),
    sent,
  )
})
