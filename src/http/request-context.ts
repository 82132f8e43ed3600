/**
 * What the gateway core resolved about a request, set on `request.gw` by the
 * route's admission step (src/http/admission.ts) or the listing fast path, and
 * read by what runs after it (the rate-limit plugin, the handler, metrics).
 */
import type { ResolvedCredentials } from '../credentials.js'
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
  /** Body bytes this request holds of `limits.inFlightBodyBytes` (released when it ends). */
  bodyReserved: number
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
    bodyReserved: 0,
  }
}
