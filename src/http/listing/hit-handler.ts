/**
 * The cached-listing hit answered below Fastify (issue 17): from the HTTP
 * server's own request listener, given to Fastify as its `serverFactory`,
 * before Fastify makes a request, a reply and a child logger and runs its
 * hooks. A cache hit at N = 1,000 cost 207 µs of CPU through the `onRequest`
 * fast path against bare Fastify's 123 µs and bare `node:http`'s 101
 * (docs/performance.md, row 13); most of the difference is Fastify's own
 * per-request machinery, which a hit does not need.
 *
 * It never re-decides (shared/STYLE.md): it calls the functions the
 * `onRequest` fast path calls (`authorize`, the rate limiter's count with the
 * failed-authentication gate, `readyHit`, the representation's header block), and
 * records the metrics and the access line the `onResponse` hook would. It
 * takes only the plainest hit: GET of a listing path exactly, no query string,
 * no body, no `Origin` (a CORS request is the plugin's), no `If-None-Match` (a
 * `304` is the route's), no trusted proxy (the client address is the
 * socket's), the variant the client accepts already made. Everything else goes to Fastify
 * untouched; a request it has charged and then cannot answer (the entry was
 * invalidated meanwhile, the budget is spent, the store failed) goes to Fastify
 * with the charge (src/http/admission/carried.ts), so it is counted once. The property test
 * (test/http/listing/hit-handler.test.ts) holds the bytes on the wire to the
 * route's.
 */

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { WriteAudit } from '../../audit/write-audit.js'
import type { ListingCache } from '../../cache/listing-cache.js'
import type { JwtLookup } from '../../credentials.js'
import type { GatewayMetrics } from '../../metrics.js'
import type { Policy } from '../../policy/types.js'
import { RESOURCE_BY_NAME, type ResourceFacts } from '../../resources.js'
import { NO_TRACING, type Tracing } from '../../telemetry/tracing.js'
import { recordAnswer } from '../access-log.js'
import { authorize } from '../admission/authenticate.js'
import { carryCharge } from '../admission/carried.js'
import { hasBody } from '../admission/get-body.js'
import type { Charged, RateLimiter } from '../admission/rate-limit.js'
import { HIT_VARY, hitHeaderBlock, type ReadyHit, readyHit, recordListingAccess } from './replies.js'

const LISTING_PATHS: ReadonlyMap<string, ResourceFacts> = new Map(
  Object.values(RESOURCE_BY_NAME).map((facts) => [facts.path, facts]),
)

export interface ListingHitHandlerDeps {
  readonly policy: () => Policy
  /** False while the policy in force has not reached the cache yet (Fastify's `onRequest` applies it). */
  readonly policyApplied: (policy: Policy) => boolean
  readonly cache: ListingCache
  readonly rateLimiter: RateLimiter
  /** Whether Trisul accepted a username and token lately: only proven credentials are answered here. */
  readonly isKnownGood: (username: string, tokenHash: string) => boolean
  /** Verified JWTs (SPEC 16): a token not verified yet is the route's (its hook verifies it). */
  readonly jwt?: JwtLookup
  /** A hit takes part in tracing as the route would (SPEC 18): its server span, its trace id. */
  readonly tracing?: Tracing
  readonly metrics: GatewayMetrics
  readonly log: FastifyBaseLogger
  /** The request id of `req`, as Fastify's `genReqId` makes it. */
  readonly requestId: (req: IncomingMessage) => string
  /** True once the gateway is closing: Fastify answers those (503). */
  readonly closing: () => boolean
  /** Where a hit's access line goes (SPEC 14). */
  readonly audit: WriteAudit
}

/**
 * The listener part: `handle(req, res, next)` answers a plain cached hit, or
 * calls `next(req, res)` (Fastify's handler) at once or, for a request it
 * charged, once the charge is in.
 */
export function makeListingHitHandler(deps: ListingHitHandlerDeps) {
  type Next = (req: IncomingMessage, res: ServerResponse) => void

  const candidate = (req: IncomingMessage): ResourceFacts | undefined => {
    if (req.method !== 'GET') return undefined
    const facts = LISTING_PATHS.get(req.url ?? '')
    if (facts === undefined) return undefined
    const h = req.headers
    if (h.origin !== undefined || h['if-none-match'] !== undefined || hasBody(req)) return undefined
    return facts
  }

  /** The representation and its coding, if the hit can be answered now (and the policy has reached the cache). */
  const ready = (policy: Policy, facts: ResourceFacts, req: IncomingMessage, decided: Decided) =>
    deps.policyApplied(policy)
      ? readyHit(deps.cache, facts, decided, req.headers['accept-encoding'])
      : undefined

  /** What a plain hit needs decided before the charge; undefined: Fastify's. */
  const decide = (req: IncomingMessage) => {
    const facts = candidate(req)
    const policy = deps.policy()
    const address = req.socket.remoteAddress
    if (facts === undefined || address === undefined || deps.closing()) return undefined
    if (policy.gateway.trustProxy.length > 0) return undefined
    const decided = authorize(policy, facts, 'list', {
      rawHeaders: req.rawHeaders,
      body: undefined,
      clientIp: address,
      isKnownGood: deps.isKnownGood,
      ...(deps.jwt ? { jwt: deps.jwt } : {}),
    })
    // Refusals are the route's to answer and count; a miss or a variant not made yet the route's to fill.
    // Unproven credentials are the route's too: its failed-authentication hook charges them first (SPEC 13).
    if (!decided.ok || !decided.proven || ready(policy, facts, req, decided) === undefined) return undefined
    return { facts, policy, address, decided }
  }

  const send = (
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    facts: ResourceFacts,
    decided: Decided,
    charged: Extract<Charged, { outcome: 'allowed' }>,
    hit: ReadyHit,
  ): void => {
    const id = deps.requestId(req)
    res.writeHead(200, [
      'x-request-id',
      id,
      // Where the CORS hook puts it, on every answer; the cache headers append to it.
      'vary',
      HIT_VARY,
      'ratelimit-limit',
      String(charged.limit),
      'ratelimit-remaining',
      String(charged.remaining),
      'ratelimit-reset',
      String(charged.reset),
      ...hitHeaderBlock(hit.rep, hit.encoding, hit.body),
    ])
    res.end(hit.body)
    deps.cache.countHit(facts.name)
    const trace = (deps.tracing ?? NO_TRACING).begin(
      req.headers,
      () => `GET ${facts.path}`,
      performance.timeOrigin + started,
    )
    if (deps.audit.recordsReads) {
      const reader = {
        requestId: id,
        trace,
        consumerName: decided.consumerName,
        client: req.socket.remoteAddress ?? '',
        auth: decided.auth,
        redact: decided.consumer?.redact ?? [],
      }
      recordListingAccess(deps.audit, reader, hit.entry)
    }
    recordAnswer(deps.log, deps.metrics, {
      reqId: id,
      method: 'GET',
      url: req.url ?? facts.path,
      route: facts.path,
      statusCode: 200,
      ms: performance.now() - started,
      consumer: decided.consumerName,
      trace,
      cache: 'HIT',
    })
  }

  return function handle(req: IncomingMessage, res: ServerResponse, next: Next): void {
    const started = performance.now()
    const d = decide(req)
    if (d === undefined) {
      next(req, res)
      return
    }
    const subject = { consumer: d.decided.consumer, rateKey: d.decided.rateKey }
    let handed = false
    const toFastify = () => {
      handed = true
      next(req, res)
    }
    deps.rateLimiter
      .count(d.address, d.policy, subject)
      .then(
        (charged) => {
          // After the await: a write answered meanwhile has invalidated the entry (read-your-writes).
          const hit =
            charged.outcome === 'allowed' && !deps.closing()
              ? ready(d.policy, d.facts, req, d.decided)
              : undefined
          if (hit !== undefined && charged.outcome === 'allowed') {
            send(req, res, started, d.facts, d.decided, charged, hit)
            return
          }
          carryCharge(req, charged)
          toFastify()
        },
        // A store that throws (not merely fails) is the route's to report.
        toFastify,
      )
      .catch((err: unknown) => {
        // Whatever failed here (a logger's stream, a metric) must not take the process down.
        if (!handed && !res.headersSent) return toFastify()
        try {
          deps.log.error({ err }, 'a cached listing hit was answered, but recording it failed')
        } catch {
          // The logger itself is what failed: nothing is left to tell.
        }
      })
  }
}

type Decided = Extract<ReturnType<typeof authorize>, { ok: true }>
