/**
 * The cached-listing fast path. CRMs poll the plain listing far more than
 * anything else, and most polls find it in the cache: those are answered from
 * one `onRequest` hook, registered after the CORS and failed-authentication
 * hooks, instead of going on through the route's `preValidation`,
 * `preHandler` and handler, three more async steps (61–68 → 57 µs of CPU per
 * cached GET at N = 10 on the bench machine, docs/performance.md).
 *
 * It decides with the route's own functions (`authorize`, the rate limiter's
 * counters, `readyHit` and `sendHit`), so what the client gets
 * is what the route would have sent. Whatever it does not answer goes on to
 * the route untouched, which answers as before: a query string or a body, no
 * or bad credentials, a refusal by the policy, an exhausted budget, a cache
 * miss, a compressed variant not made yet. What it resolved and charged is
 * carried over (`request.gw.admitted`), so the route's admission step
 * (src/http/admission/admission.ts) neither resolves nor counts it a second time.
 */

import type { FastifyReply, FastifyRequest } from 'fastify'
import type { WriteAudit } from '../../audit/write-audit.js'
import type { ListingCache } from '../../cache/listing-cache.js'
import { RESOURCE_BY_NAME, type ResourceName } from '../../resources.js'
import { applyAuthorization, authorize } from '../admission/authenticate.js'
import { takeCarriedCharge } from '../admission/carried.js'
import { hasBody } from '../admission/get-body.js'
import type { RateLimiter } from '../admission/rate-limit.js'
import { readerOf, readyHit, recordListingAccess, sendHit } from './replies.js'
import '../request-context.js'

export interface ListingFastPathDeps {
  readonly cache: ListingCache
  readonly rateLimiter: RateLimiter
  /** Whether Trisul accepted a username and token lately (proven credentials). Default: never. */
  readonly isKnownGood?: (username: string, tokenHash: string) => boolean
  /** Where a hit's access line goes (SPEC 14). Default: none. */
  readonly audit?: WriteAudit
}

/** The requests the fast path may answer: a plain listing GET, no query string, no body. */
export function isListingFastPathRequest(request: FastifyRequest): boolean {
  if (request.method !== 'GET') return false
  const { operation, resource } = request.routeOptions.config
  // The Query API's list is not a cached listing: never the fast path's.
  if (operation !== 'list' || resource === undefined || resource === 'queries') return false
  // Filters, paging and body credentials are the route's: it parses and checks them.
  return !request.url.includes('?') && !hasBody(request.raw)
}

/** The `onRequest` hook; it answers the request or leaves it to the route, resolved and charged. */
export function makeListingFastPath(deps: ListingFastPathDeps) {
  return async function listingFastPath(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!isListingFastPathRequest(request)) return
    const { operation, resource } = request.routeOptions.config as Required<
      typeof request.routeOptions.config
    >
    const facts = RESOURCE_BY_NAME[resource as ResourceName]
    const gw = request.gw
    const decided = authorize(gw.policy, facts, operation, {
      rawHeaders: request.raw.rawHeaders,
      body: undefined,
      clientIp: request.ip,
      // As the failed-authentication hook before this one resolved them (it charged unproven ones).
      ...(gw.credentials !== null ? { resolved: gw.credentials } : {}),
      ...(deps.isKnownGood ? { isKnownGood: deps.isKnownGood } : {}),
    })
    // The route answers 401/403 itself.
    if (!decided.ok) return
    // Charged before the decision is applied: a 429 is answered with the labels the route would give it.
    const subject = { consumer: decided.consumer, rateKey: decided.rateKey }
    // Charged already by the hit handler below Fastify, which could not answer it after all.
    const carried = takeCarriedCharge(request.raw)
    const charged =
      carried === undefined
        ? await deps.rateLimiter.charge(request, reply, { subject })
        : await deps.rateLimiter.apply(request, reply, carried)
    // Applied whatever the charge found: the route's admission step does not resolve or charge it again.
    applyAuthorization(request, facts, operation, decided)
    gw.admitted = true
    gw.authorized = true
    if (charged !== 'allowed') return
    // After the last await: a write whose response was sent before this point has invalidated the entry.
    // A redacted view or a coding not made yet is the route's to make, across loop turns.
    const hit = readyHit(deps.cache, facts, decided, request.headers['accept-encoding'])
    if (hit === undefined) return
    const sent = sendHit(request, reply, hit)
    deps.cache.countHit(facts.name)
    const reader = sent && deps.audit ? readerOf(request) : null
    if (reader && deps.audit) recordListingAccess(deps.audit, reader, hit.entry)
  }
}
