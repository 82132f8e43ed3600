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
 * JSON-equal to it otherwise. Its record offsets follow from the edit and its ETag is digested as
 * the bytes are copied, so nothing is scanned again.
 */
import { createHash } from 'node:crypto'
import { strongEtagOf } from './etag.js'
import type { ListingEntry } from './listing-entry.js'
import { MemberPicker } from './listing-scan.js'
import { MAPPING_NAME_FIELD } from './mapping-names.js'
import type { Steps } from './steps.js'
import type { WriteChange } from './write-change.js'

/** Records read between two yields. */
const STEP_RECORDS = 4096
/** Bytes copied and digested between two yields: a few ms. */
const STEP_BYTES = 4 * 1024 * 1024

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

/** One edit: the record at `pos` replaced or removed, or a record inserted before `pos`. */
interface Edit {
  readonly pos: number
  readonly kind: 'replace' | 'remove' | 'insert'
  readonly bytes?: Buffer
}

export interface PatchedListing {
  /** The new bytes, in an ArrayBuffer of their own (Fastify sends only ArrayBuffer-backed bytes as they are). */
  readonly raw: Buffer
  /** `[start, end)` of each record in `raw`. */
  readonly offsets: Uint32Array
  /** `strongEtag(raw)`. */
  readonly etag: string
  readonly ids: Float64Array
}

/**
 * `entry` with `change` applied: its new bytes and ids; `'unchanged'` when the change does not touch it
 * (a mapping change and the customers listing; a rename that leaves every name as it was; a delete of
 * what is not there); null when it cannot be applied with certainty. Mapping entries must be indexed
 * (`whenIndexed`) before a customer change: their records are found by customer.
 */
export function* patchListing(
  entry: ListingEntry,
  change: WriteChange,
): Steps<PatchedListing | 'unchanged' | null> {
  const ids = yield* listingIds(entry)
  if (ids === null) return null
  let edits: Edit[]
  if (entry.resource === change.resource) {
    const edit = ownEdit(entry, ids, change)
    if (edit === null) return null
    if (edit === 'unchanged') return 'unchanged'
    edits = [edit]
  } else if (entry.resource === 'mappings') {
    edits = customerEdits(entry, change)
  } else {
    return 'unchanged'
  }
  if (edits.length === 0) return 'unchanged'
  const made = yield* splice(entry, edits)
  return { ...made, ids: editedIds(ids, edits, change.id) }
}

/** The edit of a change to a listing of its own resource. */
function ownEdit(entry: ListingEntry, ids: Float64Array, change: WriteChange): Edit | 'unchanged' | null {
  const pos = lowerBound(ids, change.id)
  const found = pos < ids.length && ids[pos] === change.id
  if (change.op === 'remove') return found ? { pos, kind: 'remove' } : 'unchanged'
  if (change.record === null) return null
  const neighbour = entry.count === 0 ? null : entry.record(found || pos < entry.count ? pos : pos - 1)
  const bytes = recordBytes(entry, change, neighbour)
  if (bytes === null) return null
  if (found && bytes.equals(entry.recordRaw(pos))) return 'unchanged'
  return { pos, kind: found ? 'replace' : 'insert', bytes }
}

/**
 * The answer as a listing record: with its customer's UserID on a mapping (as the cached mapping
 * listing has it), members in the order of a record of the listing. Null when its members are not
 * that record's: the answer is not in the listing's form.
 */
function recordBytes(
  entry: ListingEntry,
  change: WriteChange,
  neighbour: Record<string, unknown> | null,
): Buffer | null {
  const answer = change.record as Readonly<Record<string, unknown>>
  const record: Record<string, unknown> = { ...answer }
  if (entry.resource === 'mappings' && !Object.hasOwn(record, MAPPING_NAME_FIELD)) {
    record[MAPPING_NAME_FIELD] = change.userId
  }
  if (neighbour === null) return Buffer.from(JSON.stringify(record))
  const names = Object.keys(neighbour)
  if (names.length !== Object.keys(record).length || !names.every((n) => Object.hasOwn(record, n)))
    return null
  const ordered: Record<string, unknown> = {}
  for (const n of names) ordered[n] = record[n]
  return Buffer.from(JSON.stringify(ordered))
}

/**
 * A customer change to the mapping listing: Trisul deletes a customer's mappings with it, and the
 * records of a customer renamed carry its new UserID.
 */
function customerEdits(entry: ListingEntry, change: WriteChange): Edit[] {
  const edits: Edit[] = []
  for (const pos of entry.lookup(change.id)) {
    if (change.op === 'remove') {
      edits.push({ pos, kind: 'remove' })
      continue
    }
    const record = entry.record(pos)
    if (record[MAPPING_NAME_FIELD] === change.userId) continue
    record[MAPPING_NAME_FIELD] = change.userId
    edits.push({ pos, kind: 'replace', bytes: Buffer.from(JSON.stringify(record)) })
  }
  return edits
}

function editedIds(ids: Float64Array, edits: readonly Edit[], id: number): Float64Array {
  const first = edits[0] as Edit
  if (first.kind === 'insert') {
    const out = new Float64Array(ids.length + 1)
    out.set(ids.subarray(0, first.pos))
    out[first.pos] = id
    out.set(ids.subarray(first.pos), first.pos + 1)
    return out
  }
  const removed = new Set(edits.filter((e) => e.kind === 'remove').map((e) => e.pos))
  if (removed.size === 0) return ids
  const out = new Float64Array(ids.length - removed.size)
  let at = 0
  for (let pos = 0; pos < ids.length; pos++) if (!removed.has(pos)) out[at++] = ids[pos] as number
  return out
}

type Piece = { readonly from: number; readonly to: number } | Buffer

/**
 * `[` + the records with `edits` applied, joined by `,` + `]`: runs of untouched records are copied as
 * they are (with the separators between them), their offsets shifted, the bytes digested, a slice
 * per step.
 */
function* splice(entry: ListingEntry, edits: readonly Edit[]): Steps<Omit<PatchedListing, 'ids'>> {
  const raw = entry.raw
  const old = entry.offsets
  const sorted = [...edits].sort((a, b) => a.pos - b.pos || (a.kind === 'insert' ? -1 : 1))
  // Pieces of the result between the brackets: a run of records [from, to), or a record's bytes.
  const pieces: Piece[] = []
  let next = 0
  const run = (to: number) => {
    if (to > next) pieces.push({ from: next, to })
  }
  for (const edit of sorted) {
    run(edit.pos)
    if (edit.kind === 'insert') {
      next = Math.max(next, edit.pos)
      pieces.push(edit.bytes as Buffer)
      continue
    }
    if (edit.kind === 'replace') pieces.push(edit.bytes as Buffer)
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
  let at = 0
  let rec = 0
  out[at++] = 0x5b // [
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) out[at++] = 0x2c // ,
    const piece = pieces[i] as Piece
    if (Buffer.isBuffer(piece)) {
      offsets[2 * rec] = at
      at += piece.copy(out, at)
      offsets[2 * rec + 1] = at
      rec++
      continue
    }
    const start = old[2 * piece.from] as number
    const shift = at - start
    for (let r = piece.from; r < piece.to; r++) {
      offsets[2 * rec] = (old[2 * r] as number) + shift
      offsets[2 * rec + 1] = (old[2 * r + 1] as number) + shift
      rec++
    }
    const end = old[2 * (piece.to - 1) + 1] as number
    for (let from = start; from < end; from += STEP_BYTES) {
      at += raw.copy(out, at, from, Math.min(end, from + STEP_BYTES))
      if (end - from > STEP_BYTES) yield
    }
  }
  out[at] = 0x5d // ]
  const hash = createHash('sha256')
  for (let from = 0; from < length; from += STEP_BYTES) {
    hash.update(out.subarray(from, Math.min(length, from + STEP_BYTES)))
    if (length - from > STEP_BYTES) yield
  }
  return { raw: out, offsets, etag: strongEtagOf(hash) }
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
