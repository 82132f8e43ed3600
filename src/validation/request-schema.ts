/**
 * Request body schemas (shared/SPEC.md 3.5), generated from the resource table
 * and the policy's `validation` rules. The same generator gives the documented
 * schemas (default rules) and, per policy version, the compiled validators the
 * routes run, so a reload that changes a pattern takes effect on new requests.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { GatewayError } from '../errors.js'
import type { ValidationPolicy } from '../policy/types.js'
import type { FieldFact, Operation, ResourceFacts } from '../resources.js'
import { RESOURCES } from '../resources.js'
import { parseIpRange } from '../shared/ip-range.js'

export type WriteOperation = Extract<Operation, 'create' | 'replace' | 'update' | 'delete'>
export const WRITE_OPERATIONS: readonly WriteOperation[] = ['create', 'replace', 'update', 'delete']

export const DEFAULT_VALIDATION: ValidationPolicy = Object.freeze({
  userIdPattern: '^[A-Za-z0-9._@:+-]{1,64}$',
  maxFieldLength: 256,
  email: true,
  phonePattern: '^[0-9+() -]{4,20}$',
  requiredFields: Object.freeze(['UserID', 'Name']),
})

// Deliberately simple (RFC 5322 is not the point): one @, a dot in the domain, no spaces.
const EMAIL_PATTERN = '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$'
const UNIX_TIME_STRING = '^[0-9]{1,12}$'
const MAX_UNIX_TIME = 999_999_999_999

type JsonSchema = Record<string, unknown>

function fieldSchema(field: FieldFact, rules: ValidationPolicy): JsonSchema {
  const str = { type: 'string', maxLength: rules.maxFieldLength }
  switch (field.kind) {
    case 'email':
      return rules.email ? { ...str, anyOf: [{ maxLength: 0 }, { pattern: EMAIL_PATTERN }] } : str
    case 'phone':
      return { ...str, anyOf: [{ maxLength: 0 }, { pattern: rules.phonePattern }] }
    case 'ipOrCidr':
      return { type: 'string', maxLength: 64, format: 'ip-or-cidr' }
    case 'unixTime':
      return {
        anyOf: [
          { type: 'string', pattern: UNIX_TIME_STRING },
          { type: 'integer', minimum: 0, maximum: MAX_UNIX_TIME },
        ],
      }
    case 'unixTimeOrNull':
      return {
        anyOf: [
          { type: 'string', pattern: UNIX_TIME_STRING },
          { type: 'integer', minimum: 0, maximum: MAX_UNIX_TIME },
          { type: 'null' },
        ],
      }
    default:
      return field.name === 'UserID' ? { type: 'string', pattern: rules.userIdPattern } : str
  }
}

/** The JSON Schema of a write body (credentials already removed). */
export function bodySchema(facts: ResourceFacts, op: WriteOperation, rules: ValidationPolicy): JsonSchema {
  const properties: Record<string, JsonSchema> = {}
  for (const f of facts.fields) properties[f.name] = fieldSchema(f, rules)
  const base = { type: 'object', additionalProperties: false, properties }
  const selector = facts.selectorField
  switch (op) {
    case 'create':
      return withRequired(base, facts, facts.createRequired, rules)
    case 'replace':
      return withRequired(base, facts, facts.replaceRequired, rules)
    case 'update':
      // At least one field beyond the selector (a mapping is chosen by its ipsubnet).
      return selector ? { ...base, required: [selector], minProperties: 2 } : { ...base, minProperties: 1 }
    default: {
      // Delete carries nothing but, for mappings, the selector.
      if (!selector) return { type: 'object', additionalProperties: false, properties: {} }
      return {
        type: 'object',
        additionalProperties: false,
        properties: { [selector]: properties[selector] as JsonSchema },
        required: [selector],
      }
    }
  }
}

/**
 * A create or replace body's required fields: the resource's own, and for customers the policy's
 * `validation.requiredFields` (SPEC 17: DoT's CAF asks for Address), which must also be non-empty.
 */
function withRequired(
  base: { type: string; additionalProperties: boolean; properties: Record<string, JsonSchema> },
  facts: ResourceFacts,
  own: readonly string[],
  rules: ValidationPolicy,
): JsonSchema {
  if (facts.name !== 'customers') return { ...base, required: [...own] }
  const extra = rules.requiredFields.filter((f) => f in base.properties)
  const properties = { ...base.properties }
  for (const f of extra)
    properties[f] = { allOf: [properties[f] as JsonSchema, { type: 'string', minLength: 1 }] }
  return { ...base, properties, required: [...new Set([...own, ...extra])] }
}

function newAjv(): Ajv {
  const ajv = new Ajv({ allErrors: false, strict: true, coerceTypes: false, useDefaults: false })
  ajv.addFormat('ip-or-cidr', { type: 'string', validate: (s: string) => parseIpRange(s) !== null })
  return ajv
}

export type BodyValidators = ReadonlyMap<string, ValidateFunction>

const compiled = new WeakMap<ValidationPolicy, BodyValidators>()

/** Validators for every resource × write operation, compiled once per rules object. */
export function bodyValidators(rules: ValidationPolicy): BodyValidators {
  let v = compiled.get(rules)
  if (!v) {
    const ajv = newAjv()
    const map = new Map<string, ValidateFunction>()
    for (const facts of RESOURCES) {
      for (const op of WRITE_OPERATIONS)
        map.set(`${facts.name}:${op}`, ajv.compile(bodySchema(facts, op, rules)))
    }
    v = map
    compiled.set(rules, v)
  }
  return v
}

/** A client-facing message for the first schema error; names the field, never echoes values. */
export function describeSchemaError(errors: readonly ErrorObject[] | null | undefined): string {
  // Inside an anyOf, the branch errors come first; the anyOf error names the field as a whole.
  const err = errors?.find((e) => e.keyword === 'anyOf') ?? errors?.[0]
  if (!err) return 'Invalid request body'
  const field = err.instancePath ? err.instancePath.slice(1) : ''
  switch (err.keyword) {
    case 'additionalProperties':
      return `Unknown field: ${String((err.params as { additionalProperty: string }).additionalProperty)}`
    case 'required':
      return `Missing field: ${String((err.params as { missingProperty: string }).missingProperty)}`
    case 'minProperties':
      return 'The body must change at least one field'
    case 'type':
      return field
        ? `${field} must be ${String((err.params as { type: string }).type)}`
        : 'The body must be a JSON object'
    case 'maxLength':
      return `${field} is too long`
    case 'minLength':
      return `${field} is required and must not be empty`
    case 'pattern':
    case 'anyOf':
    case 'format':
      return `${field} is not valid`
    default:
      return field ? `${field} is not valid` : 'Invalid request body'
  }
}

/** `endtime` after `starttime` (JSON Schema cannot compare two fields). */
export function timeOrderProblem(body: Record<string, unknown>): string | null {
  const { starttime, endtime } = body
  if (starttime === undefined || endtime === undefined || endtime === null) return null
  return Number(endtime) > Number(starttime) ? null : 'endtime must be after starttime'
}

const UNSAFE_SEGMENTS = new Set(['.', '..'])

/**
 * Checks a `{UserID}` path segment, already decoded by the router, against the
 * raw URL too: encoded slashes or backslashes, dot segments and control
 * characters never reach the upstream.
 */
export function userIdProblem(decoded: string, rawUrl: string, pattern: RegExp): string | null {
  if (UNSAFE_SEGMENTS.has(decoded)) return 'UserID may not be a dot segment'
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f/\\]/.test(decoded)) return 'UserID may not contain slashes or control characters'
  const path = rawUrl.split('?', 1)[0] ?? ''
  if (/%2f|%5c|%00/i.test(path)) return 'UserID may not contain encoded slashes'
  if (!pattern.test(decoded)) return 'UserID does not match the allowed pattern'
  return null
}

const patternCache = new Map<string, RegExp>()
function userIdPatternOf(pattern: string): RegExp {
  let re = patternCache.get(pattern)
  if (!re) {
    re = new RegExp(pattern, 'u')
    if (patternCache.size > 64) patternCache.clear()
    patternCache.set(pattern, re)
  }
  return re
}

/** What a path's `{UserID}` (decoded, with the raw URL it came in) earns under the rules: a 400, or null. */
export function pathUserIdRefusal(id: string, rawUrl: string, rules: ValidationPolicy): GatewayError | null {
  const problem = userIdProblem(id, rawUrl, userIdPatternOf(rules.userIdPattern))
  return problem ? new GatewayError('IPDR_GW_INVALID_USER_ID', problem) : null
}
