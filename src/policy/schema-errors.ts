/**
 * Turns ajv's validation errors into the operator-facing `path: message` pairs
 * of the policy problems (`file: path: message`). Paths are dotted with list
 * indexes in brackets (`upstream.circuit.failures`, `allowIPs[1]`), because
 * that is how an operator reads a YAML file; messages name what is allowed.
 * Pure.
 */
import type { ErrorObject } from 'ajv'
import { DURATION_PATTERN } from './duration.js'
import { ENV_NAME_PATTERN, KEY_HASH_PATTERN } from './schema.js'

export type PathSegment = string | number

export interface SchemaProblem {
  readonly path: string
  readonly message: string
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/

/** `["upstream", "circuit", "failures"]` → `upstream.circuit.failures`; `[]` → `(root)`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = ''
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`
    else if (IDENTIFIER.test(s)) out += out === '' ? s : `.${s}`
    else out += `[${JSON.stringify(s)}]`
  }
  return out === '' ? '(root)' : out
}

function pointerSegments(pointer: string): PathSegment[] {
  if (pointer === '') return []
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s))
}

const TYPE_WORDS: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object (a mapping of keys)',
  array: 'a list',
  null: 'null',
}

function describeTypes(types: unknown): string {
  const list = Array.isArray(types) ? types : [types]
  return list.map((t) => TYPE_WORDS[String(t)] ?? String(t)).join(' or ')
}

const PATTERN_MESSAGES: Record<string, (value: unknown) => string> = {
  [DURATION_PATTERN]: (v) =>
    `cannot parse duration ${JSON.stringify(v)} (use milliseconds or e.g. "30 seconds", "1 minute", "2 hours", "1 day")`,
  [KEY_HASH_PATTERN]: () =>
    'must be 64 lower-case hex characters (the SHA-256 of a gateway key, not the key)',
  [ENV_NAME_PATTERN]: (v) =>
    `${JSON.stringify(v)} is not an environment variable name (letters, digits and _, not starting with a digit)`,
}

function list(values: readonly unknown[]): string {
  return values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ')
}

/** One problem per ajv error, de-duplicated, in ajv's order. */
export function formatSchemaErrors(errors: readonly ErrorObject[] | null | undefined): SchemaProblem[] {
  const out: SchemaProblem[] = []
  const seen = new Set<string>()
  for (const e of errors ?? []) {
    const segments = pointerSegments(e.instancePath)
    let message: string
    const params = e.params as Record<string, unknown>
    switch (e.keyword) {
      case 'additionalProperties': {
        segments.push(String(params.additionalProperty))
        const known = Object.keys((e.parentSchema?.properties as object | undefined) ?? {})
        message = known.length > 0 ? `unknown key (known keys: ${known.join(', ')})` : 'unknown key'
        break
      }
      case 'required':
      case 'dependentRequired':
        segments.push(String(params.missingProperty))
        message = 'is required'
        break
      case 'type':
        message = `must be ${describeTypes(params.type)}`
        break
      case 'enum':
        message = `must be one of: ${list((params.allowedValues as unknown[]) ?? [])}`
        break
      case 'pattern': {
        const friendly = PATTERN_MESSAGES[String(params.pattern)]
        message = friendly ? friendly(e.data) : `must match the pattern ${String(params.pattern)}`
        break
      }
      case 'uniqueItems': {
        const [first, second] = [Number(params.i), Number(params.j)].sort((a, b) => a - b)
        message = `lists the same value twice (items ${first} and ${second})`
        break
      }
      default:
        message = (e.message ?? 'is invalid').replace(/must NOT/g, 'must not')
    }
    const problem = { path: formatPath(segments), message }
    const id = `${problem.path}\u0000${problem.message}`
    if (!seen.has(id)) {
      seen.add(id)
      out.push(problem)
    }
  }
  return out
}
