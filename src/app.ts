/**
 * `buildApp(options)` assembles the gateway; it never listens (src/server.ts
 * does). Each call builds its own upstream pool, cache, readiness probe and
 * metrics registry, all closed in `onClose`.
 */
import { randomUUID } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import { NO_AUDIT, WriteAudit } from './audit/write-audit.js'
import { AuditTrail } from './audit/writer.js'
import { ListingCache } from './cache/listing-cache.js'
import { listingScannerPool } from './cache/listing-scanner.js'
import { ERRORS, errorBody, GatewayError, WWW_AUTHENTICATE } from './errors.js'
import { registerApiRoutes } from './http/api-routes.js'
import { BodiesInFlight, registerBodiesInFlight } from './http/bodies-in-flight.js'
import { clientErrorHandler } from './http/client-errors.js'
import { registerCors } from './http/cors.js'
import { toGatewayError, verdictOfError } from './http/error-reply.js'
import { drainable } from './http/get-body.js'
import { registerHealthRoutes } from './http/health-routes.js'
import {
  CONNECTIONS_CHECKING_INTERVAL_MS,
  dropForgedForwards,
  guardServer,
  type ListenerLimits,
  watchRequest,
} from './http/listener-guards.js'
import { makeListingFastPath } from './http/listing-fast-path.js'
import { makeListingHitHandler } from './http/listing-hit-handler.js'
import { CachedListings, staleMayCover } from './http/listings.js'
import { registerMetricsRoute } from './http/metrics-route.js'
import { registerOpenApi } from './http/openapi.js'
import { registerQueryRoutes } from './http/query-routes.js'
import { apiRouteRateLimitConfig, registerAuthFailureLimiter, registerRateLimits } from './http/rate-limit.js'
import { newRequestContext, type RequestContext } from './http/request-context.js'
import { bodyValidators } from './http/request-schema.js'
import { capMessage, presentedSecrets, querySecrets, scrubSecrets, scrubUrl } from './http/secrets.js'
import { registerSyncRoutes, SYNC_PATH } from './http/sync-routes.js'
import { httpsServerOptions, type TlsMaterial } from './http/tls.js'
import { LOG_REDACT_PATHS } from './logging.js'
import { createMetrics, type GatewayMetrics, recordHttp } from './metrics.js'
import { KnownGoodCredentials } from './policy/known-good.js'
import type { AuditPolicy, Policy } from './policy/types.js'
import { QueryResultCache } from './queries/query-result.js'
import { type Coherence, LocalCoherence } from './store/coherence.js'
import { redactRedisUrl } from './store/redis-url.js'
import { openSharedStore, redisStorePolicy, type SharedStore } from './store/shared-store.js'
import { SyncJobs } from './sync/jobs.js'
import { UpstreamClient } from './upstream/client.js'
import { Readiness } from './upstream/readiness.js'

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
   * (src/http/listing-fast-path.ts). Default true; tests turn it off to
   * compare with what the route answers.
   */
  readonly listingFastPath?: boolean
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
  /** Serve HTTPS with this (checked) certificate and key (src/http/tls.ts); default plain HTTP. */
  readonly tls?: TlsMaterial
}

/** How long the start waits for the shared store before serving without it. */
const START_WAIT_FOR_STORE_MS = 1000

// Accept a client's request id only when it is short and plain (shared/SPEC.md 3.6).
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

function requestIdOf(req: IncomingMessage): string {
  const v = req.headers['x-request-id']
  return typeof v === 'string' && SANE_REQUEST_ID.test(v) ? v : randomUUID()
}

function isPolicySource(p: Policy | PolicySource): p is PolicySource {
  return 'current' in p
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const source: PolicySource = isPolicySource(options.policy) ? options.policy : { current: options.policy }
  const initial = source.current
  const upstreamPolicy = initial.gateway.upstream
  const metrics = options.metrics ?? createMetrics()

  // Cached listing hits are answered by the server's own listener, below Fastify, once the handler
  // is made (src/http/listing-hit-handler.ts); everything else goes to Fastify's.
  type Listener = (req: IncomingMessage, res: ServerResponse) => void
  // Read at start: a server's timeouts and connection cap are set once (docs/operations.md).
  const listenerLimits: ListenerLimits = {
    server: initial.gateway.server,
    syncRequestTimeoutMs: initial.gateway.sync.requestTimeoutMs,
    syncPath: SYNC_PATH,
  }
  let hitHandler: ((req: IncomingMessage, res: ServerResponse, next: Listener) => void) | null = null
  const serverFactory = (handler: Listener, opts: FastifyServerOptions): Server => {
    const forwarded = initial.gateway.trustProxy.length > 0
    const listener: Listener = (req, res) => {
      watchRequest(req, res, listenerLimits)
      if (forwarded) dropForgedForwards(req)
      if (hitHandler === null) handler(req, res)
      else hitHandler(req, res, handler)
    }
    const serverOptions = { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS }
    const server = options.tls
      ? createHttpsServer({ ...httpsServerOptions(options.tls), ...serverOptions }, listener)
      : createServer(serverOptions, listener)
    // What Fastify does to a server it makes itself (fastify/lib/server.js, getServerInstance),
    // with the timeouts and the per-address cap of SPEC 13.
    server.setTimeout(opts.connectionTimeout ?? 0)
    if ((opts.maxRequestsPerSocket ?? 0) > 0)
      server.maxRequestsPerSocket = opts.maxRequestsPerSocket as number
    guardServer(server, listenerLimits)
    return server
  }

  const app = Fastify({
    ...(options.tls ? { https: httpsServerOptions(options.tls) } : {}),
    serverFactory: serverFactory as unknown as FastifyServerOptions['serverFactory'],
    logger:
      options.logger === undefined
        ? { level: 'info', redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' } }
        : options.logger,
    genReqId: requestIdOf,
    // One access line per request, written when it is answered (the onResponse hook below), as
    // nginx's access log: Fastify's own two lines ("incoming request", "request completed") cost
    // twice the serialization and redaction for the same facts (docs/performance.md, row 13).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: initial.gateway.limits.bodyBytes,
    // Proxies are not trusted unless the policy lists them: request.ip is the socket peer.
    trustProxy: initial.gateway.trustProxy.length > 0 ? [...initial.gateway.trustProxy] : false,
    return503OnClosing: true,
    clientErrorHandler,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: false, caseSensitive: true },
    // The router's own rejections (a path that is not valid percent-encoding, a
    // parameter over maxParamLength) get the gateway's error shape and request id
    // too; nothing reached a route, so nothing reached the upstream.
    frameworkErrors: (err, request, rawReply) => {
      const reply = rawReply as FastifyReply
      const ge =
        err.code === 'FST_ERR_MAX_PARAM_LENGTH'
          ? new GatewayError('IPDR_GW_INVALID_USER_ID', 'UserID is too long')
          : err.code === 'FST_ERR_BAD_URL'
            ? new GatewayError('IPDR_GW_NOT_FOUND')
            : new GatewayError('IPDR_GW_INTERNAL')
      request.log.info({ code: ge.code, statusCode: ge.statusCode }, ge.message)
      reply.header('x-request-id', request.id)
      reply.code(ge.statusCode).type('application/json; charset=utf-8').send(ge.toBody())
    },
  })

  const upstreamUrl = options.upstreamUrl ?? upstreamPolicy.url
  const readiness = new Readiness({
    url: new URL(upstreamUrl),
    intervalMs: upstreamPolicy.probeIntervalSeconds * 1000,
    connectTimeoutMs: upstreamPolicy.connectTimeoutMs,
  })
  const upstream = new UpstreamClient({
    url: upstreamUrl,
    timeoutMs: upstreamPolicy.timeoutMs,
    connectTimeoutMs: upstreamPolicy.connectTimeoutMs,
    caFile: upstreamPolicy.caFile,
    circuit: upstreamPolicy.circuit,
    ...(options.now ? { now: options.now } : {}),
    onResponse: () => readiness.markResponse(),
    onAttempt: ({ method, resource, outcome, seconds }) => {
      metrics.upstreamRequests.inc({ method, resource, outcome })
      metrics.upstreamDuration.observe({ method, resource }, seconds)
    },
  })
  const redisPolicy = redisStorePolicy(initial.gateway.store.redis, options.redisUrl)
  let shared: SharedStore | null = null
  if (redisPolicy) {
    const storeErrors = metrics.enableStore(() => shared?.health.up === true)
    shared = openSharedStore({
      redis: redisPolicy,
      upstreamTimeoutMs: upstreamPolicy.timeoutMs,
      cacheTtlMs: initial.gateway.cache.ttlSeconds * 1000,
      // Counted, not logged one by one: a dead Redis fails every command; the log has the state changes.
      onError: (operation) => storeErrors.inc({ operation }),
      log: app.log,
      ...(options.instanceId ? { instanceId: options.instanceId } : {}),
    })
    app.log.info({ store: redactRedisUrl(redisPolicy.url), keyPrefix: redisPolicy.keyPrefix }, 'shared store')
  }
  const audit = await openWriteAudit(initial.gateway.audit, options, metrics, app.log)
  let coherence: Coherence | null = null
  // Large listings are checked in a worker, so a fill never stalls the event loop (SPEC 9).
  const scanner = listingScannerPool()
  const cache = new ListingCache({
    maxBytes: initial.gateway.cache.maxBytes,
    ttlMs: initial.gateway.cache.ttlSeconds * 1000,
    staleIfErrorMs: initial.gateway.cache.staleIfErrorSeconds * 1000,
    ...(options.now ? { now: options.now } : {}),
    onLookup: (resource, result) => metrics.countLookup(resource, result),
    onInvalidate: (resource, count) => metrics.cacheInvalidations.inc({ resource }, count),
    staleOn: staleMayCover,
    mayServe: () => coherence === null || coherence.mayServeCached(),
    // Silently uncached, a big ISP's listing would be fetched whole for every request.
    onTooLarge: (resource, bytes, maxBytes) =>
      app.log.warn(
        { resource, bytes, maxBytes },
        'listing larger than cache.maxBytes: served but not cached, so every request fetches it; raise cache.maxBytes',
      ),
  })
  const sharedCoherence = shared ? shared.coherence(cache) : null
  coherence = sharedCoherence ?? new LocalCoherence(cache)
  const listings = new CachedListings({
    cache,
    upstream,
    policy: () => source.current,
    coherence,
    ...(shared ? { fills: shared.fills } : {}),
    onFilled: (resource, seconds) => metrics.cacheFillDuration.observe({ resource }, seconds),
    scanner,
  })
  const queryResults = new QueryResultCache()
  metrics.setSources({
    cache: () => ({
      ...cache.stats(),
      queries: { entries: queryResults.entries, bytes: queryResults.bytes },
    }),
    upstreamUp: () => (readiness.up ? 1 : 0),
  })

  let limitsOf = initial
  app.decorateRequest('gw', null as unknown as RequestContext)
  app.decorateRequest('upstreamAuth', null)
  app.addHook('onRequest', async (request, reply) => {
    const policy = source.current
    // A request keeps the policy it started under, even across a reload.
    request.gw = newRequestContext(policy)
    request.upstreamAuth = null
    reply.header('x-request-id', request.id)
    if (policy !== limitsOf) {
      // A reload swapped the policy: the cache follows its TTL and budget.
      limitsOf = policy
      const limits = policy.gateway.cache
      cache.setLimits({
        maxBytes: limits.maxBytes,
        ttlMs: limits.ttlSeconds * 1000,
        staleIfErrorMs: limits.staleIfErrorSeconds * 1000,
      })
    }
  })
  app.addHook('onResponse', async (request, reply) => {
    // pino's level check; a logger without it (logger: false gives an abstract one) logs nothing here.
    if ((request.log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info')) {
      request.log.info(
        {
          method: request.method,
          url: scrubUrl(request.url),
          statusCode: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 1000) / 1000,
          consumer: request.gw?.consumerName ?? 'unknown',
        },
        'request',
      )
    }
    recordHttp(metrics, {
      method: request.method,
      route: request.routeOptions.url,
      statusCode: reply.statusCode,
      consumer: request.gw?.consumerName ?? 'unknown',
      seconds: reply.elapsedTime / 1000,
    })
  })

  // JSON only, and an empty body is "no body" (clients send DELETE with a
  // Content-Type and nothing else). Prototype poisoning is refused.
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if ((body as string).trim().length === 0) {
      done(null, undefined)
      return
    }
    parseJson(request, body as string, done)
  })
  const parseJsonText = (text: string): unknown => {
    let out: unknown
    let error: Error | null = null
    parseJson({} as never, text, (err, value) => {
      error = err
      out = value
    })
    if (error) throw error
    return out
  }

  app.setErrorHandler((err, request, reply) => {
    const ge = toGatewayError(err)
    // What Trisul said of the credentials, whether or not its envelope is passed through (SPEC 13).
    const verdict = verdictOfError(ge)
    if (verdict !== null && request.gw) request.gw.trisulVerdict = verdict
    // A body refused before it was read is drained only when small: else the connection closes after the answer.
    if (ge.statusCode === 408 || !(request.raw.complete || drainable(request.raw)))
      reply.header('connection', 'close')
    // Nothing secret echoed: the request's own token, key and query secrets are masked in any message.
    const secrets = [
      ...presentedSecrets(request.raw.rawHeaders),
      ...(request.upstreamAuth ? [request.upstreamAuth.token] : []),
      ...querySecrets(request.url),
    ]
    if (ge.passthrough && request.gw?.policy.gateway.upstream.normalizeErrors === false) {
      // Legacy clients asked for Trisul's envelopes as they are (but for the secrets they may echo).
      const text = ge.passthrough.body.toString('utf8')
      const scrubbed = scrubSecrets(text, secrets)
      const body = scrubbed === text ? ge.passthrough.body : scrubbed
      reply.code(ge.passthrough.statusCode).type('application/json; charset=utf-8').send(body)
      return
    }
    const message = capMessage(scrubSecrets(ge.message, secrets))
    if (ge.statusCode >= 500) request.log.error({ err: ge.cause ?? ge, code: ge.code }, message)
    else request.log.info({ code: ge.code, statusCode: ge.statusCode }, message)
    for (const [k, v] of Object.entries(ge.headers)) reply.header(k, v)
    if (ge.statusCode === 401 && !reply.hasHeader('www-authenticate')) {
      reply.header('www-authenticate', WWW_AUTHENTICATE)
    }
    reply.code(ge.statusCode).type('application/json; charset=utf-8').send(errorBody(ge.code, message))
  })
  app.setNotFoundHandler((_request, reply) => {
    reply.code(ERRORS.IPDR_GW_NOT_FOUND.status).send(errorBody('IPDR_GW_NOT_FOUND'))
  })

  await registerCors(app, { store: source })
  const fastPath = options.listingFastPath !== false
  const knownGood = new KnownGoodCredentials({
    seconds: () => source.current.gateway.auth.knownGoodSeconds,
    ...(options.now ? { clock: options.now } : {}),
  })
  const isKnownGood = (username: string, tokenHash: string) => knownGood.has(username, tokenHash)
  const authFailures = registerAuthFailureLimiter(app, {
    store: source,
    knownGood,
    ...(shared ? { counterStore: shared.authFailureCounters } : {}),
  })
  registerBodiesInFlight(app, new BodiesInFlight())
  const rateLimiter = await registerRateLimits(app, {
    store: source,
    ...(shared ? { counterStore: shared.rateCounters, guardedCounter: shared.admission } : {}),
    onLimited: (consumer) => metrics.rateLimited.inc({ consumer }),
  })
  if (fastPath) {
    // After the CORS and failed-authentication hooks, which apply to it as to every request.
    app.addHook('onRequest', makeListingFastPath({ cache, rateLimiter, isKnownGood }))
    let closing = false
    app.addHook('preClose', async () => {
      closing = true
    })
    hitHandler = makeListingHitHandler({
      policy: () => source.current,
      policyApplied: (policy) => policy === limitsOf,
      cache,
      rateLimiter,
      isKnownGood,
      metrics,
      log: app.log,
      requestId: requestIdOf,
      closing: () => closing,
    })
  }

  // Before any route it documents: @fastify/swagger collects routes as they are added.
  await registerOpenApi(app, { store: source, swaggerUi: options.swaggerUi === true })
  registerHealthRoutes(app, { readiness })
  if (options.metricsOnMainPort !== false) {
    await registerMetricsRoute(app, { metrics, token: options.metricsToken ?? null })
  }
  registerApiRoutes(app, {
    upstream,
    listings,
    audit,
    parseJson: parseJsonText,
    rateLimitConfig: apiRouteRateLimitConfig,
    rateLimiter,
    isKnownGood,
    chargeUnproven: (request, reply, key) => authFailures.chargeUnproven(request, reply, key),
    onDenied: (consumer, operation) => metrics.policyDenials.inc({ consumer, operation }),
  })

  registerQueryRoutes(app, {
    policy: () => source.current,
    upstream,
    audit,
    parseJson: parseJsonText,
    results: queryResults,
    onResultLookup: (result) => metrics.countLookup('queries', result),
    rateLimitConfig: apiRouteRateLimitConfig,
    rateLimiter,
    isKnownGood,
    chargeUnproven: (request, reply, key) => authFailures.chargeUnproven(request, reply, key),
    onDenied: (consumer, operation) => metrics.policyDenials.inc({ consumer, operation }),
  })

  const syncJobs = new SyncJobs()
  await registerSyncRoutes(app, {
    policy: () => source.current,
    upstream,
    listings,
    audit,
    metrics,
    jobs: syncJobs,
    scanner,
    settleCharge: (address, auth, verdict) => authFailures.settle(address, auth, verdict),
    rateLimitConfig: apiRouteRateLimitConfig,
    rateLimiter,
    isKnownGood,
    onDenied: (consumer, operation) => metrics.policyDenials.inc({ consumer, operation }),
  })

  if (sharedCoherence) {
    // Listen once Redis has been reached (budgets counted there from the first request), but never
    // wait long for a dead one: SPEC 8 wants the gateway up without its store.
    app.addHook('onReady', async () => {
      if (!(await sharedCoherence.firstContact(START_WAIT_FOR_STORE_MS))) {
        app.log.warn(
          { store: 'redis' },
          'shared store not reached at start: counting locally until it answers',
        )
      }
    })
  }
  // Compiled before the first request rather than by it (~50 ms of schemas: a first write, a sync job).
  app.addHook('onReady', async () => {
    bodyValidators(source.current.gateway.validation)
  })
  if (options.probe !== false) {
    app.addHook('onReady', async () => {
      void readiness.start()
    })
  }
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
    servingCached: coherence?.mayServeCached() ?? true,
    instanceId: shared?.instanceId ?? null,
    epoch: sharedCoherence?.epoch ?? null,
  }))
  return app
}

/**
 * The audit trail of `audit.file` (or `--audit-file`), opened before the gateway serves: a file
 * it cannot write, or one another process writes, stops the start when the audit is required.
 */
async function openWriteAudit(
  policy: AuditPolicy,
  options: AppOptions,
  metrics: GatewayMetrics,
  log: FastifyBaseLogger,
): Promise<WriteAudit> {
  const file = options.auditFile ?? policy.file
  if (file === null) return NO_AUDIT
  let trail: AuditTrail
  try {
    trail = await AuditTrail.open({
      file,
      fsync: policy.fsync,
      maxBytes: policy.maxBytes,
      ...(options.instanceName ? { instance: options.instanceName } : {}),
      ...(options.now ? { now: options.now } : {}),
      onRepair: (info) =>
        log.warn(
          info,
          'audit trail: closed a line torn by a crash with a repair line (audit verify shows it)',
        ),
    })
  } catch (err) {
    const message = `audit.file ${file}: ${(err as Error).message}`
    if (policy.required) throw new Error(message, { cause: err })
    log.error({ file }, `${message}; audit.required is false: serving without an audit trail`)
    return NO_AUDIT
  }
  log.info({ file: trail.file, seq: trail.head.seq }, 'audit trail')
  return new WriteAudit(trail, {
    required: policy.required,
    onRecord: (result) => metrics.auditRecords.inc({ result }),
    onError: (phase, err) =>
      log.error(
        { phase, file: trail.file, error: (err as Error)?.message },
        'audit trail: a line could not be written',
      ),
  })
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
