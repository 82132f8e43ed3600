/**
 * Filters and paging of cached listings (shared/SPEC.md 3.2): a strict parser
 * for the query string (every mistake is a 400 with a message naming the
 * parameter) and an evaluator over a `ListingEntry`'s index. The accepted
 * parameters are the resource table's filters plus `limit` and `offset`.
 */

import { PAGING_PARAMS, type ResourceFacts, type ResourceName } from '../resources.js'
import { type IpRange, parseIpRange } from '../shared/ip-range.js'
import type { ListingEntry } from './listing-entry.js'
import {
  canonicalInteger,
  exactNormalization,
  fieldKind,
  indexPlan,
  type ListingIndex,
  textColumn,
} from './listing-index.js'
import { redactRecord } from './redaction.js'
import { runSteps, runStepsYielding, type Steps } from './steps.js'

/** Largest page: big enough for a CRM sync page, small enough that a page never costs more than the listing. */
export const MAX_LIMIT = 10_000
/** Longest accepted value of any parameter (a UserID is at most 64, an email a few hundred). */
export const MAX_VALUE_LENGTH = 1024

export type QueryFilter =
  /** The read key (customers `UserID`, mappings `ipdr_customer_id`): an O(1) index lookup. */
  | { readonly kind: 'key'; readonly name: string; readonly value: string }
  /** Equality on an indexed text column; `value` is already normalized like the column. */
  | { readonly kind: 'exact'; readonly name: string; readonly tag: number; readonly value: string }
  /** Case-insensitive substring of any column in `tagMask`; `value` is lower-cased. */
  | { readonly kind: 'substring'; readonly name: string; readonly tagMask: number; readonly value: string }
  /** The record's address or subnet is exactly `range`. */
  | { readonly kind: 'ipEquals'; readonly name: string; readonly range: IpRange }
  /** The record's address or subnet contains the address `range`. */
  | { readonly kind: 'ipContains'; readonly name: string; readonly range: IpRange }
  /** Valid at `at`: `starttime <= at` and `endtime` null or `> at`. */
  | { readonly kind: 'at'; readonly name: string; readonly at: number }

export interface ListingQuery {
  readonly resource: ResourceName
  /** All must match (AND). */
  readonly filters: readonly QueryFilter[]
  /** Page size; null: everything from `offset`. */
  readonly limit: number | null
  readonly offset: number
  /** No parameter at all: send the upstream bytes as they are. */
  readonly plain: boolean
  /** The parameters in a canonical order, for `deriveEtag` (equal queries, equal text). */
  readonly canonical: string
}

export type ParsedListingQuery = { ok: true; query: ListingQuery } | { ok: false; message: string }

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects.
const CONTROL = /[\u0000-\u001f\u007f]/
const DIGITS = /^\d{1,15}$/

/**
 * Parses a listing's query parameters (as Fastify's query parser gives them:
 * a string, or an array when repeated). Rejected, with a message naming the
 * parameter: unknown parameters; repeated ones; non-strings; empty values;
 * values over 1024 characters; control characters in text filters; `limit`
 * outside 1..10000; `offset` not a non-negative integer; `ip` not a single
 * IPv4/IPv6 address; `ipsubnet` not an address or CIDR; `at` not a
 * non-negative integer; `ipdr_customer_id` not a non-negative integer.
 * `at` is accepted without `ip` (every mapping valid then).
 */
export function parseListingQuery(facts: ResourceFacts, query: Record<string, unknown>): ParsedListingQuery {
  const plan = indexPlan(facts)
  const names = Object.keys(query ?? {})
  if (names.length === 0) {
    return {
      ok: true,
      query: { resource: facts.name, filters: [], limit: null, offset: 0, plain: true, canonical: '[]' },
    }
  }
  const problems: string[] = []
  const allowed = [...facts.filters.map((f) => f.name), ...PAGING_PARAMS]
  const values = new Map<string, string>()
  for (const name of names) {
    const shown = JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name)
    if (!allowed.includes(name)) {
      problems.push(`unknown query parameter ${shown} (allowed: ${allowed.join(', ')})`)
      continue
    }
    const value = query[name]
    if (Array.isArray(value)) problems.push(`query parameter ${shown} is repeated`)
    else if (typeof value !== 'string') problems.push(`query parameter ${shown} must be a string`)
    else if (value.length === 0) problems.push(`query parameter ${shown} must not be empty`)
    else if (value.length > MAX_VALUE_LENGTH) {
      problems.push(`query parameter ${shown} is longer than ${MAX_VALUE_LENGTH} characters`)
    } else values.set(name, value)
  }

  let limit: number | null = null
  const limitText = values.get('limit')
  if (limitText !== undefined) {
    limit = DIGITS.test(limitText) ? Number(limitText) : 0
    if (limit < 1 || limit > MAX_LIMIT) problems.push(`limit must be an integer from 1 to ${MAX_LIMIT}`)
  }
  let offset = 0
  const offsetText = values.get('offset')
  if (offsetText !== undefined) {
    if (DIGITS.test(offsetText)) offset = Number(offsetText)
    else problems.push('offset must be a non-negative integer')
  }

  const filters: QueryFilter[] = []
  let substringMask = 0
  for (const column of plan.text) if (column.normalize === 'lower') substringMask |= 1 << column.tag
  for (const filter of facts.filters) {
    const value = values.get(filter.name)
    if (value === undefined) continue
    const name = filter.name
    const field = filter.fields[0] ?? name
    if (filter.kind === 'exact' && field === plan.key.field) {
      const key = plan.key.kind === 'integer' ? canonicalInteger(value) : value
      if (key === null) problems.push(`${name} must be a non-negative integer`)
      else filters.push({ kind: 'key', name, value: key })
    } else if (filter.kind === 'exact' && field === plan.ipField) {
      const range = parseIpRange(value)
      if (range === null) problems.push(`${name} must be an IPv4 or IPv6 address or CIDR subnet`)
      else filters.push({ kind: 'ipEquals', name, range })
    } else if (filter.kind === 'exact') {
      const normalize = exactNormalization(fieldKind(facts, field))
      const column = textColumn(plan, field, normalize)
      if (CONTROL.test(value)) problems.push(`${name} must not contain control characters`)
      else if (column !== undefined) {
        const normalized = normalize === 'lower' ? value.toLowerCase() : value
        filters.push({ kind: 'exact', name, tag: column.tag, value: normalized })
      }
    } else if (filter.kind === 'substring') {
      let mask = 0
      for (const f of filter.fields) mask |= 1 << (textColumn(plan, f, 'lower')?.tag ?? 0)
      if (CONTROL.test(value)) problems.push(`${name} must not contain control characters`)
      else
        filters.push({ kind: 'substring', name, tagMask: mask & substringMask, value: value.toLowerCase() })
    } else if (filter.kind === 'ip') {
      const range = parseIpRange(value)
      if (range === null || range.start !== range.end)
        problems.push(`${name} must be an IPv4 or IPv6 address`)
      else filters.push({ kind: 'ipContains', name, range })
    } else if (filter.kind === 'at') {
      if (DIGITS.test(value)) filters.push({ kind: 'at', name, at: Number(value) })
      else problems.push(`${name} must be a non-negative integer (Unix seconds)`)
    }
  }
  if (problems.length > 0) return { ok: false, message: `Invalid query: ${problems.join('; ')}` }
  const canonical = JSON.stringify([...values.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  return { ok: true, query: { resource: facts.name, filters, limit, offset, plain: false, canonical } }
}

export interface ListingQueryResult {
  /** Matching records before paging (`X-Total-Count`). */
  readonly total: number
  /** Positions (indexes into the upstream array) of the page, in upstream order. */
  readonly positions: readonly number[]
  /** The page's records, parsed from the upstream bytes on first access (fresh objects). */
  readonly records: Record<string, unknown>[]
  /**
   * The page as a JSON array. Without `redact`: the upstream bytes of each
   * record, joined (nothing re-serialized). With `redact`: the records with
   * those fields replaced by `"***"`.
   */
  body(redact?: readonly string[]): Buffer
}

type ScanFilter = Exclude<QueryFilter, { kind: 'at' }>
/** The evaluation order: the most selective and cheapest scan produces candidates, the rest test them. */
const SCAN_ORDER: readonly ScanFilter['kind'][] = ['key', 'exact', 'ipEquals', 'ipContains', 'substring']

/**
 * Applies a parsed query to an entry of the same resource. The filters are
 * ANDed; `total` counts matches before `offset` and `limit`.
 */
export function applyListingQuery(entry: ListingEntry, query: ListingQuery): ListingQueryResult {
  return runSteps(listingQuerySteps(entry, query))
}

/**
 * {@link applyListingQuery} across event-loop turns: the scans and tests give
 * the loop a turn every few ms, so a filter over a million records does not
 * stall other requests (SPEC 9). Same result.
 */
export function applyListingQueryYielding(
  entry: ListingEntry,
  query: ListingQuery,
  sliceMs?: number,
): Promise<ListingQueryResult> {
  return runStepsYielding(listingQuerySteps(entry, query), sliceMs)
}

/** Candidates tested between two chances to yield. */
const TESTS_PER_STEP = 8192

function* listingQuerySteps(entry: ListingEntry, query: ListingQuery): Steps<ListingQueryResult> {
  if (entry.resource !== query.resource) {
    throw new TypeError(`a ${query.resource} query cannot be applied to a ${entry.resource} listing`)
  }
  const index = entry.index
  let scanned: ScanFilter | undefined
  for (const kind of SCAN_ORDER) {
    scanned = query.filters.find((f): f is ScanFilter => f.kind === kind)
    if (scanned !== undefined) break
  }
  let matched = scanned === undefined ? null : yield* scan(index, scanned)
  const tests = query.filters.filter((f) => f !== scanned)
  if (tests.length > 0) {
    const candidates = matched ?? allPositions(entry.count)
    const kept: number[] = []
    for (let i = 0; i < candidates.length; i++) {
      const pos = candidates[i] as number
      if (tests.every((f) => test(index, pos, f))) kept.push(pos)
      if ((i + 1) % TESTS_PER_STEP === 0) yield
    }
    matched = kept
  }
  const total = matched === null ? entry.count : matched.length
  const end = query.limit === null ? total : Math.min(total, query.offset + query.limit)
  const positions: number[] = []
  if (matched === null) for (let pos = query.offset; pos < end; pos++) positions.push(pos)
  else if (query.offset < end) positions.push(...matched.slice(query.offset, end))
  return new QueryResult(entry, total, positions)
}

function* scan(index: ListingIndex, filter: ScanFilter): Steps<number[]> {
  switch (filter.kind) {
    case 'key':
      return index.positionsForKey(filter.value)
    case 'exact':
      return yield* index.scanExactSteps(filter.tag, filter.value)
    case 'ipEquals':
      return index.scanIpEquals(filter.range)
    case 'ipContains':
      return index.scanIpContains(filter.range)
    case 'substring':
      return yield* index.scanSubstringSteps(filter.tagMask, filter.value)
  }
}

function test(index: ListingIndex, pos: number, filter: QueryFilter): boolean {
  switch (filter.kind) {
    case 'key':
      return index.positionsForKey(filter.value).includes(pos)
    case 'exact':
      return index.exactAt(pos, filter.tag, filter.value)
    case 'substring':
      return index.substringAt(pos, filter.tagMask, filter.value)
    case 'ipEquals':
      return index.ipEqualsAt(pos, filter.range)
    case 'ipContains':
      return index.ipContainsAt(pos, filter.range)
    case 'at':
      return index.validAt(pos, filter.at)
  }
}

function allPositions(count: number): number[] {
  const out = new Array<number>(count)
  for (let i = 0; i < count; i++) out[i] = i
  return out
}

class QueryResult implements ListingQueryResult {
  readonly total: number
  readonly positions: readonly number[]
  readonly #entry: ListingEntry
  #records: Record<string, unknown>[] | undefined

  constructor(entry: ListingEntry, total: number, positions: readonly number[]) {
    this.#entry = entry
    this.total = total
    this.positions = positions
  }

  get records(): Record<string, unknown>[] {
    this.#records ??= this.positions.map((pos) => this.#entry.record(pos))
    return this.#records
  }

  body(redact: readonly string[] = []): Buffer {
    if (redact.length > 0) {
      return Buffer.from(JSON.stringify(this.records.map((r) => redactRecord(r, redact))))
    }
    return this.#entry.recordsBody(this.positions)
  }
}
