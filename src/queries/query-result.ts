/**
 * A query's result as the gateway keeps and serves it: the upstream answer
 * with all 13 columns, checked once, cached when the query has completed (a
 * completed result never changes, SPEC 12), and projected per request onto
 * the columns asked for, as JSON or CSV. Pure but for the LRU it holds.
 */
import { stringify } from 'csv-stringify/sync'
import { LRUCache } from 'lru-cache'
import { REDACTED_VALUE } from '../cache/redaction.js'

/** Bytes of completed results kept per instance (each counted at its upstream size). */
export const QUERY_RESULT_CACHE_BYTES = 64 * 1024 * 1024
/** A result larger than this is served but not kept. */
export const QUERY_RESULT_MAX_CACHED_BYTES = 8 * 1024 * 1024

export interface QueryResult {
  /** The answer's fields but `rows` (status, CurrentStatus, QueryStatusMessage, ip, from_time, to_time). */
  readonly summary: Readonly<Record<string, unknown>>
  readonly rows: readonly Readonly<Record<string, unknown>>[]
}

/** The upstream's result answer, or null when it is not one (no `rows` array of objects). */
export function asQueryResult(value: Record<string, unknown>): QueryResult | null {
  const { rows, ...summary } = value
  if (!Array.isArray(rows)) return null
  if (rows.some((r) => typeof r !== 'object' || r === null || Array.isArray(r))) return null
  return { summary, rows: rows as Record<string, unknown>[] }
}

/** True when the result is final: it may be cached. */
export function isCompleted(result: QueryResult): boolean {
  return result.summary.CurrentStatus === 'COMPLETED'
}

function projected(
  row: Readonly<Record<string, unknown>>,
  columns: readonly string[],
  redact: ReadonlySet<string>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const c of columns) if (Object.hasOwn(row, c)) out[c] = redact.has(c) ? REDACTED_VALUE : row[c]
  return out
}

/** The JSON answer: the upstream's summary fields and the rows with only `columns`, `redact` fields masked. */
export function resultJson(
  result: QueryResult,
  columns: readonly string[],
  redact: ReadonlySet<string> = new Set(),
): Record<string, unknown> {
  return { ...result.summary, rows: result.rows.map((r) => projected(r, columns, redact)) }
}

/** The rows as CSV (RFC 4180) with a header line of `columns`; a missing value is an empty field. */
export function resultCsv(
  result: QueryResult,
  columns: readonly string[],
  redact: ReadonlySet<string> = new Set(),
): string {
  const records = result.rows.map((r) =>
    columns.map((c) => {
      const v = projected(r, [c], redact)[c]
      if (v === undefined || v === null) return ''
      return typeof v === 'object' ? JSON.stringify(v) : String(v)
    }),
  )
  return stringify([columns as string[], ...records], { record_delimiter: '\r\n' })
}

/** True when the client asked for CSV (`Accept: text/csv`, before any JSON it also accepts). */
export function wantsCsv(accept: string | undefined): boolean {
  if (!accept) return false
  const types = accept
    .toLowerCase()
    .split(',')
    .map((part) => {
      const [type = '', ...params] = part.trim().split(';')
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
      return { type: type.trim(), q: q === undefined ? 1 : Number(q.slice(2)) || 0 }
    })
  const q = (t: string) => types.find((x) => x.type === t)?.q ?? 0
  return q('text/csv') > 0 && q('text/csv') >= Math.max(q('application/json'), q('*/*'))
}

/** Completed results by credentials and query id. */
export class QueryResultCache {
  readonly #lru = new LRUCache<string, { result: QueryResult; bytes: number }>({
    maxSize: QUERY_RESULT_CACHE_BYTES,
    sizeCalculation: (v) => v.bytes,
  })

  /** Key of a result: who asked (hashed token, username, context) and which query. */
  static key(
    auth: { username: string; tokenHash: string; context: string },
    queryId: number | string,
  ): string {
    return `${auth.tokenHash}\u0000${auth.username}\u0000${auth.context}\u0000${queryId}`
  }

  get(key: string): QueryResult | undefined {
    return this.#lru.get(key)?.result
  }

  /** Keeps a completed result of `bytes` upstream bytes; a larger one than the bound is not kept. */
  set(key: string, result: QueryResult, bytes: number): void {
    if (!isCompleted(result) || bytes > QUERY_RESULT_MAX_CACHED_BYTES) return
    this.#lru.set(key, { result, bytes: Math.max(1, bytes) })
  }

  get entries(): number {
    return this.#lru.size
  }

  get bytes(): number {
    return this.#lru.calculatedSize
  }
}
