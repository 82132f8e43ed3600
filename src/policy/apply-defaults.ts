/**
 * Fills absent keys from the schema's `default` annotations, recursing into
 * objects that are present (or were just defaulted), so the schema stays the
 * one place where defaults are written. Returns a fresh copy; the input is not
 * touched. Only plain objects are descended into, so it is safe on data that
 * failed validation (the cross-checks then see defaults wherever keys are
 * missing). Pure.
 */

type Schema = Readonly<Record<string, unknown>>

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function applyDefaults(schema: Schema, data: unknown): unknown {
  if (!isPlainObject(data)) return data
  const properties = schema.properties
  const out: Record<string, unknown> = { ...data }
  if (!isPlainObject(properties)) return out
  for (const [key, sub] of Object.entries(properties)) {
    if (!isPlainObject(sub)) continue
    if (!Object.hasOwn(out, key) && Object.hasOwn(sub, 'default')) {
      out[key] = structuredClone(sub.default)
    }
    if (Object.hasOwn(out, key)) out[key] = applyDefaults(sub, out[key])
  }
  return out
}
