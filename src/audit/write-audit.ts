/**
 * What the gateway records of each write it forwards (shared/SPEC.md 11): an
 * `intent` line before the upstream is called, an `outcome` line after it
 * answers, both before the client's response. Without a trail (`audit.file:
 * null`) both are no-ops.
 *
 * With `required`, an intent that cannot be written refuses the write (503
 * `IPDR_GW_AUDIT_UNAVAILABLE`): it never reaches the upstream. An outcome that
 * cannot be written is counted and logged but does not change the answer: the
 * write has happened upstream, and a client told it failed would retry it.
 */
import { GatewayError } from '../errors.js'
import { CREDENTIAL_FIELDS } from '../resources.js'
import { JsonMembers } from './chain.js'
import { DEFAULT_READ_USER_IDS, type Disclosed } from './disclosure.js'
import type { AuditTrail } from './writer.js'

/** A write about to be forwarded. */
export interface WriteIntent {
  readonly requestId: string
  /** The client request's trace id (SPEC 18). */
  readonly traceId?: string
  /** The policy consumer's name (`default`, `unknown`): never a username or a token. */
  readonly consumer: string
  /** The client's address. */
  readonly client: string
  /** The Trisul username the write acts as (SPEC 14). */
  readonly trisulUser: string
  /** The Trisul context it writes in. */
  readonly context: string
  readonly resource: string
  readonly operation: string
  readonly userId: string | null
  /** The fields sent (credential fields are dropped here whatever the caller passed). */
  readonly fields: Readonly<Record<string, unknown>>
  /** The record's previous values from the cache; null when the gateway did not have them. */
  readonly before: unknown
  /** The sync job the write belongs to (section 10). */
  readonly syncJob?: string
}

export interface WriteOutcome {
  /** The status the client is answered with. */
  readonly status: number
  /** The upstream's HTTP status; null when it sent none (timeout, refused, circuit open). */
  readonly upstreamStatus: number | null
  /** The gateway error code of a failed write. */
  readonly code?: string
  /** A Query API answer's IP and window (`ip`, `from_time`, `to_time`), for result reads and cancels. */
  readonly query?: Readonly<Record<string, unknown>>
}

/** An answer that disclosed subscriber data (SPEC 14's `access` line). */
export interface AccessRecord {
  readonly requestId: string
  /** The request's trace id (SPEC 18). */
  readonly traceId?: string
  readonly consumer: string
  readonly client: string
  /** The Trisul username the request acted as. */
  readonly trisulUser: string
  readonly context: string
  readonly resource: string
  /** The policy's operation name (`list`, `read`), or what a sync disclosed (`sync-plan`, `sync-apply`). */
  readonly operation: string
  /** The filter, paging, lookup or job as sent. */
  readonly query: Readonly<Record<string, unknown>>
  readonly status: number
  /** The records disclosed (`src/audit/disclosure.ts`), worked out after the answer is sent. */
  readonly disclosed: Disclosed | Promise<Disclosed>
  /** The fields hidden by the consumer's `redact`. */
  readonly redacted: readonly string[]
}

/** Handed from `intent` to `outcome`. */
export interface IntentMark {
  readonly seq: number
  readonly write: WriteIntent
  readonly started: number
  /** The members both lines share, formatted at the intent. */
  readonly described: string
}

export type AuditResult = 'ok' | 'failed'

export interface WriteAuditOptions {
  /** Refuse a write whose intent cannot be written. Default true. */
  readonly required?: boolean
  /** Write `access` lines (`audit.reads`). Default true. */
  readonly reads?: boolean
  /** How many ids an access line names before it digests them (`audit.readUserIds`). Default 100. */
  readonly readUserIds?: number
  /** The off-host copy, closed after the trail (its last checkpoint shipped too). */
  readonly shipper?: { close(): Promise<void> }
  /** Each line written or not (`ipdr_gateway_audit_records_total{result}`). */
  readonly onRecord?: (result: AuditResult, phase: 'intent' | 'outcome' | 'access') => void
  /** A line that could not be written (the error has no credential: it is about the file). */
  readonly onError?: (phase: 'intent' | 'outcome' | 'access', err: unknown) => void
}

const CREDENTIALS: ReadonlySet<string> = new Set(CREDENTIAL_FIELDS)

/** The fields of a write body without any credential field. */
export function auditedFields(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(fields)) {
    // `__proto__` stays data, as the fields were sent (src/upstream/body.ts).
    if (k === '__proto__')
      Object.defineProperty(out, k, {
        value: fields[k],
        enumerable: true,
        writable: true,
        configurable: true,
      })
    else if (!CREDENTIALS.has(k)) out[k] = fields[k]
  }
  return out
}

/**
 * What both lines of a write say about it (SPEC 11 lists the same fields for each), as JSON members:
 * formatted once, at the intent, and reused by the outcome (issue 35). One literal whose absent
 * values are `undefined`, which JSON leaves out.
 */
function describedMembers(write: WriteIntent): string {
  const text = JSON.stringify({
    requestId: write.requestId,
    traceId: write.traceId,
    consumer: write.consumer,
    client: write.client,
    trisulUser: write.trisulUser,
    context: write.context,
    resource: write.resource,
    operation: write.operation,
    UserID: write.userId,
    fields: auditedFields(write.fields),
    before: write.before ?? null,
  })
  return text.slice(1, -1)
}

/** `,` and the members of `extra`'s JSON, or nothing when it has none. */
function moreMembers(extra: Readonly<Record<string, unknown>>): string {
  const text = JSON.stringify(extra)
  return text.length > 2 ? `,${text.slice(1, -1)}` : ''
}

export class WriteAudit {
  readonly #trail: AuditTrail | null
  readonly #required: boolean
  readonly #reads: boolean
  readonly #shipper: WriteAuditOptions['shipper']
  /** `audit.readUserIds`. */
  readonly readUserIds: number
  readonly #onRecord: WriteAuditOptions['onRecord']
  readonly #onError: WriteAuditOptions['onError']

  constructor(trail: AuditTrail | null, opts: WriteAuditOptions = {}) {
    this.#trail = trail
    this.#required = opts.required !== false
    this.#reads = opts.reads !== false
    this.#shipper = opts.shipper
    this.readUserIds = opts.readUserIds ?? DEFAULT_READ_USER_IDS
    this.#onRecord = opts.onRecord
    this.#onError = opts.onError
  }

  get enabled(): boolean {
    return this.#trail !== null
  }

  /** Whether answers that disclose subscriber data get an `access` line: a trail, and `audit.reads`. */
  get recordsReads(): boolean {
    return this.#trail !== null && this.#reads
  }

  /** Records the intent; throws `IPDR_GW_AUDIT_UNAVAILABLE` when it cannot and the audit is required. */
  async intent(write: WriteIntent): Promise<IntentMark | null> {
    const trail = this.#trail
    if (!trail) return null
    const started = performance.now()
    try {
      const described = describedMembers(write)
      const line = `"phase":"intent",${described}${moreMembers({ syncJob: write.syncJob })}`
      const seq = await trail.append(new JsonMembers(line))
      this.#onRecord?.('ok', 'intent')
      return { seq, write, started, described }
    } catch (err) {
      this.#onRecord?.('failed', 'intent')
      this.#onError?.('intent', err)
      if (this.#required) throw new GatewayError('IPDR_GW_AUDIT_UNAVAILABLE', undefined, { cause: err })
      return null
    }
  }

  /**
   * Records an answer that disclosed subscriber data (an `access` line); never throws and never
   * holds the answer back (a line that cannot be written is counted and logged).
   */
  async access(read: AccessRecord): Promise<void> {
    const trail = this.#trail
    if (!trail || !this.#reads) return
    try {
      const disclosed = await read.disclosed
      await trail.append({
        phase: 'access',
        requestId: read.requestId,
        ...(read.traceId === undefined ? {} : { traceId: read.traceId }),
        consumer: read.consumer,
        client: read.client,
        trisulUser: read.trisulUser,
        context: read.context,
        resource: read.resource,
        operation: read.operation,
        query: read.query,
        status: read.status,
        count: disclosed.count,
        ...(disclosed.ids !== null
          ? { [disclosed.field]: disclosed.ids }
          : { [`${disclosed.field}Digest`]: disclosed.digest }),
        redacted: read.redacted,
      })
      this.#onRecord?.('ok', 'access')
    } catch (err) {
      this.#onRecord?.('failed', 'access')
      this.#onError?.('access', err)
    }
  }

  /** Records the outcome of a write whose intent was recorded; never throws. */
  async outcome(mark: IntentMark | null, outcome: WriteOutcome): Promise<void> {
    const trail = this.#trail
    if (!trail || !mark) return
    const { write } = mark
    try {
      const own = moreMembers({
        intent: mark.seq,
        status: outcome.status,
        upstreamStatus: outcome.upstreamStatus,
        code: outcome.code,
        query: outcome.query,
        ms: Math.round((performance.now() - mark.started) * 1000) / 1000,
        syncJob: write.syncJob,
      })
      await trail.append(new JsonMembers(`"phase":"outcome",${mark.described}${own}`))
      this.#onRecord?.('ok', 'outcome')
    } catch (err) {
      this.#onRecord?.('failed', 'outcome')
      this.#onError?.('outcome', err)
    }
  }

  async close(): Promise<void> {
    await this.#trail?.close()
    await this.#shipper?.close()
  }
}

/** No trail: every write goes through unrecorded. */
export const NO_AUDIT = new WriteAudit(null)
