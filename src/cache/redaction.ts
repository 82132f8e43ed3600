/**
 * Per-consumer redaction (policy `redact`, shared/SPEC.md section 4): the
 * listed fields are replaced by `"***"` in every record a consumer receives.
 */

import { createHash } from 'node:crypto'
import { strongEtagOf } from './etag.js'
import type { Steps } from './steps.js'

export const REDACTED_VALUE = '***'

/**
 * A copy of `record` whose own fields named in `fields` are replaced by
 * `"***"`. Fields the record does not have stay absent (redaction hides
 * values, it does not invent fields); `null` and empty values are replaced
 * too, so a consumer cannot tell an empty phone from a hidden one. The input
 * is never mutated; a non-object is returned as it is.
 */
export function redactRecord<T>(record: T, fields: readonly string[]): T {
  if (fields.length === 0 || record === null || typeof record !== 'object' || Array.isArray(record)) {
    return record
  }
  const copy: Record<string, unknown> = { ...(record as Record<string, unknown>) }
  for (const field of fields) {
    // defineProperty, not assignment: a field named `__proto__` must be replaced, not hit the setter.
    if (Object.hasOwn(copy, field)) {
      Object.defineProperty(copy, field, {
        value: REDACTED_VALUE,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    }
  }
  return copy as T
}

/** The canonical form of a field list: sorted, without duplicates (a memo key). */
export function normalizeFieldList(fields: readonly string[]): readonly string[] {
  return [...new Set(fields)].sort()
}

/** Characters of redacted JSON gathered before they become bytes (and are hashed): about 1 MiB. */
const PIECE_CHARS = 1 << 20
/** Records redacted between two points where the work may be cut. */
const RECORDS_PER_STEP = 256

/**
 * The listing `raw` (records at `offsets`, `[start, end)` pairs) with `fields` redacted in every
 * record, and its strong ETag: the same bytes as `JSON.stringify` of the whole redacted array, made
 * record by record so that a million records never hold the event loop (SPEC 9), with a point to
 * cut the work every few hundred records and every piece copied.
 */
export function* redactedListingSteps(
  raw: Buffer,
  offsets: Uint32Array,
  fields: readonly string[],
): Steps<{ readonly body: Buffer; readonly etag: string }> {
  const hash = createHash('sha256')
  const pieces: Buffer[] = []
  const flush = (text: string): void => {
    const piece = Buffer.from(text)
    hash.update(piece)
    pieces.push(piece)
  }
  const n = offsets.length / 2
  let text = '['
  for (let i = 0; i < n; i++) {
    const record: unknown = JSON.parse(raw.toString('utf8', offsets[2 * i], offsets[2 * i + 1]))
    text += (i === 0 ? '' : ',') + JSON.stringify(redactRecord(record, fields))
    if (text.length >= PIECE_CHARS) {
      flush(text)
      text = ''
    }
    if (i % RECORDS_PER_STEP === RECORDS_PER_STEP - 1) yield
  }
  flush(`${text}]`)
  const etag = strongEtagOf(hash)
  if (pieces.length === 1) return { body: pieces[0] as Buffer, etag }
  // One allocation, filled a piece per step: a single Buffer.concat of 200 MB holds the loop ~200 ms.
  let total = 0
  for (const piece of pieces) total += piece.length
  const body = Buffer.allocUnsafeSlow(total)
  let at = 0
  for (const piece of pieces) {
    at += piece.copy(body, at)
    yield
  }
  return { body, etag }
}
