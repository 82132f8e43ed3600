/**
 * What the gateway core resolved about a request, set on `request.gw` by the
 * route's admission step (src/http/admission/admission.ts) or the listing fast path, and
 * read by what runs after it (the rate-limit plugin, the handler, metrics).
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { ResolvedCredentials } from '../credentials.js'
import type { ConsumerPolicy, Policy } from '../policy/types.js'
import type { ApiResourceName, PolicyOperation } from '../resources.js'
import { NO_TRACING, type RequestTrace, type Tracing } from '../telemetry/tracing.js'

export interface RequestContext {
  /** The policy in force when the request started; the whole request keeps it across a reload. */
  policy: Policy
  resource: ApiResourceName | null
  operation: PolicyOperation | null
  consumer: ConsumerPolicy | null
  consumerName: string /* policy name, 'default' or 'unknown' */
  rateKey: string | null /* 'consumer:NAME' or 'default:USERNAME' */
  /** The request has been counted against its budget already (the listing fast path); not again. */
  rateCharged: boolean
  /** The listing fast path resolved, applied and charged it: the route's admission step does neither again. */
  admitted: boolean
  /** The credentials of the headers, resolved by the failed-authentication hook (null: not resolved yet). */
  credentials: ResolvedCredentials | null
  /** The credentials were resolved and the consumer admitted before the body was read (SPEC 13). */
  authorized: boolean
  /** The address's failed-authentication budget was charged as the request started (refunded once proven). */
  authCharged: boolean
  /** The unproven credentials this request counts in flight under (one charge for all of them). */
  credentialsKey: string | null
  /** A sync job holds the charge until its listing fetch answers (not refunded with the answer). */
  chargeHeld: boolean
  /** What Trisul said of the credentials, when the answer says it (an envelope); else judged at the end. */
  trisulVerdict: 'accepted' | 'refused' | null
  /** The request's trace (SPEC 18): the client's `traceparent` continued, and its server span when sampled. */
  trace: RequestTrace | null
}

declare module 'fastify' {
  interface FastifyRequest {
    gw: RequestContext
  }
  interface FastifyContextConfig {
    /** The API resource and operation of the route (set by src/http/routes/api.ts). */
    resource?: ApiResourceName
    operation?: PolicyOperation
    /** Which Query API route (src/http/routes/queries.ts), for its documentation. */
    queryRoute?: string
    /** Which sync route (src/http/routes/sync.ts), for its documentation. */
    syncRoute?: 'start' | 'job' | 'cancel'
  }
}

/** The context of a request that has just arrived under `policy`: nothing resolved yet. */
export function newRequestContext(policy: Policy): RequestContext {
  return {
    policy,
    resource: null,
    operation: null,
    consumer: null,
    consumerName: 'unknown',
    rateKey: null,
    rateCharged: false,
    admitted: false,
    credentials: null,
    authorized: false,
    authCharged: false,
    chargeHeld: false,
    credentialsKey: null,
    trisulVerdict: null,
    trace: null,
  }
}

// Accept a client's request id only when it is short and plain (shared/SPEC.md 3.6).
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The request id of `req`: the client's `X-Request-Id` when sane, else a new UUID (Fastify's `genReqId`). */
export function requestIdOf(req: IncomingMessage): string {
  const v = req.headers['x-request-id']
  return typeof v === 'string' && SANE_REQUEST_ID.test(v) ? v : randomUUID()
}

/**
 * The first `onRequest` hook: each request gets its context under the policy in force as it
 * starts, and its `X-Request-Id`; `onPolicy` is told of each policy a request starts under (a
 * reload swapped it), before anything else reads it.
 */
export function registerRequestContext(
  app: FastifyInstance,
  source: { readonly current: Policy },
  onPolicy: (policy: Policy) => void,
  tracing: Tracing = NO_TRACING,
): void {
  app.decorateRequest('gw', null as unknown as RequestContext)
  app.decorateRequest('upstreamAuth', null)
  app.addHook('onRequest', async (request, reply) => {
    const policy = source.current
    request.gw = newRequestContext(policy)
    request.upstreamAuth = null
    reply.header('x-request-id', request.id)
    // The server span starts here, the first thing a request meets; it ends with the access line.
    const trace = tracing.begin(
      request.headers,
      () => `${request.method} ${request.routeOptions.url ?? 'unmatched'}`,
    )
    request.gw.trace = trace
    tracing.bind(String(request.id), trace)
    onPolicy(policy)
  })
  // A request whose client went away before the answer never reaches onResponse.
  app.addHook('onRequestAbort', async (request) => {
    tracing.release(String(request.id))
    request.gw?.trace?.span?.end()
  })
}
