/**
 * What the gateway core resolved about a request, set on `request.gw` by the
 * route's admission step (src/http/admission.ts) or the listing fast path, and
 * read by what runs after it (the rate-limit plugin, the handler, metrics).
 */
import type { ConsumerPolicy, Policy } from '../policy/types.js'
import type { ApiResourceName, PolicyOperation } from '../resources.js'

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
}

declare module 'fastify' {
  interface FastifyRequest {
    gw: RequestContext
  }
  interface FastifyContextConfig {
    /** The API resource and operation of the route (set by src/http/api-routes.ts). */
    resource?: ApiResourceName
    operation?: PolicyOperation
    /** Which Query API route (src/http/query-routes.ts), for its documentation. */
    queryRoute?: string
    /** Which sync route (src/http/sync-routes.ts), for its documentation. */
    syncRoute?: 'start' | 'job' | 'cancel'
  }
}
