/**
 * What a request's credentials resolve to (`authorize`, pure but for hashing)
 * and how that is left on the request (`applyAuthorization`). The route's
 * admission step (src/http/admission/admission.ts), the listing fast path and the hit
 * handler below Fastify all decide through these two.
 */
import type { FastifyRequest } from 'fastify'
import { hashToken } from '../../cache/listing-cache.js'
import {
  CREDENTIAL_HEADERS,
  headerValues,
  type JwtLookup,
  type ResolvedCredentials,
  resolveCredentials,
  type UpstreamAuth,
} from '../../credentials.js'
import { GatewayError, WWW_AUTHENTICATE, WWW_AUTHENTICATE_INVALID_TOKEN } from '../../errors.js'
import {
  DEFAULT_CONSUMER,
  evaluate,
  findConsumer,
  findJwtConsumer,
  isUsernameNearMiss,
} from '../../policy/evaluate.js'
import type { ConsumerPolicy, Policy } from '../../policy/types.js'
import type { ApiResourceName, PolicyOperation } from '../../resources.js'
import '../request-context.js'

declare module 'fastify' {
  interface FastifyRequest {
    upstreamAuth: UpstreamAuth | null
  }
}

function unauthorized(code: GatewayError['code'], message: string): GatewayError {
  // A refused JWT says so in the challenge (RFC 6750 3.1), so an OAuth2 client knows to get a new one.
  const challenge = code === 'IPDR_GW_INVALID_TOKEN' ? WWW_AUTHENTICATE_INVALID_TOKEN : WWW_AUTHENTICATE
  return new GatewayError(code, message, { headers: { 'www-authenticate': challenge } })
}

/** What a request's credentials resolve to under a policy, for one resource and operation. */
export type Authorization =
  | {
      readonly ok: true
      readonly consumer: ConsumerPolicy | null
      readonly consumerName: string
      /** `consumer:NAME` (a named consumer's shared budget) or `default:USERNAME`. */
      readonly rateKey: string
      readonly auth: UpstreamAuth
      /**
       * The credentials are known to be valid (SPEC 13): a gateway key that matched, or a Trisul
       * token Trisul accepted within `auth.knownGoodSeconds`. Such a request is neither charged to
       * nor refused by its address's failed-authentication budget.
       */
      readonly proven: boolean
    }
  | {
      readonly ok: false
      readonly consumer: ConsumerPolicy | null
      readonly consumerName: string
      readonly error: GatewayError
      /** True when the policy refused a resolved consumer (counted as a denial), false for bad credentials. */
      readonly denied: boolean
    }

export interface AuthorizationInput {
  /** Node's `rawHeaders` (duplicates kept). */
  readonly rawHeaders: readonly string[]
  /** The parsed JSON body, if any (credential form 4). */
  readonly body: unknown
  /** The client address (`request.ip`), for `allowIPs`. */
  readonly clientIp: string
  /** The credentials as resolved already from the same headers and body (a hook before); default: resolved here. */
  readonly resolved?: ResolvedCredentials
  /** Whether Trisul accepted this username and token lately (src/policy/known-good.ts). Default: never. */
  readonly isKnownGood?: (username: string, tokenHash: string) => boolean
  /** Verified JWTs (SPEC 16), when issuers are configured; used when `resolved` is not given. */
  readonly jwt?: JwtLookup
}

/** The credentials of a request (SPEC 3.1) under a policy: the first step of {@link authorize}. */
export function resolveRequestCredentials(
  policy: Policy,
  rawHeaders: readonly string[],
  body: unknown,
  jwt?: JwtLookup,
): ResolvedCredentials {
  return resolveCredentials({
    headers: headerValues(rawHeaders, CREDENTIAL_HEADERS),
    body,
    bodyCredentials: policy.gateway.auth.bodyCredentials,
    isGatewayKey: (keyHash) => findConsumer(policy, { kind: 'key', keyHash }) !== null,
    // Only with issuers in the policy: otherwise no Bearer is a JWT.
    ...(jwt !== undefined && policy.gateway.auth.jwt.issuers.length > 0 ? { jwt } : {}),
  })
}

/**
 * Resolves the credentials of a request (shared/SPEC.md 3.1), finds its
 * consumer and applies the consumer's rules (SPEC 4). Pure apart from hashing:
 * the route hook below and the cached-listing fast path both decide through it.
 */
export function authorize(
  policy: Policy,
  facts: { readonly name: ApiResourceName },
  operation: PolicyOperation,
  input: AuthorizationInput,
): Authorization {
  const resolved: ResolvedCredentials =
    input.resolved ?? resolveRequestCredentials(policy, input.rawHeaders, input.body, input.jwt)
  if (!resolved.ok) {
    const error = unauthorized(resolved.code, resolved.message)
    return { ok: false, consumer: null, consumerName: 'unknown', error, denied: false }
  }

  let consumer: ConsumerPolicy | null
  let username: string
  let token: string
  let tokenHash: string | undefined
  if (resolved.form === 'key' || resolved.form === 'jwt') {
    // A gateway key or a verified JWT names a consumer, whose own Trisul credentials are injected.
    consumer =
      resolved.form === 'key'
        ? findConsumer(policy, { kind: 'key', keyHash: resolved.keyHash })
        : findJwtConsumer(policy, resolved.claims)
    if (resolved.form === 'jwt' && consumer === null) {
      // Authenticated, but granted nothing (SPEC 16): 403, not a failed authentication.
      const error = new GatewayError('IPDR_GW_NO_CONSUMER', 'No consumer of the policy matches this token')
      return { ok: false, consumer: null, consumerName: 'unknown', error, denied: true }
    }
    const tokenValue = consumer ? policy.tokens.get(consumer.name) : undefined
    if (!consumer?.upstream?.username || tokenValue === undefined) {
      const error = unauthorized(
        'IPDR_GW_MALFORMED_CREDENTIALS',
        `This ${resolved.form === 'key' ? 'gateway key' : 'token'} has no upstream credentials`,
      )
      return { ok: false, consumer: null, consumerName: 'unknown', error, denied: false }
    }
    username = consumer.upstream.username
    token = tokenValue
  } else {
    consumer = findConsumer(policy, { kind: 'username', username: resolved.username })
    // "CRM" or "ｃｒｍ" for a consumer's "crm" is refused, never given the default rules (SPEC 13).
    if (
      (consumer === null || consumer.name === DEFAULT_CONSUMER) &&
      isUsernameNearMiss(policy, resolved.username)
    ) {
      const error = unauthorized('IPDR_GW_MALFORMED_CREDENTIALS', 'This username is not accepted')
      return { ok: false, consumer: null, consumerName: 'unknown', error, denied: false }
    }
    username = resolved.username
    token = resolved.token
    tokenHash = resolved.tokenHash
  }
  const consumerName = consumer?.name ?? 'unknown'

  const decision = evaluate(policy, { consumer, resource: facts.name, operation, clientIp: input.clientIp })
  if (!decision.allow) {
    const error = new GatewayError(decision.code, decision.message)
    return { ok: false, consumer, consumerName, error, denied: true }
  }
  // A named consumer shares one budget across its credentials; the default
  // consumer is counted per upstream username (shared/SPEC.md 4).
  const rateKey =
    consumer && consumer.name !== 'default' ? `consumer:${consumer.name}` : `default:${username}`

  const upstreamPolicy = policy.gateway.upstream
  // v1 has no contexts: every request of a user shares one listing, whatever header it sent.
  const context =
    upstreamPolicy.dialect === 'v1'
      ? upstreamPolicy.defaultContext
      : (resolved.context ?? consumer?.upstream?.context ?? upstreamPolicy.defaultContext)
  const pinned = consumer?.upstream?.contexts
  if (pinned && !pinned.includes(context)) {
    const error = new GatewayError(
      'IPDR_GW_CONTEXT_FORBIDDEN',
      `The policy does not allow context ${context} for this consumer`,
    )
    return { ok: false, consumer, consumerName, error, denied: true }
  }
  const auth = { username, token, tokenHash: tokenHash ?? hashToken(token), context }
  const proven =
    resolved.form === 'key' ||
    resolved.form === 'jwt' ||
    input.isKnownGood?.(username, auth.tokenHash) === true
  return { ok: true, consumer, consumerName, rateKey, auth, proven }
}

/** Leaves what `authorize` decided on the request, for the hooks and the handler after it. */
export function applyAuthorization(
  request: FastifyRequest,
  facts: { readonly name: ApiResourceName },
  operation: PolicyOperation,
  decided: Authorization,
): void {
  const gw = request.gw
  gw.resource = facts.name
  gw.operation = operation
  gw.consumer = decided.consumer
  gw.consumerName = decided.consumerName
  if (decided.ok) {
    gw.rateKey = decided.rateKey
    request.upstreamAuth = decided.auth
  }
}
