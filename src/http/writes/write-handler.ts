/**
 * The plain write answered below Fastify (issue 35), as the cached-listing hit is
 * (src/http/listing/hit-handler.ts): from the HTTP server's own listener, before
 * Fastify makes a request, a reply and a child logger and runs its hooks, a write
 * cost 1.6-1.9 times the CPU of a bare Fastify + undici pass-through
 * (docs/performance.md, row 20), spread thin over the machinery a write that is
 * admitted does not need.
 *
 * It never re-decides (shared/STYLE.md): it calls what the route's steps call, in
 * their order — `authorize`, the path's UserID check, the bodies-in-flight budget,
 * the JSON parser, the body's schema, the fields' own checks, the rate limiter's
 * count, then `answerWrite` (the route handler's), `errorAnswer` (the root error
 * handler's), `recordAnswer` (the access line and metrics) and the
 * failed-authentication budget's settling. It takes only the plainest write: a
 * create, replace, update or delete at an API path with a plain `{UserID}`, no
 * query string, no `Origin` (a CORS request is the plugin's), no trusted proxy,
 * tracing off (spans are the hooks'), credentials in headers that are proven
 * (SPEC 13: unproven ones are charged first by the route's hook), a declared
 * length within the body limit and a JSON content type. Anything it would refuse
 * goes to Fastify, which refuses it with the same functions: before the body is
 * read, untouched; after, with the body it read and the charge it made carried
 * (src/http/admission/carried.ts), so it is read and counted once. What it answers
 * itself is what reaches the upstream (or the audit's 503 before it would). The
 * property test (test/http/writes/write-handler.test.ts) holds the bytes on the
 * wire to the route's.
 */

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { WriteAudit } from '../../audit/write-audit.js'
import type { ListingSource } from '../../cache/listing-source.js'
import type { JwtLookup } from '../../credentials.js'
import type { ErrorBody } from '../../errors.js'
import type { GatewayMetrics } from '../../metrics.js'
import type { Policy } from '../../policy/types.js'
import { RESOURCES, type ResourceFacts } from '../../resources.js'
import type { RequestTrace, Tracing } from '../../telemetry/tracing.js'
import type { UpstreamClient } from '../../upstream/client.js'
import { pathUserIdRefusal, type WriteOperation } from '../../validation/request-schema.js'
import { recordAnswer } from '../access-log.js'
import { withoutCredentialFields } from '../admission/admission.js'
import { authorize } from '../admission/authenticate.js'
import type { BodiesInFlight } from '../admission/bodies-in-flight.js'
import { carryBody, carryCharge } from '../admission/carried.js'
import { readRawBody } from '../admission/get-body.js'
import type { AuthFailureGate, Charged, RateLimiter } from '../admission/rate-limit.js'
import { CORS_VARY } from '../cors.js'
import { errorAnswer } from '../error-handler.js'
import {
  answerWrite,
  WRITE_CACHE_CONTROL,
  WRITE_CONTENT_TYPE,
  writeBodyRefusal,
  writeRefusal,
} from './write-answer.js'

export interface WriteHandlerDeps {
  readonly policy: () => Policy
  /** False while the policy in force has not reached the app yet (Fastify's `onRequest` applies it). */
  readonly policyApplied: (policy: Policy) => boolean
  readonly rateLimiter: RateLimiter
  /** Whether Trisul accepted a username and token lately: only proven credentials are answered here. */
  readonly isKnownGood: (username: string, tokenHash: string) => boolean
  /** Settles what the answer says of the credentials, as the failed-authentication hook would. */
  readonly authFailures: Pick<AuthFailureGate, 'answered'>
  /** Verified JWTs (SPEC 16): a token not verified yet is the route's (its hook verifies it). */
  readonly jwt?: JwtLookup
  /** Tracing on: every write is the route's, whose hooks make its spans. */
  readonly tracing: Tracing
  /** The budget of bodies in flight (SPEC 13), the route's own. */
  readonly bodies: BodiesInFlight
  /** The API's JSON parser (src/http/json-body.ts). */
  readonly parseJson: (text: string) => unknown
  readonly upstream: UpstreamClient
  readonly listings: ListingSource
  readonly audit: WriteAudit
  readonly metrics: GatewayMetrics
  readonly log: FastifyBaseLogger
  /** The request id of `req`, as Fastify's `genReqId` makes it. */
  readonly requestId: (req: IncomingMessage) => string
  /** True once the gateway is closing: Fastify answers those (503). */
  readonly closing: () => boolean
}

/** What Fastify's default serializer makes of an error body: JSON.stringify. */
function serialized(body: Buffer | string | ErrorBody): Buffer | string {
  return typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body)
}

type Next = (req: IncomingMessage, res: ServerResponse) => void

/** A write the handler may take: what it is, before anything is decided. */
interface Candidate {
  readonly facts: ResourceFacts
  readonly operation: WriteOperation
  readonly route: string
  readonly pathUserId: string | null
  readonly length: number
}

const CREATE_PATHS: ReadonlyMap<string, ResourceFacts> = new Map(RESOURCES.map((f) => [f.path, f]))
const KEYED: Readonly<Record<string, WriteOperation>> = { PUT: 'replace', PATCH: 'update', DELETE: 'delete' }
/** A `{UserID}` the router passes through as it is: no percent-encoding to decode, no dot segment. */
const PLAIN_SEGMENT = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,255}$/
/** The content types Fastify's JSON parser takes for the API (src/http/json-body.ts), in their usual spellings. */
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8'])
const DIGITS = /^\d{1,15}$/

/**
 * The listener part: `handle(req, res, next)` answers a plain write, or calls `next(req, res)`
 * (Fastify's handler): at once, or with what it read and charged carried.
 */
export function makeWriteHandler(deps: WriteHandlerDeps) {
  const candidate = (req: IncomingMessage): Candidate | undefined => {
    const method = req.method
    const url = req.url ?? ''
    let facts: ResourceFacts | undefined
    let operation: WriteOperation
    let pathUserId: string | null = null
    if (method === 'POST') {
      facts = CREATE_PATHS.get(url)
      operation = 'create'
    } else {
      const keyed = method === undefined ? undefined : KEYED[method]
      if (keyed === undefined) return undefined
      const slash = url.lastIndexOf('/')
      facts = CREATE_PATHS.get(url.slice(0, slash))
      pathUserId = url.slice(slash + 1)
      if (!PLAIN_SEGMENT.test(pathUserId)) return undefined
      operation = keyed
    }
    if (facts === undefined) return undefined
    const h = req.headers
    if (h.origin !== undefined || h.authorization === undefined || h['transfer-encoding'] !== undefined)
      return undefined
    const declared = h['content-length']
    if (declared === undefined || !DIGITS.test(declared)) return undefined
    const length = Number(declared)
    if (length > 0 && !JSON_TYPES.has((h['content-type'] ?? '').toLowerCase())) return undefined
    const route = pathUserId === null ? facts.path : `${facts.path}/:UserID`
    return { facts, operation, route, pathUserId, length }
  }

  /** What a plain write needs decided before its body is read; undefined: Fastify's. */
  const decide = (req: IncomingMessage) => {
    const c = deps.tracing.enabled ? undefined : candidate(req)
    const policy = deps.policy()
    const address = req.socket.remoteAddress
    if (
      c === undefined ||
      address === undefined ||
      deps.closing() ||
      !deps.policyApplied(policy) ||
      policy.gateway.trustProxy.length > 0 ||
      c.length > policy.gateway.limits.bodyBytes ||
      (c.pathUserId !== null &&
        pathUserIdRefusal(c.pathUserId, req.url ?? '', policy.gateway.validation) !== null)
    ) {
      return undefined
    }
    const decided = authorize(policy, c.facts, c.operation, {
      rawHeaders: req.rawHeaders,
      body: undefined,
      clientIp: address,
      isKnownGood: deps.isKnownGood,
      ...(deps.jwt ? { jwt: deps.jwt } : {}),
    })
    // Refusals are the route's to answer and count; unproven credentials the route's to charge first (SPEC 13).
    if (!decided.ok || !decided.proven) return undefined
    return { c, policy, address, decided }
  }

  return function handle(req: IncomingMessage, res: ServerResponse, next: Next): void {
    const started = performance.now()
    let d: ReturnType<typeof decide>
    try {
      d = decide(req)
    } catch {
      // Whatever went wrong deciding, the route decides it again and answers.
      d = undefined
    }
    if (d === undefined) {
      next(req, res)
      return
    }
    const { c, policy, address, decided } = d
    const max = policy.gateway.limits.inFlightBodyBytes
    if (c.length > 0 && !deps.bodies.reserve(c.length, max)) {
      next(req, res)
      return
    }
    let held = c.length
    const release = () => {
      if (held === 0) return
      deps.bodies.release(held)
      held = 0
    }
    res.once('close', release)
    const id = deps.requestId(req)
    /** Headers every answer from here carries first, as the route's hooks set them. */
    const leading: Array<string | number> = ['x-request-id', id, 'vary', CORS_VARY]

    const answer = (
      statusCode: number,
      headers: Array<string | number>,
      body: Buffer | string,
      trace: RequestTrace | null,
    ) => {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body
      res.writeHead(statusCode, [
        ...leading,
        ...headers,
        'content-type',
        WRITE_CONTENT_TYPE,
        'content-length',
        String(bytes.length),
      ])
      res.end(bytes)
      recordAnswer(deps.log, deps.metrics, {
        reqId: id,
        method: req.method ?? '',
        url: req.url ?? c.route,
        route: c.route,
        statusCode,
        ms: performance.now() - started,
        consumer: decided.consumerName,
        trace,
      })
    }

    const write = async (raw: Buffer | null) => {
      let body: unknown
      try {
        body = raw === null ? undefined : deps.parseJson(raw.toString('utf8'))
      } catch {
        return pass(raw, null)
      }
      withoutCredentialFields(body)
      const value = body ?? {}
      const fields = value as Record<string, unknown>
      if (
        writeBodyRefusal(policy, c.facts, c.operation, value) !== null ||
        writeRefusal(c.pathUserId, fields) !== null
      ) {
        return pass(raw, null)
      }
      const subject = { consumer: decided.consumer, rateKey: decided.rateKey }
      let charged: Charged
      try {
        charged = await deps.rateLimiter.count(address, policy, subject)
      } catch {
        // A store that throws (not merely fails) is the route's to report.
        return pass(raw, null)
      }
      if (charged.outcome !== 'allowed' || deps.closing()) return pass(raw, charged)
      leading.push(
        'ratelimit-limit',
        charged.limit,
        'ratelimit-remaining',
        charged.remaining,
        'ratelimit-reset',
        charged.reset,
      )
      // Tracing is off here: the trace is the client's `traceparent` continued (or a new id), carried
      // upstream and into the audit and access lines as the route's would be (SPEC 18).
      const trace = deps.tracing.begin(req.headers, () => `${req.method} ${c.route}`)
      let statusCode = 200
      let verdict: 'accepted' | 'refused' | null = 'accepted'
      try {
        const sent = await answerWrite(deps, {
          facts: c.facts,
          operation: c.operation,
          pathUserId: c.pathUserId,
          fields,
          auth: decided.auth,
          policy,
          requestId: id,
          consumer: decided.consumer,
          consumerName: decided.consumerName,
          client: address,
          trace,
        })
        answer(200, ['cache-control', WRITE_CACHE_CONTROL], sent, trace)
      } catch (err) {
        const e = errorAnswer(err, {
          raw: req,
          url: req.url ?? c.route,
          upstreamAuth: decided.auth,
          policy,
          log: deps.log.child({ reqId: id }),
          hasChallenge: false,
        })
        statusCode = e.statusCode
        verdict = e.verdict ?? (statusCode < 400 ? 'accepted' : null)
        answer(statusCode, e.headers.flat(), serialized(e.body), trace)
      }
      await deps.authFailures.answered(address, decided.auth, statusCode, verdict)
    }

    /** Fastify's, with what was read and charged here. */
    const pass = (raw: Buffer | null, charged: Charged | null) => {
      release()
      if (raw !== null && raw.length > 0) carryBody(req, raw)
      if (charged !== null) carryCharge(req, charged)
      next(req, res)
    }

    const failed = (err: unknown) => {
      // Whatever failed here (a logger's stream, a metric) must not take the process down.
      try {
        deps.log.error({ err }, 'a write answered below Fastify failed after its answer')
      } catch {
        // The logger itself is what failed: nothing is left to tell.
      }
      if (!res.headersSent) res.destroy()
    }

    if (c.length === 0) {
      write(null).catch(failed)
      return
    }
    readRawBody(req, policy.gateway.limits.bodyBytes)
      .then(write, (err: unknown) => {
        // The body did not arrive (the listener's timeout, a broken connection): answered as the route would.
        const e = errorAnswer(err, {
          raw: req,
          url: req.url ?? c.route,
          upstreamAuth: null,
          policy,
          log: deps.log.child({ reqId: id }),
          hasChallenge: false,
        })
        answer(e.statusCode, e.headers.flat(), serialized(e.body), null)
      })
      .catch(failed)
  }
}
