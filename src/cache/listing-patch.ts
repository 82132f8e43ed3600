/**
 * A cached listing with one write applied (SPEC 19): the bytes a fresh listing from Trisul would have,
 * made from the entry's bytes and Trisul's answer instead of a refetch. Pure, in steps
 * (src/cache/steps.ts): at a million records the copy is cut into slices, so the loop is never held.
 *
 * Trisul lists records in `id` order (the emulator does, and so do the listings seen in the field), so
 * a record is found by binary search on the ids, and a new one goes where its id sorts. The ids are
 * read once per fetched entry and carried to each patched one. A listing whose ids are not strictly
 * ascending (or not all integers) is an order the gateway cannot follow: it gives `null`, and the
 * caller drops the entry, as it does for an answer whose members are not those of the listing's
 * records.
 *
 * The result is `[` + records joined by `,` + `]`: byte-equal to a fresh listing when Trisul's
 * listing is compact JSON with the answer's members in the listing's order (the emulator's), and
 * JSON-equal to it otherwise. Its record offsets follow from the edits, so nothing is scanned again,
 * and its ETag is derived from the entry's and the changes (the bytes are a function of both).
 */
import { deriveEtag } from './etag.js'
import type { ListingEntry } from './listing-entry.js'
import { canonicalInteger } from './listing-index.js'
import { MemberPicker } from './listing-scan.js'
import { MAPPING_NAME_FIELD } from './mapping-names.js'
import type { Steps } from './steps.js'
import type { WriteChange } from './write-change.js'

/** Records read between two yields. */
const STEP_RECORDS = 4096
/** Records whose offsets are shifted between two yields (a power of two, minus one). */
const OFFSET_STEP_MASK = (1 << 16) - 1
/** Bytes copied between two yields: about a millisecond. */
const STEP_BYTES = 1024 * 1024

/** Per entry, the `id` of each record in order (null: not strictly ascending integers). */
const IDS = new WeakMap<ListingEntry, Float64Array | null>()

const ID_PICKER = new MemberPicker(['id'])

/** The entry's ids, read from its bytes once (then memoized): null when they are not strictly ascending integers. */
export function* listingIds(entry: ListingEntry): Steps<Float64Array | null> {
  const known = IDS.get(entry)
  if (known !== undefined) return known
  const raw = entry.raw
  const offsets = entry.offsets
  const ids = new Float64Array(entry.count)
  const out = new Int32Array(2)
  let ok = true
  for (let pos = 0; pos < entry.count; pos++) {
    if (pos % STEP_RECORDS === STEP_RECORDS - 1) yield
    ID_PICKER.pick(raw, offsets[2 * pos] as number, out)
    const id = integerAt(raw, out[0] as number, out[1] as number)
    if (id === null || (pos > 0 && id <= (ids[pos - 1] as number))) {
      ok = false
      break
    }
    ids[pos] = id
  }
  const result = ok ? ids : null
  IDS.set(entry, result)
  return result
}

/** Gives a patched entry the ids its bytes were made with (they are not read again). */
export function rememberIds(entry: ListingEntry, ids: Float64Array): void {
  IDS.set(entry, ids)
}

/** A plain non-negative decimal integer in `raw[s, e)`, or null. */
function integerAt(raw: Uint8Array, s: number, e: number): number | null {
  if (s < 0 || e - s < 1 || e - s > 15) return null
  let n = 0
  for (let i = s; i < e; i++) {
    const c = raw[i] as number
    if (c < 0x30 || c > 0x39) return null
    n = n * 10 + (c - 0x30)
  }
  if (e - s > 1 && raw[s] === 0x30) return null
  return n
}

/** The position of `id` in ascending `ids`, or where it would go. */
function lowerBound(ids: Float64Array, id: number): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if ((ids[mid] as number) < id) lo = mid + 1
    else hi = mid
  }
  return lo
}

/** One edit: the record at `pos` replaced or removed, or the record `id` inserted before `pos`. */
interface Edit {
  readonly pos: number
  readonly kind: 'replace' | 'remove' | 'insert'
  readonly bytes?: Buffer
  readonly id: number
}

export interface PatchedListing {
  /** The new bytes, in an ArrayBuffer of their own (Fastify sends only ArrayBuffer-backed bytes as they are). */
  readonly raw: Buffer
  /** `[start, end)` of each record in `raw`. */
  readonly offsets: Uint32Array
  /** A strong tag: derived from the entry's and the changes (`deriveEtag`). */
  readonly etag: string
  readonly ids: Float64Array
}

/** A record as the listing will hold it (parsed), or null for one removed. */
type Overlay = Map<number, Record<string, unknown> | null>

/**
 * `entry` with `changes` applied in their order, in one pass: its new bytes, offsets, ETag and ids;
 * `'unchanged'` when they do not touch it (mapping changes and the customers listing; a customer
 * write that leaves every mapping's name as it was; a delete of what is not there); null when they
 * cannot be applied with certainty. A mapping entry must be indexed (`whenIndexed`) before a customer
 * change: its records are found by customer.
 */
export function* patchListing(
  entry: ListingEntry,
  changes: readonly WriteChange[],
): Steps<PatchedListing | 'unchanged' | null> {
  const ids = yield* listingIds(entry)
  if (ids === null) return null
  const members = entry.count === 0 ? null : Object.keys(entry.record(0))
  // Each touched record's final state, by id: later changes overwrite earlier ones.
  const overlay: Overlay = new Map()
  for (const change of changes) {
    if (entry.resource === change.resource) {
      if (change.op === 'remove') overlay.set(change.id, null)
      else {
        const record = listingRecord(entry, change, members)
        if (record === null) return null
        overlay.set(change.id, record)
      }
    } else if (entry.resource === 'mappings') {
      customerChange(entry, ids, overlay, change)
    }
  }
  const edits: Edit[] = []
  for (const [id, record] of overlay) {
    const pos = lowerBound(ids, id)
    const found = pos < ids.length && ids[pos] === id
    if (record === null) {
      if (found) edits.push({ pos, kind: 'remove', id })
      continue
    }
    const bytes = Buffer.from(JSON.stringify(record))
    if (!found) edits.push({ pos, kind: 'insert', bytes, id })
    else if (!bytes.equals(entry.recordRaw(pos))) edits.push({ pos, kind: 'replace', bytes, id })
  }
  if (edits.length === 0) return 'unchanged'
  const made = yield* splice(entry, ids, edits)
  // The bytes are a function of the entry's and the changes: a tag derived from both is as strong as a
  // digest of the bytes, without a pass over 200 MB for each patch.
  return { ...made, etag: deriveEtag(entry.etag, ['patched', JSON.stringify(changes)]) }
}

/**
 * The answer as a listing record: with its customer's UserID on a mapping (as the cached mapping
 * listing has it), members in the order of the listing's records. Null when its members are not
 * theirs: the answer is not in the listing's form.
 */
function listingRecord(
  entry: ListingEntry,
  change: WriteChange,
  members: readonly string[] | null,
): Record<string, unknown> | null {
  if (change.record === null) return null
  const record: Record<string, unknown> = { ...change.record }
  if (entry.resource === 'mappings' && !Object.hasOwn(record, MAPPING_NAME_FIELD)) {
    record[MAPPING_NAME_FIELD] = change.userId
  }
  if (members === null) return record
  if (members.length !== Object.keys(record).length || !members.every((n) => Object.hasOwn(record, n))) {
    return null
  }
  const ordered: Record<string, unknown> = {}
  for (const n of members) ordered[n] = record[n]
  return ordered
}

/**
 * A customer change to the mapping listing: Trisul deletes a customer's mappings with it, and the
 * records of a customer carry its UserID.
 */
function customerChange(entry: ListingEntry, ids: Float64Array, overlay: Overlay, change: WriteChange): void {
  for (const pos of entry.lookup(change.id)) {
    const id = ids[pos] as number
    if (!overlay.has(id)) overlay.set(id, entry.record(pos))
  }
  for (const [id, record] of overlay) {
    if (record === null || canonicalInteger(record.ipdr_customer_id) !== String(change.id)) continue
    if (change.op === 'remove') overlay.set(id, null)
    else record[MAPPING_NAME_FIELD] = change.userId
  }
}

type Piece = { readonly from: number; readonly to: number } | Buffer

/**
 * `[` + the records with `edits` applied, joined by `,` + `]`: runs of untouched records are copied as
 * they are (with the separators between them), their offsets shifted, the bytes digested, a slice
 * per step.
 */
function* splice(entry: ListingEntry, ids: Float64Array, edits: readonly Edit[]): Steps<PatchedListing> {
  const raw = entry.raw
  const old = entry.offsets
  // By position; inserts before the record at their position, in id order.
  const rank = (e: Edit) => (e.kind === 'insert' ? 0 : 1)
  const sorted = [...edits].sort((a, b) => a.pos - b.pos || rank(a) - rank(b) || a.id - b.id)
  // Pieces of the result between the brackets: a run of records [from, to), or a record's bytes.
  const pieces: Piece[] = []
  const pieceIds: number[] = []
  let next = 0
  const run = (to: number) => {
    if (to > next) pieces.push({ from: next, to })
  }
  for (const edit of sorted) {
    run(edit.pos)
    if (edit.kind === 'insert') {
      next = Math.max(next, edit.pos)
      pieces.push(edit.bytes as Buffer)
      pieceIds.push(edit.id)
      continue
    }
    if (edit.kind === 'replace') {
      pieces.push(edit.bytes as Buffer)
      pieceIds.push(edit.id)
    }
    next = edit.pos + 1
  }
  run(entry.count)
  let length = 2 + Math.max(0, pieces.length - 1)
  let records = 0
  for (const p of pieces) {
    if (Buffer.isBuffer(p)) {
      length += p.length
      records++
    } else {
      length += (old[2 * (p.to - 1) + 1] as number) - (old[2 * p.from] as number)
      records += p.to - p.from
    }
  }
  const out = Buffer.allocUnsafeSlow(length)
  const offsets = new Uint32Array(2 * records)
  const newIds = new Float64Array(records)
  let at = 0
  let rec = 0
  let made = 0
  out[at++] = 0x5b // [
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) out[at++] = 0x2c // ,
    const piece = pieces[i] as Piece
    if (Buffer.isBuffer(piece)) {
      offsets[2 * rec] = at
      at += piece.copy(out, at)
      offsets[2 * rec + 1] = at
      newIds[rec] = pieceIds[made++] as number
      rec++
      continue
    }
    const start = old[2 * piece.from] as number
    const shift = at - start
    newIds.set(ids.subarray(piece.from, piece.to), rec)
    for (let r = piece.from; r < piece.to; r++) {
      offsets[2 * rec] = (old[2 * r] as number) + shift
      offsets[2 * rec + 1] = (old[2 * r + 1] as number) + shift
      rec++
      if ((r & OFFSET_STEP_MASK) === OFFSET_STEP_MASK) yield
    }
    const end = old[2 * (piece.to - 1) + 1] as number
    for (let from = start; from < end; from += STEP_BYTES) {
      at += raw.copy(out, at, from, Math.min(end, from + STEP_BYTES))
      if (end - from > STEP_BYTES) yield
    }
  }
  out[at] = 0x5d // ]
  return { raw: out, offsets, etag: '', ids: newIds }
}

/** A copy of `bytes` in an ArrayBuffer of its own (to move to a worker), a slice per step. */
export function* copyInSteps(bytes: Buffer): Steps<Buffer> {
  const out = Buffer.allocUnsafeSlow(bytes.length)
  for (let from = 0; from < bytes.length; from += STEP_BYTES) {
    bytes.copy(out, from, from, Math.min(bytes.length, from + STEP_BYTES))
    if (bytes.length - from > STEP_BYTES) yield
  }
  return out
}
