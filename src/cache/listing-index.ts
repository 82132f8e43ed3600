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

const CHUNK_SHIFT = 12
/** Records per text chunk: small enough that one non-Latin-1 name only makes its own chunk two-byte. */
const CHUNK_RECORDS = 1 << CHUNK_SHIFT
const CHUNK_MASK = CHUNK_RECORDS - 1
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are the tags; values must not hold them.
const CONTROL = /[\u0000-\u001f]/g
const NON_LATIN1 = /[\u0100-\uffff]/
const TAGS = Array.from({ length: 32 }, (_, i) => String.fromCharCode(i))

interface TextChunk {
  readonly text: string
  /** Offset in `text` of each record's first tag. */
  readonly starts: Uint32Array
  readonly base: number
}

/** Heap bytes of a V8 sequential string (16-byte header, 8-byte aligned). */
function stringBytes(length: number, twoByte = false): number {
  return (16 + length * (twoByte ? 2 : 1) + 7) & ~7
}

/** V8's OrderedHashMap: 3 words per entry slot plus one bucket word per two slots, capacity a power of 2. */
function mapBytes(size: number): number {
  if (size === 0) return 0
  return 28 * 2 ** Math.ceil(Math.log2(size))
}

/** An `IpRange` object and its two bigints, as measured on Node 20. */
const IP_RANGE_BYTES = 120

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

export class ListingIndex {
  readonly count: number
  readonly plan: IndexPlan
  /** Estimated heap bytes of everything this index holds. */
  readonly bytes: number
  readonly #keyFirst: Map<string, number>
  readonly #keyNext: Int32Array
  readonly #chunks: readonly TextChunk[]
  readonly #ipVersion: Uint8Array | null
  readonly #ip4Start: Uint32Array | null
  readonly #ip4End: Uint32Array | null
  readonly #ip6: Map<number, IpRange>
  readonly #timeStart: Float64Array | null
  readonly #timeEnd: Float64Array | null

  /** `records` must be plain objects (the entry has checked); nothing of them is retained. */
  constructor(records: readonly Record<string, unknown>[], facts: ResourceFacts) {
    const plan = indexPlan(facts)
    const n = records.length
    this.count = n
    this.plan = plan
    const keyFirst = new Map<string, number>()
    const keyNext = new Int32Array(n).fill(-1)
    let keyTails: Map<string, number> | undefined
    let keyBytes = 0
    const chunks: TextChunk[] = []
    let chunkBytes = 0
    let parts: string[] = []
    let starts = new Uint32Array(0)
    let length = 0
    const ipVersion = plan.ipField === null ? null : new Uint8Array(n)
    const ip4Start = plan.ipField === null ? null : new Uint32Array(n)
    const ip4End = plan.ipField === null ? null : new Uint32Array(n)
    const ip6 = new Map<number, IpRange>()
    const timeStart = plan.timeFields === null ? null : new Float64Array(n)
    const timeEnd = plan.timeFields === null ? null : new Float64Array(n)

    const flush = (): void => {
      const text = parts.join('')
      const base = chunks.length << CHUNK_SHIFT
      chunks.push({ text, starts, base })
      chunkBytes += stringBytes(text.length, NON_LATIN1.test(text)) + starts.byteLength + 64
      parts = []
      length = 0
    }

    for (let pos = 0; pos < n; pos++) {
      const record = records[pos] as Record<string, unknown>
      const key = keyOf(record[plan.key.field], plan.key.kind)
      if (key !== null) {
        const first = keyFirst.get(key)
        if (first === undefined) {
          keyFirst.set(key, pos)
          keyBytes += stringBytes(key.length, NON_LATIN1.test(key))
        } else {
          keyTails ??= new Map()
          keyNext[keyTails.get(key) ?? first] = pos
          keyTails.set(key, pos)
        }
      }
      if (plan.text.length > 0) {
        const slot = pos & CHUNK_MASK
        if (slot === 0) starts = new Uint32Array(Math.min(CHUNK_RECORDS, n - pos))
        starts[slot] = length
        for (const column of plan.text) {
          const value = textOf(record[column.field], column.normalize)
          parts.push(TAGS[column.tag] as string, value)
          length += 1 + value.length
        }
        if (slot === CHUNK_MASK || pos === n - 1) flush()
      }
      if (plan.ipField !== null && ipVersion && ip4Start && ip4End) {
        const value = record[plan.ipField]
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
          ip6.set(pos, range)
        }
      }
      if (plan.timeFields !== null && timeStart && timeEnd) {
        timeStart[pos] = timeOf(record[plan.timeFields[0]], Number.NaN)
        timeEnd[pos] = timeOf(record[plan.timeFields[1]], Number.POSITIVE_INFINITY)
      }
    }

    this.#keyFirst = keyFirst
    this.#keyNext = keyNext
    this.#chunks = chunks
    this.#ipVersion = ipVersion
    this.#ip4Start = ip4Start
    this.#ip4End = ip4End
    this.#ip6 = ip6
    this.#timeStart = timeStart
    this.#timeEnd = timeEnd
    this.bytes =
      mapBytes(keyFirst.size) +
      keyBytes +
      keyNext.byteLength +
      chunkBytes +
      (ipVersion?.byteLength ?? 0) +
      (ip4Start?.byteLength ?? 0) +
      (ip4End?.byteLength ?? 0) +
      mapBytes(ip6.size) +
      ip6.size * IP_RANGE_BYTES +
      (timeStart?.byteLength ?? 0) +
      (timeEnd?.byteLength ?? 0)
  }

  /** Positions of the records whose key field is `key` (already canonical: see `canonicalInteger`). */
  positionsForKey(key: string): number[] {
    const out: number[] = []
    let pos = this.#keyFirst.get(key)
    // The chain only moves forward, so it ends; the bound is belt and braces.
    for (let guard = 0; pos !== undefined && pos !== -1 && guard < this.count; guard++) {
      out.push(pos)
      pos = this.#keyNext[pos]
    }
    return out
  }

  /** Positions whose column `tag` equals `value` (normalized like the column). */
  scanExact(tag: number, value: string): number[] {
    const needle = (TAGS[tag] as string) + value
    // Whole field: the match ends where the text or the field ends (tags are control characters).
    return this.#scan(needle, (text, p) => {
      const after = p + needle.length
      return after === text.length || text.charCodeAt(after) < 0x20
    })
  }

  /** Positions where one of the columns in `tagMask` (bit `1 << tag`) contains `needle`. */
  scanSubstring(tagMask: number, needle: string): number[] {
    if (needle.length === 0) return []
    // The needle has no control characters: the match lies inside one field, after its tag.
    return this.#scan(needle, (text, p) => {
      let t = p - 1
      while (t > 0 && text.charCodeAt(t) >= 0x20) t--
      return (tagMask & (1 << text.charCodeAt(t))) !== 0
    })
  }

  /**
   * Every record position with an occurrence of `needle` that `accepts`; one
   * `indexOf` per chunk and candidate, and at most one position per record.
   */
  #scan(needle: string, accepts: (text: string, at: number) => boolean): number[] {
    const out: number[] = []
    for (const chunk of this.#chunks) {
      const { text, starts, base } = chunk
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
    }
    return out
  }

  /** The normalized text of column `tag` of the record at `pos`. */
  textAt(pos: number, tag: number): string {
    const chunk = this.#chunks[pos >>> CHUNK_SHIFT]
    if (chunk === undefined || pos < 0 || pos >= this.count) return ''
    const { text, starts } = chunk
    const recordStart = starts[pos & CHUNK_MASK] as number
    const start = text.indexOf(TAGS[tag] as string, recordStart) + 1
    if (start === 0) return ''
    let end = start
    while (end < text.length && text.charCodeAt(end) >= 0x20) end++
    return text.slice(start, end)
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
    if (this.#ipVersion?.[pos] !== range.version) return false
    if (range.version === 4) {
      return this.#ip4Start?.[pos] === Number(range.start) && this.#ip4End?.[pos] === Number(range.end)
    }
    const r = this.#ip6.get(pos)
    return r !== undefined && r.start === range.start && r.end === range.end
  }

  ipContainsAt(pos: number, range: IpRange): boolean {
    if (this.#ipVersion?.[pos] !== range.version) return false
    if (range.version === 4) {
      const start = this.#ip4Start?.[pos] as number
      const end = this.#ip4End?.[pos] as number
      return start <= Number(range.start) && Number(range.end) <= end
    }
    const r = this.#ip6.get(pos)
    return r !== undefined && r.start <= range.start && range.end <= r.end
  }

  /** Valid at `at`: start <= at, and no end or end > at. A missing or malformed start never matches. */
  validAt(pos: number, at: number): boolean {
    const start = this.#timeStart?.[pos]
    const end = this.#timeEnd?.[pos]
    return start !== undefined && end !== undefined && start <= at && end > at
  }

  #scanIp(range: IpRange, test: (pos: number) => boolean): number[] {
    const out: number[] = []
    if (range.version === 6) {
      // Map order is insertion order: ascending positions.
      for (const pos of this.#ip6.keys()) if (test(pos)) out.push(pos)
      return out
    }
    const versions = this.#ipVersion
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
