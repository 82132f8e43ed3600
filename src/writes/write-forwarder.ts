/**
 * One write forwarded to the upstream, the same way for a client's write
 * (src/http/routes/api.ts) and for each write of a sync job (src/sync/):
 * the audit's intent line first (a 503 before anything is sent when it cannot
 * be written and the audit is required), the upstream call (never retried: a
 * retry could duplicate a record), the context's listings invalidated whatever
 * happened, the answer interpreted, and the outcome line, before the caller
 * answers anyone.
 */

import type { WriteAudit } from '../audit/write-audit.js'
import type { ListingSource } from '../cache/listing-source.js'
import { changeOfWrite, encodeChange, writeKeys } from '../cache/write-change.js'
import type { UpstreamAuth } from '../credentials.js'
import { answerStatus, GatewayError, toGatewayError } from '../errors.js'
import type { Policy } from '../policy/types.js'
import type { ResourceFacts } from '../resources.js'
import { inSpan, type RequestTrace } from '../telemetry/tracing.js'
import { upstreamBody } from '../upstream/body.js'
import type { UpstreamClient, UpstreamMethod, UpstreamResponse } from '../upstream/client.js'
import { failureOf, interpretResponse, outcomeOf } from '../upstream/interpret.js'
import type { WriteOperation } from '../validation/request-schema.js'

export const WRITE_METHOD: Record<WriteOperation, UpstreamMethod> = {
  create: 'POST',
  replace: 'PUT',
  update: 'PATCH',
  delete: 'DELETE',
}

export interface WriteForwarderDeps {
  readonly upstream: UpstreamClient
  readonly listings: ListingSource
  readonly audit: WriteAudit
}

export interface ForwardedWrite {
  readonly facts: ResourceFacts
  readonly operation: WriteOperation
  /** The path's `{UserID}`; null for a create. */
  readonly pathUserId: string | null
  /** The body fields, credentials already removed. */
  readonly fields: Readonly<Record<string, unknown>>
  readonly auth: UpstreamAuth
  readonly policy: Policy
  readonly requestId: string
  readonly consumer: string
  readonly client: string
  /** The record's previous values for the audit; undefined: looked up in the cache. */
  readonly before?: unknown
  readonly syncJob?: string
  /** The client request's trace (SPEC 18): its id goes in the audit lines, its spans hang below it. */
  readonly trace?: RequestTrace | null
}

/** The upstream's answer to a successful write: the record, and its bytes as received. */
export interface WriteResult {
  readonly value: Record<string, unknown>
  readonly body: Buffer
}

/** Forwards the write; resolves with the record, or throws the GatewayError the client gets. */
export async function forwardWrite(deps: WriteForwarderDeps, w: ForwardedWrite): Promise<WriteResult> {
  const { facts, fields, auth } = w
  const method = WRITE_METHOD[w.operation]
  const path = w.pathUserId === null ? facts.path : `${facts.path}/${encodeURIComponent(w.pathUserId)}`
  const userId = w.pathUserId ?? (typeof fields.UserID === 'string' ? fields.UserID : null)
  const trace = w.trace
  const intent = deps.audit.enabled
    ? await inSpan(
        trace,
        'audit write',
        () =>
          deps.audit.intent({
            requestId: w.requestId,
            ...(trace == null ? {} : { traceId: trace.traceId }),
            consumer: w.consumer,
            client: w.client,
            trisulUser: auth.username,
            context: auth.context,
            resource: facts.name,
            operation: w.operation,
            userId,
            fields,
            before:
              w.before !== undefined
                ? w.before
                : w.operation === 'create' || userId === null
                  ? null
                  : deps.listings.cachedBefore(auth, facts, userId, selectorOf(facts, fields)),
            ...(w.syncJob === undefined ? {} : { syncJob: w.syncJob }),
          }),
        { 'ipdr.audit_phase': 'intent' },
      )
    : null
  const outcome = (o: Parameters<WriteAudit['outcome']>[1]) =>
    intent === null
      ? deps.audit.outcome(intent, o)
      : inSpan(trace, 'audit write', () => deps.audit.outcome(intent, o), {
          'ipdr.audit_phase': 'outcome',
        })
  let res: UpstreamResponse | null = null
  let meaning: ReturnType<typeof interpretResponse> | null = null
  const body = upstreamBody(facts, w.policy.gateway.upstream.dialect, auth, fields)
  // From here the write is in flight for the order of changes: `send` settles or abandons it.
  const ticket = deps.listings.beginWrite(auth.context, writeKeys(w.pathUserId, fields))
  // SPEC 19: the answer's record applied to the cached listings, or the context dropped when the
  // answer is not a record the gateway can read (or the write's outcome is unknown).
  const settle = (answered: UpstreamResponse | null) => {
    meaning = answered === null ? null : interpretResponse(answered, 'object')
    const change =
      meaning?.kind === 'object' && w.policy.gateway.cache.applyWrites
        ? changeOfWrite({
            resource: facts.name,
            operation: w.operation,
            pathUserId: w.pathUserId,
            fields,
            answer: meaning.value,
          })
        : null
    const write = {
      ticket,
      change: change === null ? null : { value: change, text: () => encodeChange(change) },
    }
    return inSpan(trace, 'coherence wait', () => deps.listings.invalidate(auth.context, write))
  }
  try {
    res = await send(deps, facts, method, path, body, w.requestId, trace, settle, () =>
      deps.listings.abandonWrite(ticket),
    )
    meaning ??= interpretResponse(res, 'object')
    deps.upstream.report(method, facts.name, outcomeOf(meaning), res.seconds)
    if (meaning.kind !== 'object') throw failureOf(meaning, res)
    await outcome({ status: 200, upstreamStatus: res.statusCode })
    return { value: meaning.value, body: res.body }
  } catch (err) {
    const ge = toGatewayError(err)
    await outcome({
      status: answerStatus(ge, w.policy.gateway.upstream.normalizeErrors),
      upstreamStatus: res?.statusCode ?? ge.passthrough?.statusCode ?? null,
      code: ge.code,
    })
    throw ge
  }
}

/** A mapping write may name which of the customer's mappings it touches. */
function selectorOf(facts: ResourceFacts, fields: Readonly<Record<string, unknown>>): string | undefined {
  const v = facts.selectorField === undefined ? undefined : fields[facts.selectorField]
  return typeof v === 'string' ? v : undefined
}

/** Sends the write once and settles the context's listings, before anyone is answered. */
async function send(
  deps: WriteForwarderDeps,
  facts: ResourceFacts,
  method: UpstreamMethod,
  path: string,
  body: ReturnType<typeof upstreamBody>,
  requestId: string,
  trace: RequestTrace | null | undefined,
  /**
   * The context's listings patched or dropped (here and, with a shared store, acknowledged by every
   * instance), with the answer when there is one.
   */
  settle: (res: UpstreamResponse | null) => Promise<void>,
  /** Nothing was sent. */
  abandon: () => void,
): Promise<UpstreamResponse> {
  let res: UpstreamResponse | null = null
  let mayHaveLanded = true
  try {
    res = await deps.upstream.request({ method, path, resource: facts.name, body, requestId, trace })
    return res
  } catch (err) {
    // An open circuit sent nothing: keep the cache, the outage's only source of listings.
    if (err instanceof GatewayError && err.code === 'IPDR_GW_CIRCUIT_OPEN') mayHaveLanded = false
    throw err
  } finally {
    // Settle before answering, whatever else happened: even a timed-out write
    // may have landed, and any client that reads after this response must see it.
    if (mayHaveLanded) await settle(res)
    else abandon()
  }
}
