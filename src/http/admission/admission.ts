/**
 * The one place a request is admitted (SPEC 3.1, 3.5, 4): an API route's
 * single `preValidation` step checks the path's UserID, reads a GET body,
 * resolves the credentials, finds the consumer and applies its rules, checks
 * the body, then charges the consumer's budget, and leaves on the request what
 * the handler needs (`request.gw`, `request.upstreamAuth`).
 *
 * One async step instead of three (a UserID check, an authentication step and
 * @fastify/rate-limit's `preHandler`, which each resolved something on their
 * own), and a listing miss the fast path has admitted already is not resolved
 * and charged a second time (docs/performance.md, row 13).
 *
 * The order is the one the separate hooks had, so every answer is as before:
 * a bad UserID (400) before the credentials (401/403), those before the body
 * (400), and the body before the budget, so an invalid request costs no budget.
 * Credentials that travel in headers are checked in `onRequest`, before any
 * body byte is read (SPEC 13); legacy body credentials after the body.
 * The budget is drawn through `RateLimiter.charge` (the plugin's own store, key
 * and budget). What it does not admit, an exhausted budget or a failed counter
 * store, it leaves to the plugin's hook, which answers 429 or lets the request
 * through as it always has.
 *
 * Credential fields are removed from the body here, so nothing later can log,
 * validate or forward the client's copy.
 */

import type { FastifyReply, FastifyRequest } from 'fastify'
import { sha256Hex } from '../../credentials.js'
import { GatewayError } from '../../errors.js'
import { type ApiResourceName, CREDENTIAL_FIELDS, type PolicyOperation } from '../../resources.js'
import { inSpan } from '../../telemetry/tracing.js'
import { applyAuthorization, authorize, resolveRequestCredentials } from './authenticate.js'
import { takeCarriedCharge } from './carried.js'
import { hasBody, readRawBody } from './get-body.js'
import type { RateLimiter } from './rate-limit.js'
import { credentialsKey } from './rate-limit.js'
import '../request-context.js'

export interface AdmissionDeps {
  readonly parseJson: (text: string) => unknown
  /** Called with the consumer and operation of every request the policy refuses. Default: nothing. */
  readonly onDenied?: (consumer: string, operation: PolicyOperation) => void
  /** Charges the budget of an admitted request. Default: none, the rate-limit plugin's hook counts. */
  readonly rateLimiter?: RateLimiter
  /** Whether Trisul accepted a username and token lately (proven credentials). Default: never. */
  readonly isKnownGood?: (username: string, tokenHash: string) => boolean
  /** Charges unproven legacy body credentials to the address's failed-authentication budget (SPEC 13). */
  readonly chargeUnproven?: (
    request: FastifyRequest,
    reply: FastifyReply,
    key: string | null,
  ) => Promise<void>
}

/** Removes the credential fields from a parsed body (an object), so nothing later logs, checks or forwards them. */
export function withoutCredentialFields(body: unknown): void {
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    for (const f of CREDENTIAL_FIELDS) delete (body as Record<string, unknown>)[f]
  }
}

/** The route's own checks, run at their place in the admission. */
export interface AdmissionChecks {
  /** Before anything else (the path's UserID): throws a `GatewayError`. */
  readonly path?: (request: FastifyRequest) => void
  /** Once the credentials are out of the body, before the charge: throws a `GatewayError`. */
  readonly body?: (request: FastifyRequest) => void
}

/** A route's two admission steps: `onRequest` before any body byte is read, `preValidation` after. */
export interface Admission {
  readonly onRequest: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  readonly preValidation: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
}

/**
 * Credentials in headers (an `Authorization` header: forms 1-3) are resolved, and the consumer,
 * its address and its operation checked, in `onRequest`, before the body is read (SPEC 13): a
 * refused request never has its body buffered. Without one, the credentials can only be the
 * legacy form 4 in a body read under `limits.bodyBytes`, so they are resolved after it; a request
 * with neither header nor body is refused at once.
 */
export function makeAdmission(
  facts: { readonly name: ApiResourceName },
  operation: PolicyOperation,
  deps: AdmissionDeps,
  checks: AdmissionChecks = {},
): Admission {
  const decide = async (request: FastifyRequest, reply: FastifyReply, body: unknown) => {
    const gw = request.gw
    // Header credentials as the failed-authentication hook resolved them; a body's are new.
    const resolved =
      body === undefined && gw.credentials !== null
        ? gw.credentials
        : resolveRequestCredentials(gw.policy, request.raw.rawHeaders, body)
    if (resolved.ok && resolved.form === 'body' && deps.chargeUnproven) {
      const proven = deps.isKnownGood?.(resolved.username, sha256Hex(resolved.token)) === true
      if (!proven) await deps.chargeUnproven(request, reply, credentialsKey(resolved))
    }
    const decided = authorize(gw.policy, facts, operation, {
      rawHeaders: request.raw.rawHeaders,
      body,
      clientIp: request.ip,
      resolved,
      ...(deps.isKnownGood ? { isKnownGood: deps.isKnownGood } : {}),
    })
    applyAuthorization(request, facts, operation, decided)
    if (!decided.ok) {
      if (decided.denied) deps.onDenied?.(decided.consumerName, operation)
      throw decided.error
    }
    gw.authorized = true
  }

  return {
    async onRequest(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      checks.path?.(request)
      const gw = request.gw
      // The listing fast path resolved and charged a plain listing GET it could not answer from the cache.
      if (gw.admitted) return
      gw.resource = facts.name
      gw.operation = operation
      if (request.headers.authorization !== undefined || !hasBody(request.raw))
        await decide(request, reply, undefined)
    },

    async preValidation(request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const gw = request.gw
      if (gw.admitted) return

      if (request.method === 'GET' && hasBody(request.raw)) {
        const raw = await readRawBody(request.raw, gw.policy.gateway.limits.bodyBytes)
        try {
          request.body = deps.parseJson(raw.toString('utf8').trim())
        } catch (err) {
          throw new GatewayError('IPDR_GW_INVALID_JSON', undefined, { cause: err })
        }
      }
      if (!gw.authorized) await decide(request, reply, request.body)

      withoutCredentialFields(request.body)
      checks.body?.(request)
      // The budget's counter: a store round trip with a shared store (SPEC 18).
      const limiter = deps.rateLimiter
      // Charged already by the write path below Fastify, which passed the request on after all.
      const carried = takeCarriedCharge(request.raw)
      if (limiter && carried !== undefined) limiter.apply(request, reply, carried)
      else if (limiter) await inSpan(gw.trace, 'rate limit', () => limiter.charge(request, reply))
    },
  }
}
