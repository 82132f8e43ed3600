/**
 * `buildApp(options)` assembles the gateway; it never listens (src/server.ts
 * does). Each call builds its own upstream pool, cache, readiness probe and
 * metrics registry, all closed in `onClose`. It only wires: what a request
 * meets is in src/http/ (docs/architecture.md).
 */

import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { openWriteAudit } from './audit/open.js'
import { JwtVerifier } from './auth/jwt-verifier.js'
import { ListingCache } from './cache/listing-cache.js'
import { listingScannerPool } from './cache/listing-scanner.js'
import { CachedListings, staleMayCover, wasAdopted } from './cache/listing-source.js'
import { ListingWrites } from './cache/listing-writes.js'
import { registerAccessLog } from './http/access-log.js'
import { BodiesInFlight, registerBodiesInFlight } from './http/admission/bodies-in-flight.js'
import {
  apiRouteRateLimitConfig,
  registerAuthFailureLimiter,
  registerRateLimits,
} from './http/admission/rate-limit.js'
import { registerCors } from './http/cors.js'
import { registerErrorReplies } from './http/error-handler.js'
import { registerJsonBody } from './http/json-body.js'
import { makeListingFastPath } from './http/listing/fast-path.js'
import { makeListingHitHandler } from './http/listing/hit-handler.js'
import { registerOpenApi } from './http/openapi/plugin.js'
import { registerRequestContext, requestIdOf } from './http/request-context.js'
import { registerApiRoutes } from './http/routes/api.js'
import { registerHealthRoutes } from './http/routes/health.js'
import { registerMetricsRoute } from './http/routes/metrics.js'
import { registerQueryRoutes } from './http/routes/queries.js'
import { registerSyncRoutes, SYNC_PATH } from './http/routes/sync.js'
import { chainLowerHandlers, gatewayServer, type LowerHandler } from './http/server/server-factory.js'
import type { TlsMaterial } from './http/server/tls.js'
import { makeWriteHandler } from './http/writes/write-handler.js'
import { createMetrics, type GatewayMetrics, recordUpstream } from './metrics.js'
import type { Policy } from './policy/types.js'
import { QueryResultCache } from './queries/query-result.js'
import { type Coherence, LocalCoherence } from './store/coherence.js'
import { describeEndpoint, redisEndpoint } from './store/redis-client.js'
import { openSharedStore, redisStorePolicy, type SharedStore } from './store/shared-store.js'
import { SyncJobs } from './sync/jobs.js'
import { Tracing } from './telemetry/tracing.js'
import { UpstreamClient } from './upstream/client.js'
import { Readiness } from './upstream/readiness.js'
import { bodyValidators } from './validation/request-schema.js'

export interface PolicySource {
  readonly current: Policy
}

export interface AppOptions {
  /** The policy, or a store whose `current` may be swapped by a reload. */
  readonly policy: Policy | PolicySource
  /** Overrides `upstream.url` of the policy (`--upstream` / `UPSTREAM_URL`). */
  readonly upstreamUrl?: string
  /** Fastify/pino logger options; `false` for none. Default: info level JSON on stdout. */
  readonly logger?: FastifyServerOptions['logger']
  /** A metrics set to use (tests); default: a new one with its own registry. */
  readonly metrics?: GatewayMetrics
  /** Bearer token required on /metrics; default none. */
  readonly metricsToken?: string | null
  /** Serve /metrics on the main port. Default true (false when a separate metrics port is used). */
  readonly metricsOnMainPort?: boolean
  /** Start the readiness probe. Default true. */
  readonly probe?: boolean
  /** Clock for cache TTLs and the circuit breaker (tests). */
  readonly now?: () => number
  /**
   * Serve Swagger UI at `/docs` even when the policy's `docs.swaggerUi` is false
   * (the `npm start` demo turns it on). Default false: the policy decides.
   */
  readonly swaggerUi?: boolean
  /**
   * Answer fresh cached plain listings from an `onRequest` hook
   * (src/http/listing/fast-path.ts). Default true; tests turn it off to
   * compare with what the route answers.
   */
  readonly listingFastPath?: boolean
  /**
   * Answer plain writes below Fastify (src/http/writes/write-handler.ts). Default true; tests turn it
   * off to compare with what the route answers.
   */
  readonly writeFastPath?: boolean
  /**
   * Overrides `store.redis.url` of the policy (`--redis` / `REDIS_URL`); with no
   * `store.redis` in the policy, turns the shared store on with its defaults.
   */
  readonly redisUrl?: string
  /** This instance's id in the shared store; default random. */
  readonly instanceId?: string
  /** Overrides `audit.file` of the policy (`--audit-file` / `AUDIT_FILE`): one file per instance. */
  readonly auditFile?: string
  /** The `instance` of this gateway's audit lines. Default `hostname:pid`. */
  readonly instanceName?: string
  /** Serve HTTPS with this (checked) certificate and key (src/http/server/tls.ts); default plain HTTP. */
  readonly tls?: TlsMaterial
  /** Overrides `telemetry.otlp.endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`); null: no span even if the policy names one. */
  readonly otlpEndpoint?: string | null
  /** Longest a finished span waits to be exported, in ms (tests shorten it). Default 2000. */
  readonly spanExportDelayMs?: number
}

/** How long the start waits for the shared store before serving without it. */
const START_WAIT_FOR_STORE_MS = 1000

function isPolicySource(p: Policy | PolicySource): p is PolicySource {
  return 'current' in p
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const source: PolicySource = isPolicySource(options.policy) ? options.policy : { current: options.policy }
  const initial = source.current
  const metrics = options.metrics ?? createMetrics()
  const server = gatewayServer(initial, {
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    syncPath: SYNC_PATH,
  })
  const app = Fastify(server.options)

  // SPEC 18: read at start, like the listeners; spans exported until the app closes.
  const telemetry = initial.gateway.telemetry
  const tracing = new Tracing({
    endpoint: options.otlpEndpoint === undefined ? telemetry.otlp.endpoint : options.otlpEndpoint,
    sampleRatio: telemetry.sampleRatio,
    maxSampledPerSecond: telemetry.maxSampledPerSecond,
    ...(options.instanceName ? { instanceId: options.instanceName } : {}),
    ...(options.spanExportDelayMs === undefined ? {} : { exportDelayMs: options.spanExportDelayMs }),
  })
  app.addHook('onClose', () => tracing.shutdown())
  const { readiness, upstream } = upstreamOf(initial, options, metrics, tracing)
  const shared = sharedStoreOf(initial, options, metrics, app.log)
  const audit = await openWriteAudit(
    initial.gateway.audit,
    { ...options, headStore: shared?.auditHeads ?? null },
    metrics,
    app.log,
  )
  const scanner = listingScannerPool()
  const { cache, coherence, sharedCoherence, listings } = listingsOf(source, options, metrics, app.log, {
    upstream,
    shared,
    scanner,
    tracing,
  })
  const queryResults = new QueryResultCache()
  metrics.setSources({
    cache: () => ({
      ...cache.stats(),
      queries: { entries: queryResults.entries, bytes: queryResults.bytes },
    }),
    upstreamUp: () => (readiness.up ? 1 : 0),
  })

  // JWT consumers (SPEC 16): the issuers' keys fetched now, kept across reloads that keep the issuer.
  const jwt = new JwtVerifier({
    ...(options.now ? { now: options.now } : {}),
    onFetchError: (issuer, err) =>
      app.log.warn(
        { issuer, err: err instanceof Error ? err.message : String(err) },
        'JWKS fetch failed; last good keys kept',
      ),
  })
  jwt.configure(initial.gateway.auth.jwt.issuers, initial.jwtPublicKeys)

  // A reload swapped the policy: the cache follows its TTL and budget, the JWT verifier its issuers.
  let limitsOf = initial
  registerRequestContext(
    app,
    source,
    (policy) => {
      if (policy === limitsOf) return
      limitsOf = policy
      jwt.configure(policy.gateway.auth.jwt.issuers, policy.jwtPublicKeys)
      const limits = policy.gateway.cache
      cache.setLimits({
        maxBytes: limits.maxBytes,
        ttlMs: limits.ttlSeconds * 1000,
        staleIfErrorMs: limits.staleIfErrorSeconds * 1000,
      })
    },
    tracing,
  )
  registerAccessLog(app, metrics, tracing)
  const parseJson = registerJsonBody(app)
  registerErrorReplies(app)

  await registerCors(app, { store: source })
  const authFailures = registerAuthFailureLimiter(app, {
    store: source,
    jwt,
    ...(options.now ? { knownGoodClock: options.now } : {}),
    ...(shared ? { counterStore: shared.authFailureCounters } : {}),
  })
  const isKnownGood = authFailures.isKnownGood
  const bodies = new BodiesInFlight()
  registerBodiesInFlight(app, bodies)
  const rateLimiter = await registerRateLimits(app, {
    store: source,
    ...(shared ? { counterStore: shared.rateCounters } : {}),
    onLimited: (consumer) => metrics.rateLimited.inc({ consumer }),
  })
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
  })
  // Handlers below Fastify, each passing what it does not answer to the next, the last to Fastify.
  const lower: LowerHandler[] = []
  if (options.listingFastPath !== false) {
    // After the CORS and failed-authentication hooks, which apply to it as to every request.
    app.addHook('onRequest', makeListingFastPath({ cache, rateLimiter, isKnownGood, audit }))
    lower.push(
      makeListingHitHandler({
        policy: () => source.current,
        policyApplied: (policy) => policy === limitsOf,
        cache,
        rateLimiter,
        isKnownGood,
        jwt: jwt.lookup,
        tracing,
        metrics,
        log: app.log,
        requestId: requestIdOf,
        closing: () => closing,
        audit,
      }),
    )
  }
  if (options.writeFastPath !== false) {
    lower.push(
      makeWriteHandler({
        policy: () => source.current,
        policyApplied: (policy) => policy === limitsOf,
        rateLimiter,
        isKnownGood,
        authFailures,
        jwt: jwt.lookup,
        tracing,
        bodies,
        parseJson,
        upstream,
        listings,
        audit,
        metrics,
        log: app.log,
        requestId: requestIdOf,
        closing: () => closing,
      }),
    )
  }
  const chained = chainLowerHandlers(lower)
  if (chained !== null) server.setLowerHandler(chained)

  // Before any route it documents: @fastify/swagger collects routes as they are added.
  await registerOpenApi(app, { store: source, swaggerUi: options.swaggerUi === true })
  registerHealthRoutes(app, { readiness })
  if (options.metricsOnMainPort !== false) {
    await registerMetricsRoute(app, { metrics, token: options.metricsToken ?? null })
  }
  const admission = {
    parseJson,
    rateLimitConfig: apiRouteRateLimitConfig,
    rateLimiter,
    isKnownGood,
    chargeUnproven: authFailures.chargeUnproven,
    onDenied: (consumer: string, operation: string) => metrics.policyDenials.inc({ consumer, operation }),
  }
  registerApiRoutes(app, { ...admission, upstream, listings, audit })
  registerQueryRoutes(app, {
    ...admission,
    policy: () => source.current,
    upstream,
    audit,
    results: queryResults,
    onResultLookup: (result) => metrics.countLookup('queries', result),
  })
  const syncJobs = new SyncJobs({ ...(shared ? { shared: shared.jobs } : {}), log: app.log })
  await registerSyncRoutes(app, {
    ...admission,
    policy: () => source.current,
    upstream,
    listings,
    audit,
    metrics,
    jobs: syncJobs,
    scanner,
    settleCharge: authFailures.settle,
  })

  app.addHook('onReady', async () => {
    // Compiled before the first request rather than by it (~50 ms of schemas: a first write, a sync job).
    bodyValidators(source.current.gateway.validation)
    // Listen once Redis has been reached (budgets counted there from the first request), but never
    // wait long for a dead one: SPEC 8 wants the gateway up without its store.
    if (sharedCoherence && !(await sharedCoherence.firstContact(START_WAIT_FOR_STORE_MS))) {
      app.log.warn({ store: 'redis' }, 'shared store not reached at start: counting locally until it answers')
    }
    if (options.probe !== false) void readiness.start()
  })
  app.addHook('onClose', async () => {
    readiness.stop()
    // Running sync jobs stop sending; the writes in flight finish (and are audited) first.
    await syncJobs.close()
    // Closes its coherence protocol too (a local one has nothing to close).
    await shared?.close()
    await upstream.close()
    await scanner.close()
    // Last: requests still finishing write their outcome lines first.
    await audit.close()
  })
  app.decorate('gatewayMetrics', metrics)
  app.decorate('readiness', readiness)
  // Diagnostics for tests and operators' scripts: what the shared store looks like from here.
  app.decorate('storeState', () => ({
    configured: shared !== null,
    up: shared?.health.up ?? false,
    servingCached: coherence.mayServeCached(),
    instanceId: shared?.instanceId ?? null,
    epoch: sharedCoherence?.epoch ?? null,
  }))
  return app
}

/** The upstream client (timeouts, circuit breaker, metrics) and the readiness probe of its address. */
function upstreamOf(policy: Policy, options: AppOptions, metrics: GatewayMetrics, tracing: Tracing) {
  const up = policy.gateway.upstream
  const url = options.upstreamUrl ?? up.url
  const readiness = new Readiness({
    url: new URL(url),
    intervalMs: up.probeIntervalSeconds * 1000,
    connectTimeoutMs: up.connectTimeoutMs,
  })
  const upstream = new UpstreamClient({
    url,
    timeoutMs: up.timeoutMs,
    connectTimeoutMs: up.connectTimeoutMs,
    caFile: up.caFile,
    circuit: up.circuit,
    ...(options.now ? { now: options.now } : {}),
    onResponse: () => readiness.markResponse(),
    tracing,
    onAttempt: ({ method, resource, outcome, seconds }) => {
      recordUpstream(metrics, { method, resource, outcome, seconds })
    },
  })
  return { readiness, upstream }
}

/** The shared store of `store.redis` (or `--redis`), or null for one instance. */
function sharedStoreOf(
  policy: Policy,
  options: AppOptions,
  metrics: GatewayMetrics,
  log: FastifyBaseLogger,
): SharedStore | null {
  const redis = redisStorePolicy(policy.gateway.store.redis, options.redisUrl)
  if (!redis) return null
  let shared: SharedStore | null = null
  const storeMetrics = metrics.enableStore(() => shared?.health.up === true)
  const endpoint = redisEndpoint(redis, policy.storeSecrets)
  shared = openSharedStore({
    redis,
    endpoint,
    upstreamTimeoutMs: policy.gateway.upstream.timeoutMs,
    cacheTtlMs: policy.gateway.cache.ttlSeconds * 1000,
    // Counted, not logged one by one: a dead Redis fails every command; the log has the state changes.
    onError: (operation) => storeMetrics.errors.inc({ operation }),
    onNewMaster: () => storeMetrics.failovers.inc(),
    log,
    ...(options.instanceId ? { instanceId: options.instanceId } : {}),
  })
  log.info({ store: describeEndpoint(endpoint), keyPrefix: redis.keyPrefix }, 'shared store')
  return shared
}

/** The listing cache, the coherence of it across instances, and the listing source over both. */
function listingsOf(
  source: PolicySource,
  options: AppOptions,
  metrics: GatewayMetrics,
  log: FastifyBaseLogger,
  deps: {
    upstream: UpstreamClient
    shared: SharedStore | null
    scanner: ReturnType<typeof listingScannerPool>
    tracing: Tracing
  },
) {
  const limits = source.current.gateway.cache
  let coherence: Coherence | null = null
  const cache = new ListingCache({
    maxBytes: limits.maxBytes,
    ttlMs: limits.ttlSeconds * 1000,
    staleIfErrorMs: limits.staleIfErrorSeconds * 1000,
    ...(options.now ? { now: options.now } : {}),
    onLookup: (resource, result) => metrics.countLookup(resource, result),
    // Every series starts at zero (createMetrics): adding nothing to one is no work worth doing per write.
    onInvalidate: (resource, count, kind) => {
      if (count > 0) metrics.cacheInvalidations.inc({ resource, kind }, count)
    },
    staleOn: staleMayCover,
    mayServe: () => coherence === null || coherence.mayServeCached(),
    adopted: wasAdopted,
    // Silently uncached, a big ISP's listing would be fetched whole for every request.
    onTooLarge: (resource, bytes, maxBytes) =>
      log.warn(
        { resource, bytes, maxBytes },
        'listing larger than cache.maxBytes: served but not cached, so every request fetches it; raise cache.maxBytes',
      ),
  })
  // SPEC 19: what a write does to this instance's listings (its change applied, or the context dropped).
  const writes = new ListingWrites({
    cache,
    scanner: deps.scanner,
    enabled: () => source.current.gateway.cache.applyWrites,
  })
  const sharedCoherence = deps.shared ? deps.shared.coherence(writes) : null
  coherence = sharedCoherence ?? new LocalCoherence(writes)
  const listings = new CachedListings({
    cache,
    upstream: deps.upstream,
    policy: () => source.current,
    coherence,
    ...(deps.shared ? { fills: deps.shared.fills } : {}),
    onFilled: (resource, seconds) => metrics.cacheFillDuration.observe({ resource }, seconds),
    scanner: deps.scanner,
    tracing: deps.tracing,
  })
  return { cache, coherence, sharedCoherence, listings }
}

declare module 'fastify' {
  interface FastifyInstance {
    gatewayMetrics: GatewayMetrics
    readiness: Readiness
    storeState: () => {
      configured: boolean
      up: boolean
      servingCached: boolean
      instanceId: string | null
      epoch: string | null
    }
  }
}
