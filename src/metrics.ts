/**
 * The gateway's Prometheus metrics (shared/SPEC.md section 5), after prom-client's
 * own advice: one `Registry` per app (never the global one, so a second
 * `buildApp()` in one test process works), `snake_case` names with unit
 * suffixes, counters ending in `_total`, point-in-time values computed in
 * `collect()` at scrape time. No Fastify import: the label helpers and
 * `recordHttp` are pure and the route plugin lives in `http/routes/metrics.ts`.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import type { ApiResourceName, ResourceName } from './resources.js'
import { STORE_OPERATIONS } from './store/store-health.js'
import type { UpstreamOutcome } from './upstream/client.js'

export type { UpstreamOutcome } from './upstream/client.js'
export type CacheResult = 'hit' | 'miss' | 'stale' | 'coalesced'

export const UPSTREAM_OUTCOMES: readonly UpstreamOutcome[] = [
  'ok',
  'envelope_error',
  'http_error',
  'timeout',
  'connect_error',
  'invalid_response',
]
export const CACHE_RESULTS: readonly CacheResult[] = ['hit', 'miss', 'stale', 'coalesced']
/** Values of `ipdr_gateway_cache_invalidations_total`'s `kind` (SPEC 19): a write patched the entry, or dropped it. */
export const INVALIDATION_KINDS = ['applied', 'dropped'] as const
/** Values of the `resource` label (SPEC 5): the two record resources and the Query API. */
export const METRIC_RESOURCES: readonly ApiResourceName[] = ['customers', 'mappings', 'queries']
/** The record resources: what writes invalidate and sync jobs write. */
export const RECORD_RESOURCES: readonly ResourceName[] = ['customers', 'mappings']
/** The methods the gateway sends upstream (SPEC section 2). */
export const UPSTREAM_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const
export const POLICY_RELOAD_RESULTS = ['ok', 'invalid'] as const
export const AUDIT_RESULTS = ['ok', 'failed'] as const
/** The lines counted by `ipdr_gateway_audit_records_total{phase}` (SPEC 14). */
export const AUDIT_PHASES = ['intent', 'outcome', 'access'] as const
export const SYNC_OPERATIONS = ['create', 'update', 'delete'] as const
export const SYNC_OUTCOMES = ['ok', 'rejected', 'failed'] as const
export type SyncOutcome = (typeof SYNC_OUTCOMES)[number]

/**
 * Latency buckets in seconds, about 1 ms (a cache hit) to 10 s (the default
 * upstream timeout). Shared by the gateway and upstream histograms so their
 * quantiles can be compared side by side on the dashboard.
 */
export const DURATION_BUCKETS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/** Label value for requests that matched no route (404s, unknown methods). */
export const UNMATCHED_ROUTE = 'unmatched'
/** Label value for a method outside {@link HTTP_METHODS}. */
export const OTHER_METHOD = 'OTHER'
/** Label value when no consumer was resolved (or the name is not a policy name). */
export const UNKNOWN_CONSUMER = 'unknown'

/** Methods kept as their own label value; anything else is `OTHER`. */
export const HTTP_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
])

export interface CacheFigures {
  entries: number
  bytes: number
}

export interface MetricsSources {
  /** Called at scrape time (collect()): per-resource cache entries and bytes. */
  cache?: () => Partial<Record<ApiResourceName, CacheFigures>>
  /** Called at scrape time: 1 when the upstream is reachable, else 0. */
  upstreamUp?: () => 0 | 1
}

/**
 * Increments kept as plain numbers per label set and handed to the counter when
 * it is read (its `collect()`, at scrape time or on `get()`): prom-client's
 * `inc()`, even a child's, hashes and validates its label object on every call,
 * a few µs of every cached hit (issue 17).
 */
export class PendingCounts<L extends string> {
  readonly #slots = new Map<string, { readonly labels: Partial<Record<L, string>>; n: number }>()
  #counter: Counter<L> | null = null

  /** The counter the counts go to; its `collect()` calls `flush()`. */
  bind(counter: Counter<L>): void {
    this.#counter = counter
  }

  /** Adds `n` to the label set known as `key` (made by `labels` the first time). */
  add(key: string, labels: () => Partial<Record<L, string>>, n = 1): void {
    const slot = this.#slots.get(key)
    if (slot !== undefined) slot.n += n
    else this.#slots.set(key, { labels: labels(), n })
  }

  flush(): void {
    const counter = this.#counter
    if (counter === null) return
    for (const slot of this.#slots.values()) {
      if (slot.n === 0) continue
      const n = slot.n
      slot.n = 0
      counter.inc(slot.labels, n)
    }
  }
}

/** The key of a label set in a {@link ScrapeTimeHistogram}: its values in `labelNames` order. */
export function seriesKey(...values: string[]): string {
  return values.join('\u0000')
}

/** One label set of a {@link ScrapeTimeHistogram}: counts per bucket, sum and count, as plain numbers. */
export class HistogramSeries {
  readonly #bounds: readonly number[]
  /** Observations at or below each bound (not cumulative); those over the last are only in `count`. */
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds
    this.counts = new Float64Array(bounds.length)
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`)
    const bounds = this.#bounds
    for (let i = 0; i < bounds.length; i++) {
      if (value <= (bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1
        break
      }
    }
    this.sum += value
    this.count += 1
  }
}

/** A sample as prom-client's `get()` gives it. */
export interface HistogramSample {
  readonly value: number
  readonly labels: Readonly<Record<string, string | number>>
  readonly metricName: string
}

/**
 * A histogram whose observations are plain additions to a series object kept
 * per label set: prom-client's `Histogram.observe`, even a child's, validates
 * and hashes its label object on every call (5.7 % of a cached hit's CPU,
 * issue 17), and it has no call that adds counts in bulk at scrape time. This
 * one is registered with the registry as a metric of its own (the registry's
 * public `registerMetric`, which takes any object with a metric's `name`,
 * `help`, `type`, `get()` and `reset()`), and its `get()` gives what
 * prom-client's `Histogram.get()` gives for the same observations, in the same
 * order, so the exposition is byte for byte the same
 * (test/metrics/scrape-time-histogram.test.ts).
 */
export class ScrapeTimeHistogram<L extends string> {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly name: string
  readonly help: string
  readonly labelNames: readonly L[]
  readonly #bounds: readonly number[]
  #series = new Map<
    string,
    { readonly labels: Readonly<Record<L, string>>; readonly series: HistogramSeries }
  >()

  constructor(config: {
    readonly name: string
    readonly help: string
    readonly labelNames: readonly L[]
    readonly buckets: readonly number[]
    readonly registers: readonly Registry[]
  }) {
    this.name = config.name
    this.help = config.help
    this.labelNames = config.labelNames
    this.#bounds = Object.freeze([...config.buckets].sort((a, b) => a - b))
    for (const registry of config.registers) registry.registerMetric(this as unknown as Histogram<L>)
  }

  /**
   * The series of a label set, by its {@link seriesKey} (the label values in
   * `labelNames` order); `labels` makes the label object the first time.
   */
  series(key: string, labels: () => Readonly<Record<L, string>>): HistogramSeries {
    let slot = this.#series.get(key)
    if (slot === undefined) {
      slot = { labels: labels(), series: new HistogramSeries(this.#bounds) }
      this.#series.set(key, slot)
    }
    return slot.series
  }

  /** prom-client's `observe(labels, value)`, for callers without a key of their own. */
  observe(labels: Readonly<Record<L, string>>, value: number): void {
    for (const name of Object.keys(labels)) {
      if (!this.labelNames.includes(name as L))
        throw new Error(`Added label "${name}" is not included in initial labelset`)
    }
    // Checked before a series is made for it, as prom-client does.
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`)
    this.series(seriesKey(...this.labelNames.map((name) => labels[name])), () => ({ ...labels })).observe(
      value,
    )
  }

  async get(): Promise<{
    name: string
    help: string
    type: 'histogram'
    values: HistogramSample[]
    aggregator: 'sum'
  }> {
    const bucket = `${this.name}_bucket`
    const values: HistogramSample[] = []
    for (const { labels, series } of this.#series.values()) {
      let acc = 0
      this.#bounds.forEach((le, i) => {
        acc += series.counts[i] as number
        values.push({ value: acc, labels: { le, ...labels }, metricName: bucket })
      })
      values.push({ value: series.count, labels: { le: '+Inf', ...labels }, metricName: bucket })
      values.push({ value: series.sum, labels: { ...labels }, metricName: `${this.name}_sum` })
      values.push({ value: series.count, labels: { ...labels }, metricName: `${this.name}_count` })
    }
    // prom-client's key order, so even the JSON is the same.
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator }
  }

  reset(): void {
    this.#series = new Map()
  }
}

export interface GatewayMetrics {
  readonly registry: Registry
  /** `ipdr_gateway_http_requests_total` */
  readonly httpRequests: Counter<'method' | 'route' | 'status_code' | 'consumer'>
  /** `ipdr_gateway_http_request_duration_seconds` */
  readonly httpDuration: ScrapeTimeHistogram<'method' | 'route' | 'status_code'>
  /** `ipdr_gateway_upstream_requests_total` */
  readonly upstreamRequests: Counter<'method' | 'resource' | 'outcome'>
  /** `ipdr_gateway_upstream_request_duration_seconds` */
  readonly upstreamDuration: ScrapeTimeHistogram<'method' | 'resource'>
  /** The pending counts of `upstreamRequests` (`recordUpstream`). */
  readonly pendingUpstream: PendingCounts<'method' | 'resource' | 'outcome'>
  /** `ipdr_gateway_cache_lookups_total` (read it with `get()`, which hands it the pending counts) */
  readonly cacheLookups: Counter<'resource' | 'result'>
  /** Counts one cache lookup into `cacheLookups`, at scrape time. */
  countLookup(resource: ApiResourceName, result: CacheResult): void
  /** The pending counts of `httpRequests` (`recordHttp`). */
  readonly pendingRequests: PendingCounts<'method' | 'route' | 'status_code' | 'consumer'>
  /** `ipdr_gateway_cache_invalidations_total` */
  readonly cacheInvalidations: Counter<'resource' | 'kind'>
  /** `ipdr_gateway_rate_limited_total` */
  readonly rateLimited: Counter<'consumer'>
  /** `ipdr_gateway_policy_denials_total` */
  readonly policyDenials: Counter<'consumer' | 'operation'>
  /** `ipdr_gateway_policy_reloads_total` */
  readonly policyReloads: Counter<'result'>
  /** `ipdr_gateway_cache_fill_duration_seconds`: upstream bytes in → entry served. */
  readonly cacheFillDuration: Histogram<'resource'>
  /** `ipdr_gateway_sync_writes_total`: writes of sync jobs by resource, operation and outcome. */
  readonly syncWrites: Counter<'resource' | 'operation' | 'outcome'>
  /** `ipdr_gateway_audit_records_total`: audit lines written (`ok`) or not (`failed`). */
  readonly auditRecords: Counter<'result' | 'phase'>
  /** The pending counts of `auditRecords` (`recordAuditLine`). */
  readonly pendingAudit: PendingCounts<'result' | 'phase'>
  /** `ipdr_gateway_audit_shipped_total{result}`: lines taken by the syslog receiver (`ok`) or dropped from a full queue. */
  readonly auditShipped: Counter<'result'>
  /** Where `ipdr_gateway_audit_ship_queue_bytes` is read at scrape time (the shipper's queue). */
  setAuditShipQueue(read: () => number): void
  // Gauges ipdr_gateway_cache_entries{resource}, ipdr_gateway_cache_bytes{resource} and
  // ipdr_gateway_upstream_up are computed in collect() from MetricsSources.
  /** Replace the sources (the app sets them once its cache and upstream client exist). */
  setSources(sources: MetricsSources): void
  /**
   * Registers `ipdr_gateway_store_up` (read from `up` at scrape time),
   * `ipdr_gateway_store_errors_total` and `ipdr_gateway_store_failovers_total`; a gateway without a
   * shared store has none of them (SPEC 5, 15). Idempotent.
   */
  enableStore(up: () => boolean): StoreMetrics
}

/** The metrics of a shared store (SPEC 5, 15). */
export interface StoreMetrics {
  /** `ipdr_gateway_store_errors_total{operation}`. */
  readonly errors: Counter<'operation'>
  /** `ipdr_gateway_store_failovers_total`. */
  readonly failovers: Counter
}

export interface CreateMetricsOptions {
  /** Register prom-client's default process and Node.js metrics on the registry. Default `true`. */
  defaultMetrics?: boolean
  /** Scrape-time sources of the gauges; replaceable later with `setSources`. Default none (gauges read 0). */
  sources?: MetricsSources
}

/** Every `ipdr_gateway_*` family with its type and label names, as SPEC section 5 lists them. */
export const METRIC_FAMILIES = {
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
  ipdr_gateway_store_failovers_total: { type: 'counter', labels: [] },
  ipdr_gateway_sync_writes_total: { type: 'counter', labels: ['resource', 'operation', 'outcome'] },
  ipdr_gateway_audit_records_total: { type: 'counter', labels: ['result', 'phase'] },
  ipdr_gateway_audit_shipped_total: { type: 'counter', labels: ['result'] },
  ipdr_gateway_audit_ship_queue_bytes: { type: 'gauge', labels: [] },
} as const satisfies Record<string, { type: 'counter' | 'gauge' | 'histogram'; labels: readonly string[] }>

/**
 * Builds the metrics of one gateway instance on a fresh registry.
 *
 * Bounded, known label combinations are pre-initialised to 0 (upstream
 * method × resource × outcome, cache resource × result, invalidations per
 * resource, reload results) so that `rate()`/`increase()` see the first event
 * and dashboards show zeros instead of "no data". Histograms are not
 * pre-initialised: each series costs a line per bucket and a quantile of
 * nothing is not a useful zero.
 */
export function createMetrics(options: CreateMetricsOptions = {}): GatewayMetrics {
  const registry = new Registry()
  let sources: MetricsSources = options.sources ?? {}
  const registers = [registry]

  const pendingRequests = new PendingCounts<'method' | 'route' | 'status_code' | 'consumer'>()
  const pendingLookups = new PendingCounts<'resource' | 'result'>()
  const httpRequests = new Counter({
    name: 'ipdr_gateway_http_requests_total',
    help: 'Requests answered by the gateway, by method, route pattern, status code and policy consumer.',
    labelNames: ['method', 'route', 'status_code', 'consumer'] as const,
    registers,
    collect() {
      pendingRequests.flush()
    },
  })
  pendingRequests.bind(httpRequests)
  const httpDuration = new ScrapeTimeHistogram({
    name: 'ipdr_gateway_http_request_duration_seconds',
    help: 'Time from receiving a request to sending its response, in seconds.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [...DURATION_BUCKETS],
    registers,
  })
  const pendingUpstream = new PendingCounts<'method' | 'resource' | 'outcome'>()
  const upstreamRequests = new Counter({
    name: 'ipdr_gateway_upstream_requests_total',
    help: 'Requests sent to the Trisul upstream, by method, resource and outcome.',
    labelNames: ['method', 'resource', 'outcome'] as const,
    registers,
    collect() {
      pendingUpstream.flush()
    },
  })
  pendingUpstream.bind(upstreamRequests)
  const upstreamDuration = new ScrapeTimeHistogram({
    name: 'ipdr_gateway_upstream_request_duration_seconds',
    help: 'Duration of requests to the Trisul upstream, in seconds.',
    labelNames: ['method', 'resource'] as const,
    buckets: [...DURATION_BUCKETS],
    registers,
  })
  const cacheLookups = new Counter({
    name: 'ipdr_gateway_cache_lookups_total',
    help: 'Listing cache lookups, by resource and result (hit, miss, stale, coalesced).',
    labelNames: ['resource', 'result'] as const,
    registers,
    collect() {
      pendingLookups.flush()
    },
  })
  pendingLookups.bind(cacheLookups)
  const cacheInvalidations = new Counter({
    name: 'ipdr_gateway_cache_invalidations_total',
    help: 'Cached listings a write through the gateway patched (kind applied) or dropped (kind dropped), by resource.',
    labelNames: ['resource', 'kind'] as const,
    registers,
  })
  const rateLimited = new Counter({
    name: 'ipdr_gateway_rate_limited_total',
    help: 'Requests refused with 429 by the rate limiter, by policy consumer.',
    labelNames: ['consumer'] as const,
    registers,
  })
  const policyDenials = new Counter({
    name: 'ipdr_gateway_policy_denials_total',
    help: 'Requests refused by the policy, by consumer and operation.',
    labelNames: ['consumer', 'operation'] as const,
    registers,
  })
  const policyReloads = new Counter({
    name: 'ipdr_gateway_policy_reloads_total',
    help: 'Policy reloads, by result (ok: swapped in; invalid: rejected, the old policy kept).',
    labelNames: ['result'] as const,
    registers,
  })

  const cacheFillDuration = new Histogram({
    name: 'ipdr_gateway_cache_fill_duration_seconds',
    help: 'Time from the last byte of an upstream listing to its cache entry being ready to serve, in seconds.',
    labelNames: ['resource'] as const,
    buckets: [...DURATION_BUCKETS],
    registers,
  })

  const syncWrites = new Counter({
    name: 'ipdr_gateway_sync_writes_total',
    help: 'Upstream writes made by sync jobs, by resource, operation and outcome (ok; rejected: a 4xx answer; failed: no usable answer).',
    labelNames: ['resource', 'operation', 'outcome'] as const,
    registers,
  })
  const auditShipped = new Counter({
    name: 'ipdr_gateway_audit_shipped_total',
    help: 'Audit lines sent to the syslog receiver (ok), or dropped from a full queue while it was away (dropped).',
    labelNames: ['result'] as const,
    registers,
  })
  let auditShipQueue: () => number = () => 0
  new Gauge({
    name: 'ipdr_gateway_audit_ship_queue_bytes',
    help: 'Bytes of audit lines waiting for the syslog receiver (0 without audit.syslog).',
    registers,
    collect() {
      let value = 0
      try {
        value = auditShipQueue()
      } catch {
        value = 0
      }
      this.set(value)
    },
  })
  const pendingAudit = new PendingCounts<'result' | 'phase'>()
  const auditRecords = new Counter({
    name: 'ipdr_gateway_audit_records_total',
    help: 'Audit trail lines by result (ok written, failed not) and phase (intent and outcome of each forwarded write, access of each answer that disclosed records).',
    labelNames: ['result', 'phase'] as const,
    registers,
    collect() {
      pendingAudit.flush()
    },
  })
  pendingAudit.bind(auditRecords)

  new Gauge({
    name: 'ipdr_gateway_cache_entries',
    help: 'Listings currently held in the cache, by resource.',
    labelNames: ['resource'] as const,
    registers,
    collect() {
      const figures = readCache(sources)
      for (const resource of METRIC_RESOURCES) this.set({ resource }, figures[resource].entries)
    },
  })
  new Gauge({
    name: 'ipdr_gateway_cache_bytes',
    help: 'Bytes of the listings currently held in the cache, by resource.',
    labelNames: ['resource'] as const,
    registers,
    collect() {
      const figures = readCache(sources)
      for (const resource of METRIC_RESOURCES) this.set({ resource }, figures[resource].bytes)
    },
  })
  new Gauge({
    name: 'ipdr_gateway_upstream_up',
    help: '1 when the Trisul upstream is reachable (last probe or response), else 0.',
    registers,
    collect() {
      this.set(readUpstreamUp(sources))
    },
  })

  for (const resource of RECORD_RESOURCES) {
    for (const kind of INVALIDATION_KINDS) cacheInvalidations.inc({ resource, kind }, 0)
  }
  for (const resource of METRIC_RESOURCES) {
    for (const result of CACHE_RESULTS) cacheLookups.inc({ resource, result }, 0)
    for (const method of UPSTREAM_METHODS) {
      for (const outcome of UPSTREAM_OUTCOMES) upstreamRequests.inc({ method, resource, outcome }, 0)
    }
  }
  for (const result of POLICY_RELOAD_RESULTS) policyReloads.inc({ result }, 0)
  for (const result of AUDIT_RESULTS) for (const phase of AUDIT_PHASES) auditRecords.inc({ result, phase }, 0)
  for (const result of ['ok', 'dropped'] as const) auditShipped.inc({ result }, 0)
  for (const resource of RECORD_RESOURCES) {
    for (const operation of SYNC_OPERATIONS) {
      for (const outcome of SYNC_OUTCOMES) syncWrites.inc({ resource, operation, outcome }, 0)
    }
  }

  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry })

  let storeMetrics: StoreMetrics | null = null
  let storeUp: () => boolean = () => false
  const enableStore = (up: () => boolean): StoreMetrics => {
    storeUp = up
    if (storeMetrics) return storeMetrics
    new Gauge({
      name: 'ipdr_gateway_store_up',
      help: '1 when the shared store (Redis) answers this instance, else 0.',
      registers,
      collect() {
        let value = 0
        try {
          value = storeUp() ? 1 : 0
        } catch {
          value = 0
        }
        this.set(value)
      },
    })
    const errors = new Counter({
      name: 'ipdr_gateway_store_errors_total',
      help: 'Shared store (Redis) commands that failed or timed out, by what they were for.',
      labelNames: ['operation'] as const,
      registers,
    })
    for (const operation of STORE_OPERATIONS) errors.inc({ operation }, 0)
    const failovers = new Counter({
      name: 'ipdr_gateway_store_failovers_total',
      help: 'Master changes of the shared store this instance saw (a failover, or a Redis restarted): each drops what the instance can no longer prove.',
      registers,
    })
    storeMetrics = { errors, failovers }
    return storeMetrics
  }

  return {
    registry,
    httpRequests,
    httpDuration,
    upstreamRequests,
    upstreamDuration,
    pendingUpstream,
    cacheLookups,
    countLookup: (resource, result) =>
      pendingLookups.add(`${resource} ${result}`, () => ({ resource, result })),
    pendingRequests,
    cacheInvalidations,
    rateLimited,
    policyDenials,
    policyReloads,
    cacheFillDuration,
    syncWrites,
    auditRecords,
    pendingAudit,
    auditShipped,
    setAuditShipQueue(read) {
      auditShipQueue = read
    },
    setSources(next: MetricsSources) {
      sources = next ?? {}
    },
    enableStore,
  }
}

/** A gauge value we can publish: finite and not negative, else 0. */
function figure(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0
}

/**
 * Reads the cache source. A source that throws or returns garbage must not
 * break the whole scrape (Prometheus would lose every other metric with it),
 * so such a resource reads 0.
 */
function readCache(sources: MetricsSources): Record<ApiResourceName, CacheFigures> {
  let raw: Partial<Record<string, CacheFigures>> | undefined
  try {
    raw = sources.cache?.()
  } catch {
    raw = undefined
  }
  const out = {} as Record<ApiResourceName, CacheFigures>
  for (const resource of METRIC_RESOURCES) {
    const entry: unknown = raw && typeof raw === 'object' ? raw[resource] : undefined
    const fig = entry && typeof entry === 'object' ? (entry as Partial<CacheFigures>) : {}
    out[resource] = { entries: figure(fig.entries), bytes: figure(fig.bytes) }
  }
  return out
}

/** Unknown (no source yet, or a failing one) reads 0: "not known to be reachable", like /readyz. */
function readUpstreamUp(sources: MetricsSources): 0 | 1 {
  try {
    return sources.upstreamUp?.() === 1 ? 1 : 0
  } catch {
    return 0
  }
}

// --- Bounded labels -------------------------------------------------------------------------

/** Known methods upper-cased; anything else (WebDAV verbs, garbage) is `OTHER`. */
export function methodLabel(method: unknown): string {
  if (typeof method !== 'string' || method.length > 16) return OTHER_METHOD
  const upper = method.toUpperCase()
  return HTTP_METHODS.has(upper) ? upper : OTHER_METHOD
}

/** A route pattern is short printable ASCII starting with `/`; anything else is not a pattern. */
const ROUTE_PATTERN = /^\/[\x21-\x7e]{0,199}$/

/**
 * The route *pattern* (Fastify's `request.routeOptions.url`, e.g.
 * `/api/ipdrcustomers/:UserID`), or `unmatched` when there is none: the 404
 * handler has no pattern. Callers must pass the pattern, never `request.url`:
 * this check cannot tell a raw path from a pattern, it only rejects what can
 * be neither (empty, not starting with `/`, control or non-ASCII characters,
 * over 200 characters).
 */
export function routeLabel(route: unknown): string {
  return typeof route === 'string' && ROUTE_PATTERN.test(route) ? route : UNMATCHED_ROUTE
}

/** An HTTP status code 100-599 as a string; anything else `0`. */
export function statusLabel(statusCode: unknown): string {
  return typeof statusCode === 'number' &&
    Number.isInteger(statusCode) &&
    statusCode >= 100 &&
    statusCode <= 599
    ? String(statusCode)
    : '0'
}

/** A policy consumer name is a file stem: letters, digits, `.`, `_`, `-`, at most 64 characters. */
const CONSUMER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

/**
 * The consumer label: the name of a policy consumer (or `default`), else
 * `unknown`. Callers pass the *resolved consumer's name*, never a username or a
 * token; this check only keeps a caller's mistake from writing arbitrary text.
 */
export function consumerLabel(consumer: unknown): string {
  return typeof consumer === 'string' && CONSUMER_NAME.test(consumer) ? consumer : UNKNOWN_CONSUMER
}

export interface HttpObservation {
  /** The request method as received. */
  method: string
  /** The route pattern (`request.routeOptions.url`); undefined/null for unmatched requests. */
  route: string | undefined | null
  statusCode: number
  /** The resolved policy consumer's name; undefined/null before or without resolution. */
  consumer: string | undefined | null
  /** Response time in seconds (e.g. `reply.elapsedTime / 1000`). */
  seconds: number
}

/**
 * Records one answered request. Meant for an `onResponse` hook; every label is
 * passed through the bounding helpers above, so whatever a client sends the
 * number of series stays bounded. A non-finite or negative duration counts the
 * request but is not observed.
 */
/** One audit line written or not, counted at scrape time (as `recordHttp`). */
export function recordAuditLine(metrics: GatewayMetrics, result: string, phase: string): void {
  metrics.pendingAudit.add(seriesKey(result, phase), () => ({ result, phase }))
}

/** One finished upstream attempt: its count and duration, kept as plain numbers until the scrape (as `recordHttp`). */
export function recordUpstream(
  metrics: GatewayMetrics,
  o: { method: string; resource: string; outcome: string; seconds: number },
): void {
  const key = seriesKey(o.method, o.resource)
  const { method, resource, outcome } = o
  metrics.pendingUpstream.add(`${key} ${outcome}`, () => ({ method, resource, outcome }))
  if (Number.isFinite(o.seconds) && o.seconds >= 0) {
    metrics.upstreamDuration.series(key, () => ({ method, resource })).observe(o.seconds)
  }
}

export function recordHttp(metrics: GatewayMetrics, observation: HttpObservation): void {
  const method = methodLabel(observation.method)
  const route = routeLabel(observation.route)
  const status_code = statusLabel(observation.statusCode)
  const consumer = consumerLabel(observation.consumer)
  // Counts and durations wait for the scrape as plain numbers (PendingCounts,
  // ScrapeTimeHistogram), by a key string: prom-client validates and hashes the
  // label object on every inc/observe, which was a tenth of the cost of a cached
  // listing request. The label sets are bounded (see above).
  const durationKey = seriesKey(method, route, status_code)
  metrics.pendingRequests.add(`${durationKey} ${consumer}`, () => ({ method, route, status_code, consumer }))
  const seconds = observation.seconds
  if (typeof seconds === 'number' && Number.isFinite(seconds) && seconds >= 0) {
    metrics.httpDuration.series(durationKey, () => ({ method, route, status_code })).observe(seconds)
  }
}
