/**
 * Trisul's IPDR Query API, emulated (shared/SPEC.md 12, after Trisul's
 * docs/ipdr/api-ipdr-query.md): per-user queries that go NEW → INPROGRESS →
 * COMPLETED over `querySeconds`, cancel, the `headers` selection, and
 * synthetic flow rows whose UserID comes from the customer whose mapping held
 * the queried address in the window. Queries live in memory (they are jobs, not
 * records: a restart forgets them, as a restarted query engine would its queue).
 * Pure apart from the clock and the store it reads mappings from.
 */

import { type IpRange, parseIpRange } from '../shared/ip-range.js'
import { QUERY_COLUMNS } from '../shared/ipdr-query.js'
import { formatTrisulTime, parseTrisulTime } from '../shared/trisul-time.js'
import { ENVELOPES } from './envelopes.js'
import { DEFAULT_CONTEXT, type ResolvedEmulatorOptions } from './options.js'
import { type Body, checkToken, rejectUnknownFields } from './request-body.js'
import { pick, prng } from './seed.js'
import type { EmulatorStore, MappingHolder } from './store.js'

export const QUERY_PATH = '/api/ipdr_query'

/** The 13 columns of a result row, in Trisul's order. */
export const FLOW_COLUMNS = QUERY_COLUMNS
export type FlowColumn = (typeof FLOW_COLUMNS)[number]
export type FlowRow = Record<FlowColumn, string>

export type QueryStatus = 'NEW' | 'INPROGRESS' | 'COMPLETED' | 'CANCELED'

const STATUS_MESSAGES: Readonly<Record<QueryStatus, string>> = {
  NEW: 'Query submitted',
  INPROGRESS: 'Processing records...',
  COMPLETED: 'Query completed successfully',
  CANCELED: 'Query cancelled by user',
}

/** Oldest queries are forgotten past this many, so a looping client cannot exhaust memory. */
const MAX_QUERIES = 10_000
/** Longest `count` of a listing. */
const MAX_COUNT = 1000
/** Synthetic flows per mapping that held the address. */
const FLOWS_PER_HOLDER = 3

interface QueryRecord {
  readonly id: number
  readonly owner: string
  readonly context: string
  readonly ip: string
  readonly address: IpRange
  readonly from: number
  readonly to: number
  readonly createdMs: number
  /** The client's own id for the query (`request_id`), if it gave one. */
  readonly requestId: string | null
  canceled: boolean
  rows: FlowRow[] | null
}

export type QueryOperation = 'list' | 'create' | 'status' | 'result' | 'cancel'

/** Method and path suffix of each operation under /api/ipdr_query. */
export const QUERY_ROUTES: readonly { op: QueryOperation; method: 'GET' | 'POST' | 'PUT'; path: string }[] = [
  { op: 'list', method: 'GET', path: '/list' },
  { op: 'create', method: 'POST', path: '/new' },
  { op: 'status', method: 'GET', path: '/status' },
  { op: 'result', method: 'GET', path: '/result' },
  { op: 'cancel', method: 'PUT', path: '/cancel' },
]

const ALLOWED: Readonly<Record<QueryOperation, readonly string[]>> = {
  list: ['count'],
  create: ['ip', 'from_time', 'to_time', 'request_id'],
  status: ['query_id', 'request_id'],
  result: ['query_id', 'headers', 'request_id'],
  cancel: ['query_id', 'request_id'],
}

/** The context of a Query API request: `contextname` is optional there (`context0` is `default`). */
function queryContext(
  body: Body,
  opts: ResolvedEmulatorOptions,
  user: ReturnType<typeof checkToken>,
): string {
  if (opts.dialect === 'v1') return DEFAULT_CONTEXT
  const given = body.contextname
  const omitted = given === undefined || given === null || given === ''
  const context = omitted || given === 'context0' ? DEFAULT_CONTEXT : given
  if (typeof context !== 'string' || !opts.contexts.has(context)) throw ENVELOPES.queryContextNotFound(given)
  if (user.contexts !== null && !user.contexts.has(context)) throw ENVELOPES.queryContextForbidden(context)
  return context
}

/** `YYYY-MM-DD HH:MM:SS` in `zone`, as Trisul writes a row's times. */
function rowTime(seconds: number, zone: string): string {
  const [date = '', time = ''] = formatTrisulTime(seconds, zone).split(' ')
  const [d, m, y] = date.split('-')
  return `${y}-${m}-${d} ${time}`
}

const DESTINATIONS = ['142.250.183.78', '157.240.16.35', '13.107.42.14', '104.16.132.229', '8.8.8.8']
const SERVICES: readonly (readonly [string, string])[] = [
  ['TCP', '443'],
  ['TCP', '80'],
  ['UDP', '53'],
  ['UDP', '443'],
]

/** Synthetic flows of one mapping's holder, inside the part of the window the mapping covers. */
function flowsOf(q: QueryRecord, holder: MappingHolder, zone: string): FlowRow[] {
  const start = Math.max(q.from, holder.starttime)
  const end = Math.min(q.to, holder.endtime ?? q.to)
  const next = prng(q.id * 7919 + holder.mappingId)
  const rows: FlowRow[] = []
  for (let i = 0; i < FLOWS_PER_HOLDER; i++) {
    const t0 = start + Math.floor(next() * Math.max(1, end - start))
    const duration = Math.min(Math.max(1, end - t0), 1 + Math.floor(next() * 600))
    const [protocol, port] = pick(next, SERVICES)
    rows.push({
      Protocol: protocol,
      SrcIP: q.ip,
      SrcPort: String(1024 + Math.floor(next() * 64000)),
      DestIP: pick(next, DESTINATIONS),
      DestPort: port,
      StartTime: rowTime(t0, zone),
      EndTime: rowTime(t0 + duration, zone),
      Duration: String(duration),
      UserID: holder.UserID,
      SubscriberID: holder.terminalid === '' ? holder.UserID : holder.terminalid,
      NatIP: `100.64.${holder.mappingId % 256}.${1 + (q.id % 254)}`,
      NatPort: String(1024 + Math.floor(next() * 64000)),
      DeviceIP: '10.0.0.1',
    })
  }
  return rows
}

function queryIdOf(body: Body): number {
  const v = body.query_id
  if (v === undefined || v === null || v === '') throw ENVELOPES.queryIdRequired()
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,15}$/.test(v) ? Number(v) : Number.NaN
  // Trisul looks the id up; anything that is not one is simply not found.
  if (!Number.isSafeInteger(n)) throw ENVELOPES.queryNotFound()
  return n
}

/** A client's `request_id`: 1-64 letters, digits and `._:-`. */
function requestIdOf(body: Body): string {
  const v = body.request_id
  if (typeof v !== 'string' || !/^[A-Za-z0-9._:-]{1,64}$/.test(v)) throw ENVELOPES.queryInvalidRequestId()
  return v
}

function countOf(body: Body): number {
  const v = body.count
  if (v === undefined || v === null || v === '') return 10
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,6}$/.test(v) ? Number(v) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_COUNT) throw ENVELOPES.queryInvalidCount(v)
  return n
}

function headersOf(body: Body): readonly FlowColumn[] {
  const v = body.headers
  if (v === undefined || v === null) return FLOW_COLUMNS
  if (!Array.isArray(v)) throw ENVELOPES.queryHeadersNotArray()
  const known: ReadonlySet<string> = new Set(FLOW_COLUMNS)
  const bad = v.filter((h) => typeof h !== 'string' || !known.has(h)).map((h) => String(h))
  if (bad.length > 0) throw ENVELOPES.queryInvalidHeaders(bad)
  return v.length === 0 ? FLOW_COLUMNS : (v as FlowColumn[])
}

/** The queries of one emulator and the five operations on them. */
export class QueryBook {
  readonly #queries = new Map<number, QueryRecord>()
  readonly #store: EmulatorStore
  readonly #opts: ResolvedEmulatorOptions
  readonly #now: () => number
  #nextId = 1

  constructor(store: EmulatorStore, opts: ResolvedEmulatorOptions, now: () => number = Date.now) {
    this.#store = store
    this.#opts = opts
    this.#now = now
  }

  /** Runs one request: credentials, context, allowed fields, then the operation. */
  run(op: QueryOperation, body: Body): Record<string, unknown> {
    const user = checkToken(body, this.#opts)
    const context = queryContext(body, this.#opts, user)
    rejectUnknownFields(body, ['api_token', 'username', 'contextname'], ALLOWED[op])
    switch (op) {
      case 'list':
        return this.#list(user.name, countOf(body))
      case 'create':
        return this.#create(user.name, context, body)
      case 'status':
        return { status: 'SUCCESS', ...this.#describe(this.#owned(user.name, this.#idOf(user.name, body))) }
      case 'result':
        return this.#result(user.name, this.#idOf(user.name, body), headersOf(body))
      case 'cancel':
        return this.#cancel(user.name, this.#idOf(user.name, body))
    }
  }

  #statusOf(q: QueryRecord): QueryStatus {
    if (q.canceled) return 'CANCELED'
    const age = this.#now() - q.createdMs
    const total = this.#opts.querySeconds * 1000
    if (age >= total) return 'COMPLETED'
    return age < total / 3 ? 'NEW' : 'INPROGRESS'
  }

  #describe(q: QueryRecord): Record<string, unknown> {
    const status = this.#statusOf(q)
    const zone = this.#opts.timeZone
    return {
      CurrentStatus: status,
      QueryStatusMessage: STATUS_MESSAGES[status],
      ip: q.ip,
      from_time: formatTrisulTime(q.from, zone),
      to_time: formatTrisulTime(q.to, zone),
    }
  }

  /** The query a status, result or cancel names: by `query_id`, else by the owner's `request_id`. */
  #idOf(owner: string, body: Body): number {
    if ((body.query_id === undefined || body.query_id === '') && body.request_id !== undefined) {
      const requestId = requestIdOf(body)
      for (const q of this.#queries.values()) if (q.owner === owner && q.requestId === requestId) return q.id
      throw ENVELOPES.queryNotFound()
    }
    return queryIdOf(body)
  }

  #owned(owner: string, id: number): QueryRecord {
    const q = this.#queries.get(id)
    if (q === undefined) throw ENVELOPES.queryNotFound()
    if (q.owner !== owner) throw ENVELOPES.queryNotYours()
    return q
  }

  #list(owner: string, count: number): Record<string, unknown> {
    const zone = this.#opts.timeZone
    const mine = [...this.#queries.values()]
      .filter((q) => q.owner === owner)
      .reverse()
      .slice(0, count)
    return {
      status: 'SUCCESS',
      ipdr_controls: mine.map((q) => {
        const status = this.#statusOf(q)
        return {
          id: q.id,
          QueryIP: q.ip,
          QueryWindowStart: formatTrisulTime(q.from, zone),
          QueryWindowEnd: formatTrisulTime(q.to, zone),
          CurrentStatus: status,
          StatusMessage: STATUS_MESSAGES[status],
        }
      }),
    }
  }

  #create(owner: string, context: string, body: Body): Record<string, unknown> {
    const zone = this.#opts.timeZone
    if (body.ip === undefined || body.ip === null || body.ip === '') throw ENVELOPES.queryIpRequired()
    const address = typeof body.ip === 'string' ? parseIpRange(body.ip) : null
    if (address === null || typeof body.ip !== 'string' || body.ip.includes('/'))
      throw ENVELOPES.queryInvalidIp()
    if (body.from_time === undefined || body.from_time === '') throw ENVELOPES.queryFromRequired()
    const from = typeof body.from_time === 'string' ? parseTrisulTime(body.from_time, zone) : null
    if (from === null) throw ENVELOPES.queryInvalidFrom()
    if (body.to_time === undefined || body.to_time === '') throw ENVELOPES.queryToRequired()
    const to = typeof body.to_time === 'string' ? parseTrisulTime(body.to_time, zone) : null
    if (to === null) throw ENVELOPES.queryInvalidTo()
    const requestId = body.request_id === undefined ? null : requestIdOf(body)
    if (requestId !== null) {
      for (const q of this.#queries.values())
        if (q.owner === owner && q.requestId === requestId) throw ENVELOPES.queryDuplicateRequestId(requestId)
    }
    const id = this.#nextId++
    this.#queries.set(id, {
      id,
      owner,
      context,
      ip: body.ip,
      address,
      from,
      to,
      createdMs: this.#now(),
      requestId,
      canceled: false,
      rows: null,
    })
    if (this.#queries.size > MAX_QUERIES) {
      const oldest = this.#queries.keys().next().value
      if (oldest !== undefined) this.#queries.delete(oldest)
    }
    return { status: 'SUCCESS', message: 'Query submitted successfully', query_id: id }
  }

  #result(owner: string, id: number, headers: readonly FlowColumn[]): Record<string, unknown> {
    const q = this.#owned(owner, id)
    const status = this.#statusOf(q)
    if (status === 'NEW' || status === 'INPROGRESS') throw ENVELOPES.queryNotCompleted(this.#describe(q))
    // A cancelled query has no result file: no rows.
    if (status === 'COMPLETED' && q.rows === null) {
      // An inverted window matches nothing (Trisul does not check it either).
      const holders = q.to > q.from ? this.#store.holdersOf(q.context, q.address, q.from, q.to) : []
      q.rows = holders
        .flatMap((h) => flowsOf(q, h, this.#opts.timeZone))
        .sort((x, y) => (x.StartTime < y.StartTime ? -1 : x.StartTime > y.StartTime ? 1 : 0))
    }
    const rows = (q.rows ?? []).map((r) => Object.fromEntries(headers.map((h) => [h, r[h]])))
    return { status: 'SUCCESS', ...this.#describe(q), rows }
  }

  #cancel(owner: string, id: number): Record<string, unknown> {
    const q = this.#owned(owner, id)
    const status = this.#statusOf(q)
    if (status !== 'NEW' && status !== 'INPROGRESS') throw ENVELOPES.queryNotCancelable(this.#describe(q))
    q.canceled = true
    const { ip, from_time, to_time } = this.#describe(q)
    return { status: 'SUCCESS', message: 'Query cancelled successfully', ip, from_time, to_time }
  }
}
