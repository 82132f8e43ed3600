/**
 * One cached listing, built once per fill from the upstream bytes: the bytes
 * themselves (sent as they are for a plain listing), a strong ETag, lazily
 * made gzip/brotli variants, memoized redacted views, and a `ListingIndex`
 * for single reads and filters. Records are parsed from the bytes on demand
 * (`record(pos)`), so callers always get fresh objects they may mutate.
 */
import { GatewayError } from '../errors.js'
import type { ResourceFacts, ResourceName } from '../resources.js'
import type { ContentEncoding } from './encoding.js'
import { strongEtag } from './etag.js'
import { ListingBody, type ListingRepresentation } from './listing-body.js'
import { buildIndexParts, canonicalInteger, type IndexParts, ListingIndex } from './listing-index.js'
import { scanListing } from './listing-scan.js'
import type { ListingScanner, ScannedListing } from './listing-scanner.js'
import { normalizeFieldList, redactedListingSteps } from './redaction.js'
import { runSteps, runStepsYielding } from './steps.js'

/**
 * The upstream answered a listing with something other than a JSON array of
 * objects. A `GatewayError` with code `IPDR_GW_UPSTREAM_BAD_RESPONSE` (502);
 * its own class so the caller can count the `invalid_response` outcome.
 */
export class InvalidListingError extends GatewayError {
  constructor(message: string) {
    super('IPDR_GW_UPSTREAM_BAD_RESPONSE', message)
    this.name = 'InvalidListingError'
  }
}

/** Fixed cost of an entry's own objects (entry, bodies, closures), a rounded guess. */
const ENTRY_OVERHEAD_BYTES = 1024

export class ListingEntry implements ListingRepresentation {
  readonly resource: ResourceName
  readonly facts: ResourceFacts
  #index: ListingIndex | null
  /** The index a worker is building for this entry, until it arrives. */
  #pendingIndex: Promise<void> | null = null
  /** Where the index comes from when first awaited (a patched listing's: a worker, on demand). */
  #indexSource: (() => Promise<IndexParts>) | null = null
  readonly #body: ListingBody
  /** `[start, end)` byte offsets of each record in `raw`. */
  readonly #offsets: Uint32Array
  readonly #redacted = new Map<string, ListingBody>()
  readonly #redacting = new Map<string, Promise<ListingBody>>()
  #sizeListener: (() => void) | undefined

  /** Use `buildListingEntry`. */
  constructor(
    raw: Buffer,
    facts: ResourceFacts,
    index: ListingIndex | null,
    offsets: Uint32Array,
    etag: string = strongEtag(raw),
  ) {
    this.resource = facts.name
    this.facts = facts
    this.#index = index
    this.#offsets = offsets
    this.#body = new ListingBody(raw, etag, () => this.#grew())
  }

  get raw(): Buffer {
    return this.#body.raw
  }

  get etag(): string {
    return this.#body.etag
  }

  /**
   * The index for single reads and filters, built on first use: a polled plain
   * listing never needs it, and the fill that every poll after a write waits
   * for is then only parse, offsets and ETag. Building it parses `raw` again
   * (the parsed records are not kept: they weigh more than the index).
   */
  get index(): ListingIndex {
    if (this.#index === null) {
      this.#index = new ListingIndex(buildIndexParts(this.raw, this.#offsets, this.facts), this.facts)
      this.#grew()
    }
    return this.#index
  }

  /**
   * Resolves once the index is here: at once for a small listing (built on first use), when the
   * worker's index arrives for a large one. Routes await it before `lookup` and filters, so a
   * large listing's index is never built on the event loop; a failed worker build falls back to
   * the synchronous build.
   */
  whenIndexed(): Promise<void> {
    const source = this.#indexSource
    if (source !== null && this.#index === null && this.#pendingIndex === null) {
      this.#indexSource = null
      this.adoptIndex(source())
    }
    return this.#pendingIndex ?? Promise.resolve()
  }

  /** True while a worker is still building (or has yet to build) the index: `lookup` would then build it here, on the event loop. */
  get indexPending(): boolean {
    return this.#pendingIndex !== null || (this.#index === null && this.#indexSource !== null)
  }

  /** Builds the index with `source` when `whenIndexed` is first called (a patched listing's, `patchedListingEntry`). */
  indexOnDemand(source: () => Promise<IndexParts>): void {
    if (this.#index === null && this.#pendingIndex === null) this.#indexSource = source
  }

  /** Takes the index a worker is building (`buildListingEntryOffLoop`). */
  adoptIndex(parts: Promise<IndexParts>): void {
    const pending = parts.then(
      (p) => {
        if (this.#index === null) {
          this.#index = new ListingIndex(p, this.facts)
          this.#grew()
        }
        this.#pendingIndex = null
      },
      () => {
        this.#pendingIndex = null
      },
    )
    this.#pendingIndex = pending
    // Single reads and filters wait for the index; a gzip client meanwhile gets the identity body.
    this.#body.narrowWhile(pending)
  }

  /** `[start, end)` byte offsets of each record in `raw` (the entry's own array: read, never write). */
  get offsets(): Uint32Array {
    return this.#offsets
  }

  /** Number of records. */
  get count(): number {
    return this.#offsets.length / 2
  }

  /**
   * Estimated heap cost: raw bytes, the compressed and redacted variants made
   * so far, the index and the offsets. Grows when a variant is made; the
   * cache re-accounts it then (see `onSizeChange`).
   */
  get bytes(): number {
    let bytes = this.#body.bytes + (this.#index?.bytes ?? 0) + this.#offsets.byteLength + ENTRY_OVERHEAD_BYTES
    for (const body of this.#redacted.values()) bytes += body.bytes
    return bytes
  }

  etagFor(encoding: ContentEncoding): string {
    return this.#body.etagFor(encoding)
  }

  encoded(encoding: ContentEncoding): Promise<Buffer> {
    return this.#body.encoded(encoding)
  }

  peekEncoded(encoding: ContentEncoding): Buffer | undefined {
    return this.#body.peekEncoded(encoding)
  }

  /** The upstream bytes of the record at `pos` (a view of `raw`, no copy). */
  recordRaw(pos: number): Buffer {
    this.#check(pos)
    return this.raw.subarray(this.#offsets[2 * pos], this.#offsets[2 * pos + 1])
  }

  /**
   * A JSON array of the records at `positions`, copied from the upstream
   * bytes (one allocation, nothing parsed or re-serialized).
   */
  recordsBody(positions: readonly number[]): Buffer {
    let length = 2 + Math.max(0, positions.length - 1)
    for (const pos of positions) {
      this.#check(pos)
      length += (this.#offsets[2 * pos + 1] as number) - (this.#offsets[2 * pos] as number)
    }
    const out = Buffer.allocUnsafe(length)
    let at = 0
    out[at++] = 0x5b // [
    for (let i = 0; i < positions.length; i++) {
      const pos = positions[i] as number
      if (i > 0) out[at++] = 0x2c // ,
      at += this.raw.copy(out, at, this.#offsets[2 * pos], this.#offsets[2 * pos + 1])
    }
    out[at] = 0x5d // ]
    return out
  }

  /** The record at `pos`, parsed now: a fresh object each call. */
  record(pos: number): Record<string, unknown> {
    return JSON.parse(this.recordRaw(pos).toString('utf8')) as Record<string, unknown>
  }

  /**
   * Positions of the records whose read key (customers `UserID`, mappings
   * `ipdr_customer_id`, see `LISTING_KEY`) equals `key`; O(1) plus the
   * number of matches. An integer key is compared in canonical form.
   */
  lookup(key: string | number): number[] {
    const canonical = this.index.plan.key.kind === 'integer' ? canonicalInteger(key) : String(key)
    return canonical === null ? [] : this.index.positionsForKey(canonical)
  }

  /**
   * The listing with `fields` replaced by `"***"` in every record, for
   * consumers with a `redact` policy: memoized per set of fields (order and
   * duplicates do not matter), with its own ETag and lazily made compressed
   * variants. No fields: the entry itself, so the zero-copy path is kept.
   * Made at once, on the caller's turn: routes use `redactedInTurns`.
   */
  redacted(fields: readonly string[]): ListingRepresentation {
    if (fields.length === 0) return this
    const list = normalizeFieldList(fields)
    const memoKey = JSON.stringify(list)
    return this.#redacted.get(memoKey) ?? this.#keepRedacted(memoKey, runSteps(this.#redactSteps(list)))
  }

  /** The redacted representation if it is made (`this` for no fields), else undefined. */
  peekRedacted(fields: readonly string[]): ListingRepresentation | undefined {
    if (fields.length === 0) return this
    return this.#redacted.get(JSON.stringify(normalizeFieldList(fields)))
  }

  /**
   * `redacted(fields)`, made across event-loop turns a few hundred records at a time (a million
   * records take seconds); concurrent askers share the one making.
   */
  async redactedInTurns(fields: readonly string[]): Promise<ListingRepresentation> {
    if (fields.length === 0) return this
    const list = normalizeFieldList(fields)
    const memoKey = JSON.stringify(list)
    const made = this.#redacted.get(memoKey)
    if (made) return made
    let making = this.#redacting.get(memoKey)
    if (making === undefined) {
      making = runStepsYielding(this.#redactSteps(list)).then(
        (redacted) => {
          this.#redacting.delete(memoKey)
          return this.#redacted.get(memoKey) ?? this.#keepRedacted(memoKey, redacted)
        },
        (err: unknown) => {
          this.#redacting.delete(memoKey)
          throw err
        },
      )
      this.#redacting.set(memoKey, making)
    }
    return making
  }

  #redactSteps(list: readonly string[]) {
    return redactedListingSteps(this.raw, this.#offsets, list)
  }

  #keepRedacted(memoKey: string, redacted: { readonly body: Buffer; readonly etag: string }): ListingBody {
    const body = new ListingBody(redacted.body, redacted.etag, () => this.#grew())
    this.#redacted.set(memoKey, body)
    this.#grew()
    return body
  }

  /**
   * Registers the one function called whenever `bytes` grows (a compressed or
   * redacted variant was made); `undefined` removes it. Used by
   * `ListingCache` to keep its byte budget honest.
   */
  onSizeChange(listener: (() => void) | undefined): void {
    this.#sizeListener = listener
  }

  #grew(): void {
    this.#sizeListener?.()
  }

  #check(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0 || pos >= this.count) {
      throw new RangeError(`no record at position ${pos}`)
    }
  }
}

/**
 * Builds the cache entry of one successful listing response. `raw` must be
 * the complete body (a right-sized Buffer: it is kept as it is). Throws
 * `InvalidListingError` unless it is a JSON array whose every element is an
 * object; envelopes are the caller's to detect before (they are objects, so
 * they land here as invalid). Checks the bytes on the event loop: for a large
 * body use `buildListingEntryOffLoop`.
 */
export function buildListingEntry(raw: Buffer, facts: ResourceFacts): ListingEntry {
  if (!Buffer.isBuffer(raw)) throw new InvalidListingError('The upstream listing is not a byte body')
  let offsets: Uint32Array
  try {
    offsets = scanListing(raw)
  } catch (err) {
    throw invalidListing(err)
  }
  return new ListingEntry(raw, facts, null, offsets)
}

/** The same entry, with the bytes checked by `scanner` (in a worker when large): the event loop stays free. */
export async function buildListingEntryOffLoop(
  scanner: ListingScanner,
  raw: Buffer,
  facts: ResourceFacts,
): Promise<ListingEntry> {
  if (!Buffer.isBuffer(raw)) throw new InvalidListingError('The upstream listing is not a byte body')
  let scanned: ScannedListing
  try {
    scanned = await scanner.scan(raw, facts.name)
  } catch (err) {
    throw invalidListing(err)
  }
  const entry = new ListingEntry(scanned.raw, facts, null, scanned.offsets, scanned.etag)
  if (scanned.index) entry.adoptIndex(scanned.index)
  return entry
}

/**
 * The entry of a patched listing (SPEC 19, src/cache/listing-patch.ts): bytes made from a checked
 * entry and records, with their offsets and ETag, so nothing is scanned again. `indexSource`: how a
 * large one's index is built once a read awaits it (a sync's many patched entries are never indexed
 * unless read by a filter or a single read); null: built on first use.
 */
export function patchedListingEntry(
  raw: Buffer,
  facts: ResourceFacts,
  offsets: Uint32Array,
  etag: string,
  indexSource: (() => Promise<IndexParts>) | null,
): ListingEntry {
  const entry = new ListingEntry(raw, facts, null, offsets, etag)
  if (indexSource !== null) entry.indexOnDemand(indexSource)
  return entry
}

function invalidListing(err: unknown): InvalidListingError {
  const message = err instanceof Error ? err.message : ''
  const element = /^non-object element at index (\d+)/.exec(message)
  if (element)
    return new InvalidListingError(`The upstream listing has a non-object element at index ${element[1]}`)
  if (message.startsWith('not a JSON array'))
    return new InvalidListingError('The upstream listing is not a JSON array')
  return new InvalidListingError(`The upstream listing is not valid JSON (${message || 'unreadable'})`)
}
