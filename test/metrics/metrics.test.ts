import t from 'tap'
import {
  CACHE_RESULTS,
  createMetrics,
  DURATION_BUCKETS,
  type GatewayMetrics,
  METRIC_FAMILIES,
  METRIC_RESOURCES,
  POLICY_RELOAD_RESULTS,
  UPSTREAM_METHODS,
  UPSTREAM_OUTCOMES,
} from '../../src/metrics.js'
import { populateAll, type Sample, samples } from './populate.js'

/** SPEC section 5, written out here on purpose: the test must not read the table it checks. */
const SPEC: Record<string, { type: string; labels: string[] }> = {
  ipdr_gateway_http_requests_total: {
    type: 'counter',
    labels: ['method', 'route', 'status_code', 'consumer'],
  },
  ipdr_gateway_http_request_duration_seconds: {
    type: 'histogram',
    labels: ['method', 'route', 'status_code'],
  },
  ipdr_gateway_upstream_requests_total: { type: 'counter', labels: ['method', 'resource', 'outcome'] },
  ipdr_gateway_upstream_request_duration_seconds: { type: 'histogram', labels: ['method', 'resource'] },
  ipdr_gateway_cache_lookups_total: { type: 'counter', labels: ['resource', 'result'] },
  ipdr_gateway_cache_entries: { type: 'gauge', labels: ['resource'] },
  ipdr_gateway_cache_bytes: { type: 'gauge', labels: ['resource'] },
  ipdr_gateway_cache_invalidations_total: { type: 'counter', labels: ['resource', 'kind'] },
  ipdr_gateway_rate_limited_total: { type: 'counter', labels: ['consumer'] },
  ipdr_gateway_policy_denials_total: { type: 'counter', labels: ['consumer', 'operation'] },
  ipdr_gateway_policy_reloads_total: { type: 'counter', labels: ['result'] },
  ipdr_gateway_upstream_up: { type: 'gauge', labels: [] },
  ipdr_gateway_store_up: { type: 'gauge', labels: [] },
  ipdr_gateway_cache_fill_duration_seconds: { type: 'histogram', labels: ['resource'] },
  ipdr_gateway_store_errors_total: { type: 'counter', labels: ['operation'] },
  ipdr_gateway_sync_writes_total: { type: 'counter', labels: ['resource', 'operation', 'outcome'] },
  ipdr_gateway_audit_records_total: { type: 'counter', labels: ['result', 'phase'] },
  ipdr_gateway_audit_shipped_total: { type: 'counter', labels: ['result'] },
  ipdr_gateway_audit_ship_queue_bytes: { type: 'gauge', labels: [] },
  // SPEC 15.
  ipdr_gateway_store_failovers_total: { type: 'counter', labels: [] },
}

function sampleValue(list: Sample[], labels: Record<string, string>): number | undefined {
  const keys = Object.keys(labels)
  return list.find((s) => keys.every((k) => s.labels[k] === labels[k]))?.value
}

t.test('every SPEC section 5 family exists with its exact name, type and labels', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  populateAll(metrics)
  const json = await metrics.registry.getMetricsAsJSON()
  const ours = json.filter((m) => m.name.startsWith('ipdr_gateway_'))
  t.same(ours.map((m) => m.name).sort(), Object.keys(SPEC).sort(), 'exactly the SPEC families, no more')
  t.same(METRIC_FAMILIES, SPEC, 'the exported table matches SPEC')
  for (const metric of ours) {
    const spec = SPEC[metric.name]!
    t.equal(String(metric.type), spec.type, `${metric.name} is a ${spec.type}`)
    t.ok(metric.help.length > 10, `${metric.name} has help text`)
    t.ok(metric.values.length > 0, `${metric.name} has samples`)
    for (const v of metric.values) {
      const keys = Object.keys(v.labels).filter((k) => k !== 'le')
      t.same(keys.sort(), [...spec.labels].sort(), `${metric.name} sample labels`)
    }
  }
})

t.test('histograms use the gateway buckets, 1 ms to 10 s', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  t.equal(DURATION_BUCKETS[0], 0.001)
  t.equal(DURATION_BUCKETS.at(-1), 10)
  t.same(
    [...DURATION_BUCKETS].sort((a, b) => a - b),
    DURATION_BUCKETS,
    'ascending',
  )
  metrics.httpDuration.observe({ method: 'GET', route: '/x', status_code: '200' }, 0.003)
  metrics.upstreamDuration.observe({ method: 'GET', resource: 'customers' }, 12)
  for (const name of [
    'ipdr_gateway_http_request_duration_seconds',
    'ipdr_gateway_upstream_request_duration_seconds',
  ]) {
    const les = (await samples(metrics, name)).map((s) => s.labels.le).filter((le) => le !== undefined)
    t.same(les, [...DURATION_BUCKETS.map(String), '+Inf'], `${name} buckets`)
  }
  const upstream = await samples(metrics, 'ipdr_gateway_upstream_request_duration_seconds')
  t.equal(sampleValue(upstream, { le: '10' }), 0, 'a 12 s request is above the last bucket')
  t.equal(sampleValue(upstream, { le: '+Inf' }), 1)
})

t.test('known, bounded label combinations start at zero', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  const upstream = await samples(metrics, 'ipdr_gateway_upstream_requests_total')
  t.equal(upstream.length, UPSTREAM_METHODS.length * METRIC_RESOURCES.length * UPSTREAM_OUTCOMES.length)
  t.equal(sampleValue(upstream, { method: 'DELETE', resource: 'mappings', outcome: 'invalid_response' }), 0)
  const lookups = await samples(metrics, 'ipdr_gateway_cache_lookups_total')
  t.equal(lookups.length, METRIC_RESOURCES.length * CACHE_RESULTS.length)
  t.ok(lookups.every((s) => s.value === 0))
  const invalidations = await samples(metrics, 'ipdr_gateway_cache_invalidations_total')
  t.same(invalidations.map((s) => `${s.labels.resource} ${s.labels.kind}`).sort(), [
    'customers applied',
    'customers dropped',
    'mappings applied',
    'mappings dropped',
  ])
  const reloads = await samples(metrics, 'ipdr_gateway_policy_reloads_total')
  t.same(reloads.map((s) => s.labels.result).sort(), [...POLICY_RELOAD_RESULTS].sort())
  t.same(await samples(metrics, 'ipdr_gateway_http_requests_total'), [], 'unbounded families start empty')
  t.same(await samples(metrics, 'ipdr_gateway_rate_limited_total'), [])
})

t.test('default process and Node.js metrics are on the registry unless turned off', async (t) => {
  const withDefaults = createMetrics()
  const names = (await withDefaults.registry.getMetricsAsJSON()).map((m) => m.name)
  for (const name of [
    'process_cpu_seconds_total',
    'process_resident_memory_bytes',
    'nodejs_heap_size_used_bytes',
  ]) {
    t.ok(names.includes(name), `${name} present`)
  }
  const without = createMetrics({ defaultMetrics: false })
  const ownOnly = (await without.registry.getMetricsAsJSON()).map((m) => m.name)
  t.ok(
    ownOnly.every((n) => n.startsWith('ipdr_gateway_')),
    'defaultMetrics: false leaves only ipdr_gateway_*',
  )
})

t.test('two createMetrics() in one process are independent registries', async (t) => {
  const a = createMetrics()
  const b = createMetrics()
  t.not(a.registry, b.registry)
  a.rateLimited.inc({ consumer: 'crm' }, 3)
  b.rateLimited.inc({ consumer: 'crm' })
  t.equal(sampleValue(await samples(a, 'ipdr_gateway_rate_limited_total'), { consumer: 'crm' }), 3)
  t.equal(sampleValue(await samples(b, 'ipdr_gateway_rate_limited_total'), { consumer: 'crm' }), 1)
  t.match(await a.registry.metrics(), /process_cpu_seconds_total/, 'each has its default metrics')
  t.match(await b.registry.metrics(), /process_cpu_seconds_total/)
})

t.test('gauges are computed from the sources at scrape time', async (t) => {
  let up: 0 | 1 = 1
  let customers = { entries: 3, bytes: 4096 }
  const metrics = createMetrics({
    defaultMetrics: false,
    sources: { cache: () => ({ customers }), upstreamUp: () => up },
  })
  const read = async (name: string) => samples(metrics, name)
  t.equal(sampleValue(await read('ipdr_gateway_upstream_up'), {}), 1)
  t.equal(sampleValue(await read('ipdr_gateway_cache_entries'), { resource: 'customers' }), 3)
  t.equal(sampleValue(await read('ipdr_gateway_cache_bytes'), { resource: 'customers' }), 4096)
  t.equal(
    sampleValue(await read('ipdr_gateway_cache_entries'), { resource: 'mappings' }),
    0,
    'absent resource reads 0',
  )

  up = 0
  customers = { entries: 1, bytes: 100 }
  t.equal(sampleValue(await read('ipdr_gateway_upstream_up'), {}), 0, 'read again at the next scrape')
  t.equal(sampleValue(await read('ipdr_gateway_cache_bytes'), { resource: 'customers' }), 100)

  metrics.setSources({
    cache: () => ({ mappings: { entries: 7, bytes: 700 } }),
    upstreamUp: () => 1,
  })
  t.equal(sampleValue(await read('ipdr_gateway_upstream_up'), {}), 1, 'setSources replaces the sources')
  t.equal(sampleValue(await read('ipdr_gateway_cache_entries'), { resource: 'customers' }), 0)
  t.equal(sampleValue(await read('ipdr_gateway_cache_entries'), { resource: 'mappings' }), 7)
})

t.test('without sources the gauges read 0', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false })
  t.equal(sampleValue(await samples(metrics, 'ipdr_gateway_upstream_up'), {}), 0)
  const entries = await samples(metrics, 'ipdr_gateway_cache_entries')
  t.same(
    entries.map((s) => [s.labels.resource, s.value]),
    [
      ['customers', 0],
      ['mappings', 0],
      ['queries', 0],
    ],
  )
  metrics.setSources({})
  t.equal(sampleValue(await samples(metrics, 'ipdr_gateway_upstream_up'), {}), 0)
})

t.test('a failing or lying source does not break the scrape', async (t) => {
  const metrics = createMetrics({
    defaultMetrics: false,
    sources: {
      cache: () => {
        throw new Error('cache exploded')
      },
      upstreamUp: () => {
        throw new Error('probe exploded')
      },
    },
  })
  const text = await metrics.registry.metrics()
  t.match(text, /^ipdr_gateway_upstream_up 0$/m)
  t.match(text, /^ipdr_gateway_cache_bytes\{resource="customers"\} 0$/m)

  metrics.setSources({
    // Garbage a buggy source might return: not numbers, negative, NaN, Infinity, null entries.
    cache: () =>
      ({
        customers: { entries: -1, bytes: Number.NaN },
        mappings: { entries: Number.POSITIVE_INFINITY, bytes: '12' },
      }) as unknown as ReturnType<NonNullable<Parameters<GatewayMetrics['setSources']>[0]['cache']>>,
    upstreamUp: () => 7 as unknown as 1,
  })
  const again = await samples(metrics, 'ipdr_gateway_cache_bytes')
  t.ok(
    again.every((s) => s.value === 0),
    'invalid figures read 0',
  )
  t.equal(sampleValue(await samples(metrics, 'ipdr_gateway_upstream_up'), {}), 0, 'anything but 1 is down')

  metrics.setSources({ cache: () => null as unknown as Record<string, never> })
  t.equal(sampleValue(await samples(metrics, 'ipdr_gateway_cache_entries'), { resource: 'customers' }), 0)
  metrics.setSources({ cache: () => ({ customers: null as unknown as { entries: number; bytes: number } }) })
  t.equal(sampleValue(await samples(metrics, 'ipdr_gateway_cache_entries'), { resource: 'customers' }), 0)
})
