/**
 * Per-consumer redaction (policy `redact`, shared/SPEC.md section 4): the
 * listed fields are replaced by `"***"` in every record a consumer receives.
 */

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
