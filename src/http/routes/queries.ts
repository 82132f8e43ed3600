/**
 * Trisul's IPDR Query API behind the gateway (shared/SPEC.md 12): the five
 * routes of `QUERY_FACTS` (list, new, status, result, cancel), authenticated
 * and authorized like the record routes (the same `makeAdmission`, policy
 * resource `queries`), parameters from the query string on GET, times turned
 * into Trisul's format, the upstream's envelopes and real statuses normalized
 * by the same interpretation. A result read may `wait` for the query
 * (polling its status at most once a second), may ask for CSV, and is served
 * from a per-credentials cache once the query has completed. Creates, result
 * reads and cancels are audited with the IP and window (SPEC 11).
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { disclosedIds } from '../../audit/disclosure.js'
import { auditedFields, NO_AUDIT, type WriteAudit } from '../../audit/write-audit.js'
import type { UpstreamAuth } from '../../credentials.js'
import { answerStatus, GatewayError, toGatewayError } from '../../errors.js'
import type { Policy } from '../../policy/types.js'
import { parseQueryInput, type QueryInput, REQUEST_ID } from '../../queries/query-input.js'
import {
  asQueryResult,
  type QueryResult,
  QueryResultCache,
  resultCsv,
  resultJson,
  wantsCsv,
} from '../../queries/query-result.js'
import { QUERY_FACTS, type QueryRouteFact } from '../../resources.js'
import { upstreamBody } from '../../upstream/body.js'
import type { UpstreamClient, UpstreamResponse } from '../../upstream/client.js'
import { failureOf, interpretResponse, outcomeOf } from '../../upstream/interpret.js'
import { type AdmissionDeps, makeAdmission } from '../admission/admission.js'
import { readerOf, recordAccess } from '../listing/replies.js'

/** Polls of a waiting result read are at least this far apart (SPEC 12: at most once a second). */
export const STATUS_POLL_MS = 1000
/** Largest Query API answer read (a JSON text must stay well below V8's string limit). */
export const MAX_QUERY_ANSWER_BYTES = 256 * 1024 * 1024
/** A poll due this close after the deadline still runs: `wait=N` gets N polls, not N - 1. */
const DEADLINE_SLACK_MS = 100
/** `Retry-After` of a result that is not ready: the poll interval. */
const RETRY_AFTER_SECONDS = '1'

/** The admission's dependencies (parseJson, rateLimiter, onDenied, isKnownGood, chargeUnproven) and the routes' own. */
export interface QueryRouteDeps extends AdmissionDeps {
  readonly policy: () => Policy
  readonly upstream: UpstreamClient
  readonly audit?: WriteAudit
  readonly results: QueryResultCache
  /** Each result lookup (`ipdr_gateway_cache_lookups_total{resource="queries"}`). */
  readonly onResultLookup?: (result: 'hit' | 'miss') => void
  readonly rateLimitConfig?: () => object
}

/**
 * A create's `Idempotency-Key` header becomes its `request_id` (SPEC 17), so a client that retries
 * the create gets the first query's answer or a 409, never a second lawful-intercept lookup.
 */
function withIdempotencyKey(request: FastifyRequest, route: QueryRouteFact): Record<string, unknown> {
  const params = paramsOf(request)
  const key = request.headers['idempotency-key']
  if (route.operation !== 'create' || key === undefined) return params
  if (typeof key !== 'string' || !REQUEST_ID.test(key))
    throw new GatewayError('IPDR_GW_VALIDATION', 'Idempotency-Key must be 1-64 letters, digits or . _ : -')
  if (params.request_id !== undefined && params.request_id !== key)
    throw new GatewayError('IPDR_GW_VALIDATION', 'Idempotency-Key and request_id differ')
  return { ...params, request_id: key }
}

/** The parameters of a request: the JSON body's (credentials already removed), then the query string's. */
function paramsOf(request: FastifyRequest): Record<string, unknown> {
  const body = request.body
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
    throw new GatewayError('IPDR_GW_VALIDATION', 'The body must be a JSON object')
  }
  const params: Record<string, unknown> = { ...((body as Record<string, unknown> | undefined) ?? {}) }
  for (const [k, v] of Object.entries(request.query as Record<string, unknown>)) {
    // `headers` may repeat (headers=SrcIP&headers=DestIP); nothing else may.
    if (Array.isArray(v) && k !== 'headers') {
      throw new GatewayError('IPDR_GW_INVALID_QUERY', `${k} given more than once`)
    }
    params[k] = v
  }
  return params
}

/** The query's IP and window from an answer, for the audit line. */
function windowOf(value: Readonly<Record<string, unknown>> | undefined): Record<string, unknown> | undefined {
  if (!value) return undefined
  const out: Record<string, unknown> = {}
  for (const k of ['ip', 'from_time', 'to_time', 'CurrentStatus'])
    if (value[k] !== undefined) out[k] = value[k]
  return Object.keys(out).length > 0 ? out : undefined
}

interface Call {
  readonly deps: QueryRouteDeps
  readonly auth: UpstreamAuth
  readonly policy: Policy
  readonly requestId: string
  readonly signal: AbortSignal
}

/** One upstream call of the Query API, interpreted; resolves with the answer object or throws the client's error. */
async function callUpstream(
  c: Call,
  route: QueryRouteFact,
  fields: Readonly<Record<string, unknown>>,
): Promise<{ value: Record<string, unknown>; res: UpstreamResponse }> {
  const res = await c.deps.upstream.request({
    method: route.method,
    path: `${QUERY_FACTS.path}${route.path}`,
    resource: 'queries',
    body: upstreamBody(QUERY_FACTS, c.policy.gateway.upstream.dialect, c.auth, fields),
    requestId: c.requestId,
    signal: c.signal,
    maxBytes: Math.min(MAX_QUERY_ANSWER_BYTES, c.policy.gateway.upstream.maxListingBytes),
  })
  const meaning = interpretResponse(res, 'object')
  c.deps.upstream.report(route.method, 'queries', outcomeOf(meaning), res.seconds)
  if (meaning.kind !== 'object') {
    const err = failureOf(meaning, res)
    if (err.code === 'IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED') {
      throw new GatewayError(err.code, err.message, {
        headers: { 'retry-after': RETRY_AFTER_SECONDS },
        ...(err.passthrough ? { passthrough: err.passthrough } : {}),
      })
    }
    throw err
  }
  return { value: meaning.value, res }
}

const STATUS_ROUTE = QUERY_FACTS.routes.find((r) => r.path === '/status') as QueryRouteFact

/**
 * The result of a query, from the cache or the upstream; with `wait`, polls
 * the status (at most once a second) until the query is no longer NEW or
 * INPROGRESS, the time is up (409 + Retry-After) or the client has gone.
 */
async function readResult(
  c: Call,
  route: QueryRouteFact,
  input: QueryInput,
): Promise<{ result: QueryResult; hit: boolean }> {
  // A query named by the client's request_id is cached under it (never mistaken for a query_id).
  const key = QueryResultCache.key(c.auth, input.queryId ?? `request:${input.requestId}`)
  const cached = c.deps.results.get(key)
  c.deps.onResultLookup?.(cached ? 'hit' : 'miss')
  if (cached) return { result: cached, hit: true }
  const deadline = performance.now() + input.waitSeconds * 1000
  const fields = input.selector
  for (let attempt = 0; attempt <= input.waitSeconds + 1; attempt++) {
    try {
      const { value, res } = await callUpstream(c, route, fields)
      const result = asQueryResult(value)
      if (!result)
        throw new GatewayError('IPDR_GW_UPSTREAM_BAD_RESPONSE', 'The query result has no rows array')
      c.deps.results.set(key, result, res.body.length)
      return { result, hit: false }
    } catch (err) {
      const waiting = err instanceof GatewayError && err.code === 'IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED'
      if (!waiting || !mayPollAgain(deadline)) throw err
      await pollUntilDone(c, fields, deadline, err)
    }
  }
  throw new GatewayError('IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED', undefined, {
    headers: { 'retry-after': RETRY_AFTER_SECONDS },
  })
}

/** True when one more status poll, a poll interval from now, is due before the deadline. */
function mayPollAgain(deadline: number): boolean {
  return performance.now() + STATUS_POLL_MS <= deadline + DEADLINE_SLACK_MS
}

/** Polls the status once a second until the query leaves NEW/INPROGRESS; throws `notReady` when time runs out. */
async function pollUntilDone(
  c: Call,
  fields: Readonly<Record<string, unknown>>,
  deadline: number,
  notReady: GatewayError,
): Promise<void> {
  for (;;) {
    if (!mayPollAgain(deadline)) throw notReady
    await sleep(STATUS_POLL_MS, undefined, { signal: c.signal })
    const { value } = await callUpstream(c, STATUS_ROUTE, fields)
    if (value.CurrentStatus !== 'NEW' && value.CurrentStatus !== 'INPROGRESS') return
  }
}

/** Aborted when the client goes away before its answer is sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController()
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort()
  })
  return controller.signal
}

export function registerQueryRoutes(app: FastifyInstance, deps: QueryRouteDeps): void {
  const audit = deps.audit ?? NO_AUDIT
  for (const route of QUERY_FACTS.routes) {
    const admit = makeAdmission(QUERY_FACTS, route.operation, deps)
    app.route({
      method: route.method,
      url: `${QUERY_FACTS.path}${route.path}`,
      config: {
        resource: 'queries',
        operation: route.operation,
        queryRoute: route.path,
        ...(deps.rateLimitConfig ? { rateLimit: deps.rateLimitConfig() } : {}),
      },
      onRequest: admit.onRequest,
      preValidation: admit.preValidation,
      handler: (request, reply) => handleQuery(request, reply, route, deps, audit),
    })
  }
}

async function handleQuery(
  request: FastifyRequest,
  reply: FastifyReply,
  route: QueryRouteFact,
  deps: QueryRouteDeps,
  audit: WriteAudit,
): Promise<void> {
  const auth = request.upstreamAuth
  if (!auth) throw new GatewayError('IPDR_GW_MISSING_CREDENTIALS')
  const policy = request.gw.policy
  // Checked before anything is recorded or sent: a malformed IP or window never reaches the upstream.
  const input = parseQueryInput(route, withIdempotencyKey(request, route), policy.gateway.upstream.timeZone)
  const c: Call = { deps, auth, policy, requestId: String(request.id), signal: clientGone(reply) }
  const csv = route.path === '/result' && wantsCsv(request.headers.accept)
  reply.header('cache-control', 'no-store')

  const auditedFields: Record<string, unknown> = { ...input.upstreamFields }
  if (route.path === '/result' && input.columns.length !== QUERY_FACTS.columns.length) {
    auditedFields.headers = input.columns
  }
  // Throws 503 before anything is sent when the audit is required and cannot record the intent.
  const intent =
    route.audited && audit.enabled
      ? await audit.intent({
          requestId: c.requestId,
          consumer: request.gw.consumerName,
          client: request.ip,
          trisulUser: auth.username,
          context: auth.context,
          resource: 'queries',
          operation: route.audited,
          userId: null,
          fields: auditedFields,
          before: null,
        })
      : null
  try {
    if (route.path === '/result') {
      const { result, hit } = await readResult(c, route, input)
      const window = windowOf(result.summary)
      await audit.outcome(intent, {
        status: 200,
        upstreamStatus: hit ? null : 200,
        ...(window ? { query: window } : {}),
      })
      reply.header('x-cache', hit ? 'HIT' : 'MISS')
      const redact = new Set(request.gw.consumer?.redact ?? [])
      recordQueryAccess(request, audit, route, input.upstreamFields, result.rows)
      if (csv) {
        reply
          .type('text/csv; charset=utf-8')
          .header(
            'content-disposition',
            `attachment; filename="ipdr-query-${input.queryId ?? input.requestId}.csv"`,
          )
          .send(resultCsv(result, input.columns, redact))
        return
      }
      reply.send(resultJson(result, input.columns, redact))
      return
    }
    const { value, res } = await callUpstream(c, route, input.upstreamFields)
    const window = route.operation === 'create' ? undefined : windowOf(value)
    await audit.outcome(intent, {
      status: 200,
      upstreamStatus: res.statusCode,
      ...(window ? { query: window } : {}),
    })
    // The upstream's own bytes (already checked to be a JSON object): nothing re-serialized.
    reply.type('application/json; charset=utf-8').send(res.body)
    if (route.path === '/status') recordQueryAccess(request, audit, route, input.upstreamFields, [])
  } catch (err) {
    const ge = c.signal.aborted ? null : toGatewayError(err)
    await audit.outcome(intent, {
      // 499: the client closed the connection before its answer (nginx's convention).
      status: ge ? answerStatus(ge, policy.gateway.upstream.normalizeErrors) : 499,
      upstreamStatus: ge?.passthrough?.statusCode ?? null,
      code: ge?.code ?? 'CLIENT_CLOSED',
    })
    throw ge ?? err
  }
}

/**
 * The access line of a query's status or result (SPEC 14): the result names who had the address
 * (its rows' UserIDs); a status discloses the query, no record.
 */
function recordQueryAccess(
  request: FastifyRequest,
  audit: WriteAudit,
  route: QueryRouteFact,
  fields: Readonly<Record<string, unknown>>,
  rows: readonly Readonly<Record<string, unknown>>[],
): void {
  const reader = audit.recordsReads ? readerOf(request) : null
  if (!reader) return
  const userIds = new Set<string>()
  for (const row of rows) if (typeof row.UserID === 'string' && row.UserID !== '') userIds.add(row.UserID)
  const disclosed = disclosedIds([...userIds], audit.readUserIds).then((d) => ({ ...d, count: rows.length }))
  // The policy's name of the operation (SPEC 14), as for listings: both a status and a result are reads.
  recordAccess(audit, reader, 'queries', route.operation, auditedFields(fields), disclosed)
}
