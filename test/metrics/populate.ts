/** Shared by the metrics tests: fill every ipdr_gateway_* family, read samples back. */
import { createMetrics, type GatewayMetrics, recordHttp } from '../../src/metrics.js'

export interface Sample {
  labels: Record<string, string>
  value: number
}

/** Puts at least one non-zero sample in every ipdr_gateway_* family (gauges through the sources). */
export function populateAll(metrics: GatewayMetrics): void {
  metrics.setSources({
    cache: () => ({ customers: { entries: 2, bytes: 2048 }, mappings: { entries: 1, bytes: 512 } }),
    upstreamUp: () => 1,
  })
  recordHttp(metrics, {
    method: 'GET',
    route: '/api/ipdrcustomers',
    statusCode: 200,
    consumer: 'crm',
    seconds: 0.004,
  })
  recordHttp(metrics, {
    method: 'DELETE',
    route: '/api/ipdrcustomers/:UserID',
    statusCode: 404,
    consumer: 'crm',
    seconds: 0.2,
  })
  recordHttp(metrics, {
    method: 'GET',
    route: undefined,
    statusCode: 404,
    consumer: undefined,
    seconds: 0.0005,
  })
  metrics.upstreamRequests.inc({ method: 'GET', resource: 'customers', outcome: 'ok' })
  metrics.upstreamRequests.inc({ method: 'POST', resource: 'mappings', outcome: 'envelope_error' })
  metrics.upstreamDuration.observe({ method: 'GET', resource: 'customers' }, 0.05)
  metrics.cacheLookups.inc({ resource: 'customers', result: 'hit' }, 5)
  metrics.cacheLookups.inc({ resource: 'customers', result: 'miss' })
  metrics.cacheInvalidations.inc({ resource: 'mappings', kind: 'dropped' })
  metrics.cacheInvalidations.inc({ resource: 'customers', kind: 'applied' })
  metrics.rateLimited.inc({ consumer: 'default' })
  metrics.policyDenials.inc({ consumer: 'crm', operation: 'delete' })
  metrics.policyReloads.inc({ result: 'ok' })
  metrics.policyReloads.inc({ result: 'invalid' })
  const store = metrics.enableStore(() => true)
  store.errors.inc({ operation: 'rate_limit' })
  store.failovers.inc()
  metrics.cacheFillDuration.observe({ resource: 'customers' }, 0.02)
  metrics.auditRecords.inc({ result: 'ok', phase: 'intent' }, 2)
  metrics.auditShipped.inc({ result: 'ok' }, 2)
  metrics.setAuditShipQueue(() => 512)
  metrics.syncWrites.inc({ resource: 'customers', operation: 'create', outcome: 'ok' }, 3)
}

/** The samples of one family (for histograms, every bucket/sum/count sample). */
export async function samples(metrics: GatewayMetrics, name: string): Promise<Sample[]> {
  const metric = metrics.registry.getSingleMetric(name)
  if (!metric) throw new Error(`no metric ${name}`)
  const data = await metric.get()
  // prom-client keeps `le` as a number; compare every label as the exposition writes it.
  return data.values.map((v) => ({
    labels: Object.fromEntries(Object.entries(v.labels).map(([k, l]) => [k, String(l)])),
    value: v.value,
  }))
}

/** A metrics set with every family, the shared store's included (they exist only with store.redis). */
export function metricsWithStore(): GatewayMetrics {
  const metrics = createMetrics()
  metrics.enableStore(() => true)
  return metrics
}
