/**
 * What a successful write changed, in the form a cached listing can take it (SPEC 19): derived from
 * Trisul's answer (the record created, updated or deleted), carried to the other instances with the
 * coherence announcement as JSON, and applied by `src/cache/listing-patch.ts`. Pure: no I/O.
 *
 * Anything the gateway cannot read with certainty gives `null`, and the caller drops the context's
 * listings as before: an answer without a numeric `id`, a customer without a string `UserID`, a
 * mapping without its numeric `ipdr_customer_id` or without the UserID of the write.
 */
import type { ResourceName } from '../resources.js'
import type { WriteOperation } from '../validation/request-schema.js'

/** One record's change. `upsert`: the record is now `record` (found by `id`: replaced, else added); `remove`: gone. */
export interface WriteChange {
  readonly resource: ResourceName
  readonly op: 'upsert' | 'remove'
  /** Trisul's `id` of the record. */
  readonly id: number
  /** The record as Trisul answered it (upsert only). */
  readonly record: Readonly<Record<string, unknown>> | null
  /**
   * Customers: the customer's UserID after the write (null for a delete). Mappings: the UserID of the
   * mapping's customer, the name the cached mapping listing gives the record (SPEC 17).
   */
  readonly userId: string | null
}

/** A write's answer as Trisul gave it, with what the request said. */
export interface AnsweredWrite {
  readonly resource: ResourceName
  readonly operation: WriteOperation
  /** The path's `{UserID}`; null for a create. */
  readonly pathUserId: string | null
  readonly fields: Readonly<Record<string, unknown>>
  readonly answer: Readonly<Record<string, unknown>>
}

/** The largest change carried to other instances, as JSON: a record is a few hundred bytes. */
export const MAX_CHANGE_BYTES = 16 * 1024

function recordId(value: unknown): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null
}

/**
 * Members no record of either listing has, which a Trisul that echoed its request would add: such an
 * answer is not a record, and must not travel to other instances (or Redis) with credentials in it.
 */
const CREDENTIAL_FIELDS = ['api_token', 'username', 'contextname', 'context', 'token', 'password']

/** The change of an answered write, or null when the answer cannot be applied with certainty. */
export function changeOfWrite(w: AnsweredWrite): WriteChange | null {
  const id = recordId(w.answer.id)
  if (id === null) return null
  if (CREDENTIAL_FIELDS.some((f) => Object.hasOwn(w.answer, f))) return null
  const remove = w.operation === 'delete'
  if (w.resource === 'customers') {
    if (remove) return { resource: 'customers', op: 'remove', id, record: null, userId: null }
    const userId = w.answer.UserID
    if (typeof userId !== 'string') return null
    return { resource: 'customers', op: 'upsert', id, record: w.answer, userId }
  }
  if (recordId(w.answer.ipdr_customer_id) === null) return null
  // The customer is the one the write named: Trisul resolved it from this UserID.
  const userId = w.pathUserId ?? w.fields.UserID
  if (typeof userId !== 'string') return null
  return {
    resource: 'mappings',
    op: remove ? 'remove' : 'upsert',
    id,
    record: remove ? null : w.answer,
    userId,
  }
}

/**
 * The customers a write touches, by UserID: the path's and the body's (a rename touches both). Two
 * writes whose sets meet, in flight at once, may have reached Trisul in either order, so neither is
 * applied (src/store/change-order.ts).
 */
export function writeKeys(pathUserId: string | null, fields: Readonly<Record<string, unknown>>): string[] {
  const keys: string[] = []
  if (pathUserId !== null) keys.push(pathUserId)
  if (typeof fields.UserID === 'string' && fields.UserID !== pathUserId) keys.push(fields.UserID)
  return keys
}

/** The change as carried in an announcement; null when it is too large to carry. */
export function encodeChange(change: WriteChange): string | null {
  const text = JSON.stringify(change)
  return Buffer.byteLength(text) > MAX_CHANGE_BYTES ? null : text
}

/** The change read back from an announcement; null for anything that is not one (it is then dropped). */
export function decodeChange(text: string): WriteChange | null {
  let v: unknown
  try {
    v = JSON.parse(text)
  } catch {
    return null
  }
  if (v === null || typeof v !== 'object') return null
  const c = v as Record<string, unknown>
  const resource = c.resource
  if (resource !== 'customers' && resource !== 'mappings') return null
  if (c.op !== 'upsert' && c.op !== 'remove') return null
  const id = recordId(c.id)
  if (id === null) return null
  const record = c.record
  if (c.op === 'upsert' && (record === null || typeof record !== 'object' || Array.isArray(record)))
    return null
  if (c.op === 'remove' && record !== null) return null
  const userId = c.userId
  if (userId !== null && typeof userId !== 'string') return null
  if (resource === 'mappings' && typeof userId !== 'string') return null
  if (resource === 'customers' && c.op === 'upsert' && typeof userId !== 'string') return null
  return {
    resource,
    op: c.op,
    id,
    record: (record as Record<string, unknown> | null) ?? null,
    userId: (userId as string | null) ?? null,
  }
}
