/**
 * The parameters of the IPDR Query API routes (shared/SPEC.md 12), checked
 * before anything reaches the upstream: from the query string on GET (or, for
 * legacy clients, the JSON body), from the body otherwise. Times may be
 * Trisul's `DD-MM-YYYY HH:MM:SS`, ISO 8601 with an offset, or Unix seconds; the
 * upstream always gets Trisul's format in `upstream.timeZone`. Pure: no Fastify.
 */
import { GatewayError } from '../errors.js'
import { QUERY_FACTS, type QueryRouteFact } from '../resources.js'
import { parseIpRange } from '../shared/ip-range.js'
import { formatTrisulTime, parseTrisulTime } from '../shared/trisul-time.js'

/** Longest `wait` on a result, in seconds (SPEC 12). */
export const MAX_WAIT_SECONDS = 60
/** Largest `count` of a listing. */
export const MAX_LIST_COUNT = 1000

export interface QueryInput {
  /** The fields sent upstream beyond the credentials. */
  readonly upstreamFields: Readonly<Record<string, unknown>>
  /** `query_id`, when the route takes one and the client gave it. */
  readonly queryId: number | null
  /** The client's own `request_id` (SPEC 17), when it gave one. */
  readonly requestId: string | null
  /** What names the query to the upstream on status, result and cancel: `query_id`, else `request_id`. */
  readonly selector: Readonly<Record<string, unknown>>
  /** The result's columns the client asked for (all 13 when it named none). */
  readonly columns: readonly string[]
  /** Seconds a result read may wait for the query to complete (0: answer at once). */
  readonly waitSeconds: number
}

const COLUMNS: ReadonlySet<string> = new Set(QUERY_FACTS.columns)
/** A client's own query id (Trisul's `request_id`, and the gateway's `Idempotency-Key`). */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/
const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})$/
const UNIX_SECONDS = /^\d{1,11}$/
const DIGITS = /^\d{1,15}$/

function invalid(message: string): GatewayError {
  return new GatewayError('IPDR_GW_VALIDATION', message)
}

/** Unix seconds of a time in any of the three accepted forms, or null. */
export function parseQueryTime(value: unknown, zone: string): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : null
  if (typeof value !== 'string') return null
  if (UNIX_SECONDS.test(value)) return Number(value)
  if (ISO_WITH_OFFSET.test(value)) {
    const ms = Date.parse(value)
    return Number.isFinite(ms) && ms >= 0 ? Math.floor(ms / 1000) : null
  }
  return parseTrisulTime(value, zone)
}

function positiveInteger(value: unknown, name: string, max: number): number {
  const n =
    typeof value === 'number'
      ? value
      : typeof value === 'string' && DIGITS.test(value)
        ? Number(value)
        : Number.NaN
  if (!Number.isSafeInteger(n) || n < 1 || n > max)
    throw invalid(`${name} must be an integer from 1 to ${max}`)
  return n
}

function columnsOf(value: unknown): readonly string[] {
  if (value === undefined || value === '') return QUERY_FACTS.columns
  // The query string carries a comma-separated list; a body may carry an array.
  const names = typeof value === 'string' ? value.split(',') : value
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) {
    throw invalid('headers must be a list of column names')
  }
  const unknown = names.filter((n) => !COLUMNS.has(n))
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 5).map((n) => JSON.stringify(String(n).slice(0, 32)))
    throw invalid(
      `headers: unknown column ${shown.join(', ')}; the columns are ${QUERY_FACTS.columns.join(', ')}`,
    )
  }
  return names.length === 0 ? QUERY_FACTS.columns : [...new Set(names as string[])]
}

/**
 * Checks one request's parameters for `route` and builds what is sent
 * upstream. Throws `IPDR_GW_VALIDATION` (400) naming the parameter.
 */
export function parseQueryInput(
  route: QueryRouteFact,
  params: Readonly<Record<string, unknown>>,
  zone: string,
): QueryInput {
  for (const name of Object.keys(params)) {
    if (!route.params.includes(name)) {
      throw invalid(
        route.params.length === 0
          ? `${name} is not a parameter of ${QUERY_FACTS.path}${route.path}`
          : `${name} is not a parameter of ${QUERY_FACTS.path}${route.path} (${route.params.join(', ')})`,
      )
    }
  }
  const present = (name: string) => params[name] !== undefined && params[name] !== null && params[name] !== ''
  const fields: Record<string, unknown> = {}
  let queryId: number | null = null

  let requestId: string | null = null
  if (route.params.includes('request_id') && present('request_id')) {
    const r = params.request_id
    if (typeof r !== 'string' || !REQUEST_ID.test(r))
      throw invalid('request_id must be 1-64 letters, digits or . _ : -')
    requestId = r
    fields.request_id = r
  }
  if (route.params.includes('query_id')) {
    // A query is named by Trisul's query_id or by the client's own request_id (SPEC 17).
    if (present('query_id')) {
      queryId = positiveInteger(params.query_id, 'query_id', Number.MAX_SAFE_INTEGER)
      fields.query_id = queryId
    } else if (requestId === null) throw invalid('query_id (or request_id) is required')
  }
  if (route.operation === 'list' && present('count')) {
    fields.count = positiveInteger(params.count, 'count', MAX_LIST_COUNT)
  }
  if (route.operation === 'create') {
    for (const name of ['ip', 'from_time', 'to_time'])
      if (!present(name)) throw invalid(`${name} is required`)
    const ip = params.ip
    if (typeof ip !== 'string' || ip.includes('/') || parseIpRange(ip) === null) {
      throw invalid('ip must be an IPv4 or IPv6 address')
    }
    const from = parseQueryTime(params.from_time, zone)
    const to = parseQueryTime(params.to_time, zone)
    const form = 'DD-MM-YYYY HH:MM:SS, ISO 8601 with an offset, or Unix seconds'
    if (from === null) throw invalid(`from_time must be ${form}`)
    if (to === null) throw invalid(`to_time must be ${form}`)
    if (to <= from) throw invalid('to_time must be after from_time')
    fields.ip = ip
    fields.from_time = formatTrisulTime(from, zone)
    fields.to_time = formatTrisulTime(to, zone)
  }
  const columns = route.params.includes('headers') ? columnsOf(params.headers) : QUERY_FACTS.columns
  let waitSeconds = 0
  if (route.params.includes('wait') && present('wait')) {
    const w = params.wait
    waitSeconds =
      typeof w === 'number' ? w : typeof w === 'string' && /^\d{1,3}$/.test(w) ? Number(w) : Number.NaN
    if (!Number.isSafeInteger(waitSeconds) || waitSeconds < 0 || waitSeconds > MAX_WAIT_SECONDS) {
      throw invalid(`wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`)
    }
  }
  const selector =
    queryId !== null ? { query_id: queryId } : requestId !== null ? { request_id: requestId } : {}
  return { upstreamFields: fields, queryId, requestId, selector, columns, waitSeconds }
}
