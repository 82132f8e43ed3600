/**
 * Counters whose increments wait as plain numbers for the scrape
 * (`PendingCounts`, src/metrics.ts): every read sees every count once.
 */
import t from 'tap'
import { createMetrics, recordHttp } from '../../src/metrics.js'

const hit = { method: 'GET', route: '/api/ipdrcustomers', statusCode: 200, consumer: 'crm', seconds: 0.001 }

t.test('request and lookup counts reach the counters when they are read, each once', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  for (let i = 0; i < 3; i++) recordHttp(metrics, hit)
  recordHttp(metrics, { ...hit, statusCode: 429 })
  metrics.countLookup('customers', 'hit')
  metrics.countLookup('customers', 'hit')
  const requests = async () =>
    Object.fromEntries((await metrics.httpRequests.get()).values.map((v) => [v.labels.status_code, v.value]))
  t.same(await requests(), { 200: 3, 429: 1 })
  t.same(await requests(), { 200: 3, 429: 1 }, 'a second read adds nothing')
  recordHttp(metrics, hit)
  t.same(await requests(), { 200: 4, 429: 1 }, 'later counts add to the earlier ones')
  const text = await metrics.registry.metrics()
  t.match(text, /ipdr_gateway_cache_lookups_total\{resource="customers",result="hit"\} 2\n/)
  t.match(
    text,
    /ipdr_gateway_http_requests_total\{method="GET",route="\/api\/ipdrcustomers",status_code="200",consumer="crm"\} 4\n/,
  )
  const durations = (await metrics.httpDuration.get()).values.find(
    (v) =>
      v.metricName === 'ipdr_gateway_http_request_duration_seconds_count' &&
      String(v.labels.status_code) === '200',
  )
  t.equal(durations?.value, 4, 'the durations are observed as they come')
})
