/**
 * The search structures of one cached listing, built once per fill from the
 * parsed records and then the only thing kept of them: parsed objects cost
 * about twice the JSON bytes in V8, which would break the cache's budget
 * (docs/cache.md, "Memory"). What is kept instead, all driven by the filters of
 * the resource table (src/resources.ts):
 *
 * - the read key (customers `UserID`, mappings `ipdr_customer_id`) in a
 *   `Map` to the first position, with a chain of further positions, so a
 *   single read is O(1);
 * - the text fields that `exact` and `substring` filters read, normalized
 *   (lower-cased where the match is case-insensitive) and packed into a few
 *   large strings ("chunks"): each field is preceded by a one-character tag
 *   below U+0020 naming its column, so one `indexOf` per chunk searches every
 *   record at native speed and a match can never span two fields;
 * - the IP range of each mapping (IPv4 in typed arrays, IPv6 as `IpRange`s in
 *   a sparse map) and its start and end times in `Float64Array`s.
 *
 * Positions are indexes into the upstream array; every scan returns them in
 * ascending order.
 */

import type { FieldKind, ResourceFacts, ResourceName } from '../resources.js'
import { type IpRange, parseIpRange } from '../shared/ip-range.js'
import { isPlainAsciiString, MemberPicker } from './listing-scan.js'
import { runSteps, type Steps } from './steps.js'

/** How the records of a resource are read by key (single reads and the key's exact filter). */
export interface ListingKeyFact {
  readonly field: string
  /** `integer`: the value is compared as a canonical decimal integer (`007` is `7`). */
  readonly kind: 'string' | 'integer'
}

/**
 * The read key of each resource. Mapping records carry the customer's
 * numeric `id` as `ipdr_customer_id`, not its `UserID`: a route that reads
 * mappings by `UserID` resolves it through the customers listing first.
 */
export const LISTING_KEY: Readonly<Record<ResourceName, ListingKeyFact>> = Object.freeze({
  customers: Object.freeze({ field: 'UserID', kind: 'string' }),
  mappings: Object.freeze({ field: 'ipdr_customer_id', kind: 'integer' }),
})

export type TextNormalization = 'lower' | 'none'

export interface TextColumn {
  readonly field: string
  readonly normalize: TextNormalization
  /** The tag character's code, 1..31. */
  readonly tag: number
}

/** What the index of a resource holds, derived from its filters. */
export interface IndexPlan {
  readonly key: ListingKeyFact
  readonly text: readonly TextColumn[]
  /** The field holding an address or CIDR (`exact` on it compares ranges; `ip` tests containment). */
  readonly ipField: string | null
  /** Start and end time fields of the `at` filter. */
  readonly timeFields: readonly [string, string] | null
}

const plans = new WeakMap<ResourceFacts, IndexPlan>()

/** The index plan of a resource (computed once per facts object). */
export function indexPlan(facts: ResourceFacts): IndexPlan {
  const cached = plans.get(facts)
  if (cached) return cached
  const key = LISTING_KEY[facts.name]
  const text: TextColumn[] = []
  let ipField: string | null = null
  let timeFields: readonly [string, string] | null = null
  const addText = (field: string, normalize: TextNormalization): void => {
    if (!text.some((c) => c.field === field && c.normalize === normalize)) {
      text.push({ field, normalize, tag: text.length + 1 })
    }
  }
  for (const filter of facts.filters) {
    const [first, second] = filter.fields
    if (first === undefined) continue
    if (filter.kind === 'exact') {
      if (first === key.field) continue
      const kind = fieldKind(facts, first)
      if (kind === 'ipOrCidr') ipField = first
      else addText(first, exactNormalization(kind))
    } else if (filter.kind === 'substring') {
      for (const field of filter.fields) addText(field, 'lower')
    } else if (filter.kind === 'ip') {
      ipField = first
    } else if (second !== undefined) {
      timeFields = [first, second]
    }
  }
  if (text.length > 31) throw new RangeError(`${facts.name}: at most 31 text columns can be indexed`)
  const plan: IndexPlan = Object.freeze({ key, text: Object.freeze(text), ipField, timeFields })
  plans.set(facts, plan)
  return plan
}

export function fieldKind(facts: ResourceFacts, field: string): FieldKind | undefined {
  return facts.fields.find((f) => f.name === field)?.kind
}

/** Emails compare case-insensitively (docs/cache.md); every other exact filter is exact. */
export function exactNormalization(kind: FieldKind | undefined): TextNormalization {
  return kind === 'email' ? 'lower' : 'none'
}

/** The text column holding `field` normalized as `normalize`, if indexed. */
export function textColumn(
  plan: IndexPlan,
  field: string,
  normalize: TextNormalization,
): TextColumn | undefined {
  return plan.text.find((c) => c.field === field && c.normalize === normalize)
}

/** Canonical decimal form of an integer key, or null. */
export function canonicalInteger(value: unknown): string | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? String(value) : null
  if (typeof value === 'string' && /^\d{1,15}$/.test(value)) return String(Number(value))
  return null
}

/** An `IpRange` object and its two bigints, as measured on Node 20. */
const IP_RANGE_BYTES = 120

/** The window records are read through (see `buildIndexParts`). */
const INDEX_WINDOW_BYTES = 512 * 1024 * 1024

const CHUNK_SHIFT = 12
/** Records per text chunk. */
const CHUNK_RECORDS = 1 << CHUNK_SHIFT
const CHUNK_MASK = CHUNK_RECORDS - 1
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are the tags; values must not hold them.
const CONTROL = /[\u0000-\u001f]/g
const TAGS = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i))

/**
 * What an index is made of: typed arrays and byte buffers only, so a worker can
 * build it and hand it over by transfer (src/cache/listing-worker.ts), and the
 * garbage collector has a few large objects to track rather than millions.
 */
export interface IndexParts {
  readonly count: number
  /** Open-addressing table of key positions + 1 (0: empty); its length is a power of two. */
  readonly keyTable: Int32Array
  /** Next position with the same key (-1: none), in ascending order. */
  readonly keyNext: Int32Array
  /** The canonical keys' UTF-8 bytes, record by record; `keyStarts` has count + 1 entries. */
  readonly keyBytes: Uint8Array
  readonly keyStarts: Uint32Array
  /** Text columns, UTF-8, in chunks of 4096 records; `starts` are byte offsets of each record's first tag. */
  readonly chunks: readonly { readonly text: Uint8Array; readonly starts: Uint32Array }[]
  readonly ipVersion: Uint8Array | null
  readonly ip4Start: Uint32Array | null
  readonly ip4End: Uint32Array | null
  /** IPv6 ranges (rare): positions and ranges in step. */
  readonly ip6Positions: Uint32Array
  readonly ip6Ranges: readonly IpRange[]
  readonly timeStart: Float64Array | null
  readonly timeEnd: Float64Array | null
}

/** Every buffer of `parts`, for a transfer list. */
export function indexTransferList(parts: IndexParts): ArrayBuffer[] {
  const views: (ArrayBufferView | null)[] = [
    parts.keyTable,
    parts.keyNext,
    parts.keyBytes,
    parts.keyStarts,
    parts.ipVersion,
    parts.ip4Start,
    parts.ip4End,
    parts.ip6Positions,
    parts.timeStart,
    parts.timeEnd,
  ]
  for (const c of parts.chunks) views.push(c.text, c.starts)
  const out = new Set<ArrayBuffer>()
  for (const v of views) if (v && v.buffer instanceof ArrayBuffer) out.add(v.buffer)
  return [...out]
}

function textOf(value: unknown, normalize: TextNormalization): string {
  let s: string
  if (typeof value === 'string') s = value
  else if (typeof value === 'number' || typeof value === 'boolean') s = String(value)
  else return ''
  if (normalize === 'lower') s = s.toLowerCase()
  // Tags are control characters; a value's own control characters become spaces so they cannot fake one.
  CONTROL.lastIndex = 0
  return CONTROL.test(s) ? s.replace(CONTROL, ' ') : s
}

function timeOf(value: unknown, open: number): number {
  if (value === null || value === undefined || value === '') return open
  if (typeof value === 'number') return Number.isFinite(value) ? value : Number.NaN
  if (typeof value === 'string' && /^-?\d{1,16}$/.test(value)) return Number(value)
  return Number.NaN
}

function keyOf(value: unknown, kind: ListingKeyFact['kind']): string | null {
  if (kind === 'integer') return canonicalInteger(value)
  if (typeof value === 'string') return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  return null
}

/** FNV-1a over bytes. */
function hashBytes(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5
  for (let i = start; i < end; i++) {
    h ^= b[i] as number
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

function sameBytes(a: Uint8Array, as: number, ae: number, b: Uint8Array, bs: number, be: number): boolean {
  if (ae - as !== be - bs) return false
  for (let i = 0; i < ae - as; i++) if (a[as + i] !== b[bs + i]) return false
  return true
}

/**
 * Builds the parts of a listing's index from its bytes and record offsets,
 * parsing one record at a time (never the whole body). Runs on the event loop
 * for small listings and in the listing worker for large ones.
 */
export function buildIndexParts(
  raw: Uint8Array,
  offsets: Uint32Array,
  facts: ResourceFacts,
  windowBytes = INDEX_WINDOW_BYTES,
): IndexParts {
  const plan = indexPlan(facts)
  const n = offsets.length / 2
  const all = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)
  // Records are read through a window of at most 512 MiB that moves along the body, so every index
  // stays a small integer (V8's Smi, below 2^30): past 1 GiB (5 M customers) byte indexes become
  // heap numbers and the loop ran tens of times slower. `ranges` are relative to the window.
  let base = 0
  let bytes = all.subarray(0, Math.min(all.length, windowBytes))
  const encoder = new TextEncoder()
  // The members the index reads, picked from each record's bytes: no JSON.parse of the record, and
  // for the usual value (a string of plain ASCII) no JavaScript string either, just its bytes.
  const names: string[] = []
  const slotOf = (field: string): number => {
    const at = names.indexOf(field)
    return at >= 0 ? at : names.push(field) - 1
  }
  const keyAt = slotOf(plan.key.field)
  const textAt = plan.text.map((c) => slotOf(c.field))
  const ipAt = plan.ipField === null ? -1 : slotOf(plan.ipField)
  const timeAt = plan.timeFields === null ? null : plan.timeFields.map(slotOf)
  const picker = new MemberPicker(names)
  const ranges = new Int32Array(2 * names.length)
  /** The value of field `k` of the record just picked, as `JSON.parse` gives it (undefined when absent). */
  const parsedValue = (k: number): unknown => {
    const vs = ranges[2 * k] as number
    if (vs < 0) return undefined
    return JSON.parse(bytes.toString('utf8', vs, ranges[2 * k + 1]))
  }
  const plain = (k: number): boolean => {
    const vs = ranges[2 * k] as number
    return vs >= 0 && isPlainAsciiString(bytes, vs, ranges[2 * k + 1] as number)
  }

  const keyStarts = new Uint32Array(n + 1)
  // One growing buffer: a typed array per key would be millions of heap objects in a big listing.
  let keyBuffer = new Uint8Array(Math.max(1024, n * 8))
  let keyLength = 0
  const hasKey = new Uint8Array(n)
  const chunks: { text: Uint8Array; starts: Uint32Array }[] = []
  let text = new Uint8Array(1 << 16)
  let textLength = 0
  let starts = new Uint32Array(Math.min(n, CHUNK_RECORDS))
  const ipVersion = plan.ipField === null ? null : new Uint8Array(n)
  const ip4Start = plan.ipField === null ? null : new Uint32Array(n)
  const ip4End = plan.ipField === null ? null : new Uint32Array(n)
  const ip6Positions: number[] = []
  const ip6Ranges: IpRange[] = []
  const timeStart = plan.timeFields === null ? null : new Float64Array(n)
  const timeEnd = plan.timeFields === null ? null : new Float64Array(n)

  const roomForText = (more: number): void => {
    if (textLength + more <= text.length) return
    const grown = new Uint8Array(Math.max(text.length * 2, textLength + more))
    grown.set(text.subarray(0, textLength))
    text = grown
  }
  const roomForKey = (more: number): void => {
    if (keyLength + more <= keyBuffer.length) return
    const grown = new Uint8Array(Math.max(keyBuffer.length * 2, keyLength + more))
    grown.set(keyBuffer.subarray(0, keyLength))
    keyBuffer = grown
  }

  for (let pos = 0; pos < n; pos++) {
    const recordStart = offsets[2 * pos] as number
    const recordEnd = offsets[2 * pos + 1] as number
    if (recordEnd - base > bytes.length) {
      base = recordStart
      bytes = all.subarray(base, Math.min(all.length, base + Math.max(windowBytes, recordEnd - base)))
    }
    picker.pick(bytes, recordStart - base, ranges)
    keyStarts[pos] = keyLength
    if (plan.key.kind === 'string' && plain(keyAt)) {
      const vs = (ranges[2 * keyAt] as number) + 1
      const ve = (ranges[2 * keyAt + 1] as number) - 1
      roomForKey(ve - vs)
      // A loop, not set(subarray()): values are short, and a view per value is garbage per record.
      for (let j = vs; j < ve; j++) keyBuffer[keyLength++] = bytes[j] as number
      hasKey[pos] = 1
    } else {
      const key = keyOf(parsedValue(keyAt), plan.key.kind)
      if (key !== null) {
        // At most 3 bytes per UTF-16 unit.
        roomForKey(key.length * 3)
        keyLength += encoder.encodeInto(key, keyBuffer.subarray(keyLength)).written
        hasKey[pos] = 1
      }
    }
    if (plan.text.length > 0) {
      starts[pos & CHUNK_MASK] = textLength
      for (let c = 0; c < plan.text.length; c++) {
        const column = plan.text[c] as TextColumn
        const k = textAt[c] as number
        roomForText(1)
        text[textLength++] = column.tag
        if (plain(k)) {
          // Plain ASCII: the bytes are the characters, and an unescaped JSON string holds no control one.
          const vs = (ranges[2 * k] as number) + 1
          const ve = (ranges[2 * k + 1] as number) - 1
          roomForText(ve - vs)
          if (column.normalize === 'lower') {
            for (let j = vs; j < ve; j++) {
              const ch = bytes[j] as number
              text[textLength++] = ch >= 0x41 && ch <= 0x5a ? ch | 0x20 : ch
            }
          } else {
            for (let j = vs; j < ve; j++) text[textLength++] = bytes[j] as number
          }
        } else {
          const value = textOf(parsedValue(k), column.normalize)
          roomForText(value.length * 3)
          textLength += encoder.encodeInto(value, text.subarray(textLength)).written
        }
      }
      if ((pos & CHUNK_MASK) === CHUNK_MASK || pos === n - 1) {
        chunks.push({ text: text.slice(0, textLength), starts: starts.slice(0, (pos & CHUNK_MASK) + 1) })
        textLength = 0
        if (pos + 1 < n) starts = new Uint32Array(Math.min(n - pos - 1, CHUNK_RECORDS))
      }
    }
    if (ipAt >= 0 && ipVersion && ip4Start && ip4End) {
      const value = parsedValue(ipAt)
      const fast = typeof value === 'string' ? fastIpv4(value) : null
      const range = fast === null && typeof value === 'string' ? parseIpRange(value) : null
      if (fast !== null) {
        ipVersion[pos] = 4
        ip4Start[pos] = fast[0]
        ip4End[pos] = fast[1]
      } else if (range?.version === 4) {
        ipVersion[pos] = 4
        ip4Start[pos] = Number(range.start)
        ip4End[pos] = Number(range.end)
      } else if (range?.version === 6) {
        ipVersion[pos] = 6
        ip6Positions.push(pos)
        ip6Ranges.push(range)
      }
    }
    if (timeAt !== null && timeStart && timeEnd) {
      timeStart[pos] = timeOf(parsedValue(timeAt[0] as number), Number.NaN)
      timeEnd[pos] = timeOf(parsedValue(timeAt[1] as number), Number.POSITIVE_INFINITY)
    }
  }
  keyStarts[n] = keyLength
  const keyBytes = keyBuffer.slice(0, keyLength)

  // The key table: the first position of each distinct key; later ones chained in order.
  let capacity = 8
  while (capacity < n * 2) capacity *= 2
  const keyTable = new Int32Array(capacity)
  const keyNext = new Int32Array(n).fill(-1)
  const keyTail = new Int32Array(n).fill(-1)
  const mask = capacity - 1
  for (let pos = 0; pos < n; pos++) {
    if (hasKey[pos] === 0) continue
    const ks = keyStarts[pos] as number
    const ke = keyStarts[pos + 1] as number
    let slot = hashBytes(keyBytes, ks, ke) & mask
    for (;;) {
      const held = keyTable[slot] as number
      if (held === 0) {
        keyTable[slot] = pos + 1
        keyTail[pos] = pos
        break
      }
      const first = held - 1
      if (sameBytes(keyBytes, keyStarts[first] as number, keyStarts[first + 1] as number, keyBytes, ks, ke)) {
        keyNext[keyTail[first] as number] = pos
        keyTail[first] = pos
        break
      }
      slot = (slot + 1) & mask
    }
  }
  return {
    count: n,
    keyTable,
    keyNext,
    keyBytes,
    keyStarts,
    chunks,
    ipVersion,
    ip4Start,
    ip4End,
    ip6Positions: Uint32Array.from(ip6Positions),
    ip6Ranges,
    timeStart,
    timeEnd,
  }
}

function viewBytes(v: ArrayBufferView | null): number {
  return v?.byteLength ?? 0
}

export class ListingIndex {
  readonly count: number
  readonly plan: IndexPlan
  /** Estimated bytes of everything this index holds (typed arrays and buffers, off the V8 heap). */
  readonly bytes: number
  readonly #parts: IndexParts
  readonly #chunks: readonly { readonly text: Buffer; readonly starts: Uint32Array }[]
  readonly #keyBytes: Buffer
  readonly #ip6: Map<number, IpRange>

  /** From the parts `buildIndexParts` made, here or in a worker. */
  constructor(parts: IndexParts, facts: ResourceFacts) {
    this.plan = indexPlan(facts)
    this.count = parts.count
    this.#parts = parts
    this.#chunks = parts.chunks.map((c) => ({
      text: Buffer.from(c.text.buffer, c.text.byteOffset, c.text.byteLength),
      starts: c.starts,
    }))
    this.#keyBytes = Buffer.from(parts.keyBytes.buffer, parts.keyBytes.byteOffset, parts.keyBytes.byteLength)
    this.#ip6 = new Map()
    for (let i = 0; i < parts.ip6Positions.length; i++) {
      this.#ip6.set(parts.ip6Positions[i] as number, parts.ip6Ranges[i] as IpRange)
    }
    let bytes =
      viewBytes(parts.keyTable) +
      viewBytes(parts.keyNext) +
      viewBytes(parts.keyBytes) +
      viewBytes(parts.keyStarts) +
      viewBytes(parts.ipVersion) +
      viewBytes(parts.ip4Start) +
      viewBytes(parts.ip4End) +
      viewBytes(parts.ip6Positions) +
      parts.ip6Ranges.length * IP_RANGE_BYTES +
      viewBytes(parts.timeStart) +
      viewBytes(parts.timeEnd)
    for (const c of parts.chunks) bytes += c.text.byteLength + c.starts.byteLength + 64
    this.bytes = bytes
  }

  /** The canonical key of the record at `pos` (its UserID, or a mapping's ipdr_customer_id). */
  keyAt(pos: number): string {
    const { keyStarts } = this.#parts
    return this.#keyBytes.toString('utf8', keyStarts[pos] as number, keyStarts[pos + 1] as number)
  }

  /** Positions of the records whose key field is `key` (already canonical: see `canonicalInteger`). */
  positionsForKey(key: string): number[] {
    const { keyTable, keyNext, keyStarts } = this.#parts
    const want = Buffer.from(key, 'utf8')
    const mask = keyTable.length - 1
    let slot = hashBytes(want, 0, want.length) & mask
    for (let probes = 0; probes < keyTable.length; probes++) {
      const held = keyTable[slot] as number
      if (held === 0) return []
      const first = held - 1
      if (
        sameBytes(
          this.#keyBytes,
          keyStarts[first] as number,
          keyStarts[first + 1] as number,
          want,
          0,
          want.length,
        )
      ) {
        const out: number[] = []
        // The chain only moves forward, so it ends; the bound is belt and braces.
        for (let pos = first, guard = 0; pos !== -1 && guard < this.count; guard++) {
          out.push(pos)
          pos = keyNext[pos] as number
        }
        return out
      }
      slot = (slot + 1) & mask
    }
    return []
  }

  /** Positions whose column `tag` equals `value` (normalized like the column). */
  scanExact(tag: number, value: string): number[] {
    return runSteps(this.scanExactSteps(tag, value))
  }

  /** {@link scanExact}, yielding after each text chunk. */
  scanExactSteps(tag: number, value: string): Steps<number[]> {
    const needle = Buffer.from((TAGS[tag] as string) + value, 'utf8')
    // Whole field: the match ends where the text or the field ends (tags are control characters).
    return this.#scan(needle, (text, p) => {
      const after = p + needle.length
      return after === text.length || (text[after] as number) < 0x20
    })
  }

  /** Positions where one of the columns in `tagMask` (bit `1 << tag`) contains `needle`. */
  scanSubstring(tagMask: number, needle: string): number[] {
    return runSteps(this.scanSubstringSteps(tagMask, needle))
  }

  /** {@link scanSubstring}, yielding after each text chunk. */
  *scanSubstringSteps(tagMask: number, needle: string): Steps<number[]> {
    if (needle.length === 0) return []
    // The needle has no control characters: the match lies inside one field, after its tag. UTF-8
    // is self-synchronizing, so a byte match is a character match.
    return yield* this.#scan(Buffer.from(needle, 'utf8'), (text, p) => {
      let t = p - 1
      while (t > 0 && (text[t] as number) >= 0x20) t--
      return (tagMask & (1 << (text[t] as number))) !== 0
    })
  }

  /**
   * Every record position with an occurrence of `needle` that `accepts`; one
   * native `indexOf` per chunk and candidate, and at most one position per record.
   */
  *#scan(needle: Buffer, accepts: (text: Buffer, at: number) => boolean): Steps<number[]> {
    const out: number[] = []
    for (let c = 0; c < this.#chunks.length; c++) {
      const { text, starts } = this.#chunks[c] as { readonly text: Buffer; readonly starts: Uint32Array }
      const base = c << CHUNK_SHIFT
      let from = 0
      for (;;) {
        const p = text.indexOf(needle, from)
        if (p === -1) break
        if (accepts(text, p)) {
          const slot = findSlot(starts, p)
          out.push(base + slot)
          from = slot + 1 < starts.length ? (starts[slot + 1] as number) : text.length
        } else {
          from = p + 1
        }
      }
      yield
    }
    return out
  }

  /** The normalized text of column `tag` of the record at `pos`. */
  textAt(pos: number, tag: number): string {
    const chunk = this.#chunks[pos >>> CHUNK_SHIFT]
    if (chunk === undefined || pos < 0 || pos >= this.count) return ''
    const { text, starts } = chunk
    const recordStart = starts[pos & CHUNK_MASK] as number
    const recordEnd =
      (pos & CHUNK_MASK) + 1 < starts.length ? (starts[(pos & CHUNK_MASK) + 1] as number) : text.length
    const at = text.indexOf(tag, recordStart)
    if (at === -1 || at >= recordEnd) return ''
    let end = at + 1
    while (end < text.length && (text[end] as number) >= 0x20) end++
    return text.toString('utf8', at + 1, end)
  }

  exactAt(pos: number, tag: number, value: string): boolean {
    return this.textAt(pos, tag) === value
  }

  substringAt(pos: number, tagMask: number, needle: string): boolean {
    for (const column of this.plan.text) {
      if (tagMask & (1 << column.tag) && this.textAt(pos, column.tag).includes(needle)) return true
    }
    return false
  }

  /** Positions whose IP field is exactly `range` (same network and prefix). */
  scanIpEquals(range: IpRange): number[] {
    return this.#scanIp(range, (pos) => this.ipEqualsAt(pos, range))
  }

  /** Positions whose address or subnet contains every address of `range`. */
  scanIpContains(range: IpRange): number[] {
    return this.#scanIp(range, (pos) => this.ipContainsAt(pos, range))
  }

  ipEqualsAt(pos: number, range: IpRange): boolean {
    const { ipVersion, ip4Start, ip4End } = this.#parts
    if (ipVersion?.[pos] !== range.version) return false
    if (range.version === 4)
      return ip4Start?.[pos] === Number(range.start) && ip4End?.[pos] === Number(range.end)
    const r = this.#ip6.get(pos)
    return r !== undefined && r.start === range.start && r.end === range.end
  }

  ipContainsAt(pos: number, range: IpRange): boolean {
    const { ipVersion, ip4Start, ip4End } = this.#parts
    if (ipVersion?.[pos] !== range.version) return false
    if (range.version === 4) {
      const start = ip4Start?.[pos] as number
      const end = ip4End?.[pos] as number
      return start <= Number(range.start) && Number(range.end) <= end
    }
    const r = this.#ip6.get(pos)
    return r !== undefined && r.start <= range.start && range.end <= r.end
  }

  /** Valid at `at`: start <= at, and no end or end > at. A missing or malformed start never matches. */
  validAt(pos: number, at: number): boolean {
    const start = this.#parts.timeStart?.[pos]
    const end = this.#parts.timeEnd?.[pos]
    return start !== undefined && end !== undefined && start <= at && end > at
  }

  #scanIp(range: IpRange, test: (pos: number) => boolean): number[] {
    const out: number[] = []
    if (range.version === 6) {
      // Map order is insertion order: ascending positions.
      for (const pos of this.#ip6.keys()) if (test(pos)) out.push(pos)
      return out
    }
    const versions = this.#parts.ipVersion
    if (versions === null) return out
    for (let pos = 0; pos < this.count; pos++) if (versions[pos] === 4 && test(pos)) out.push(pos)
    return out
  }
}

const PLAIN_IPV4 =
  /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})(?:\/([0-9]|[12][0-9]|3[0-2]))?$/

/**
 * `[start, end]` of a plain IPv4 address or CIDR, or null for anything else
 * (which `parseIpRange` then decides). Ten times faster than going through
 * ipaddr.js and bigints, which matters at 100,000 mappings per fill; octets
 * with leading zeros are left to `parseIpRange` so both always agree.
 */
export function fastIpv4(text: string): [number, number] | null {
  const m = PLAIN_IPV4.exec(text)
  if (m === null) return null
  let value = 0
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i])
    if (octet > 255) return null
    value = value * 256 + octet
  }
  const size = 2 ** (32 - (m[5] === undefined ? 32 : Number(m[5])))
  const start = value - (value % size)
  return [start, start + size - 1]
}

/** The largest slot whose start is <= p. */
function findSlot(starts: Uint32Array, p: number): number {
  let lo = 0
  let hi = starts.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1
    if ((starts[mid] as number) <= p) lo = mid
    else hi = mid - 1
  }
  return lo
}
