/**
 * Which gateway errors each documented operation can answer with
 * (shared/SPEC.md 3.3), and their OpenAPI responses: one response per status,
 * the shared error body, and one example per code. Pure: no Fastify here.
 *
 * The scope table is typed over every `ErrorCode`, so a code added to
 * src/errors.ts does not compile until it says where it can occur.
 */
import { STATUS_CODES } from 'node:http'
import { ERRORS, type ErrorCode, errorBody } from '../../errors.js'
import type { Operation } from '../../resources.js'

/** The operations of the documented non-API routes. */
export type OperationsRoute = 'health' | 'metrics' | 'sync' | 'query'
/** Every documented operation: an API operation or an operations route. */
export type DocumentedOperation = Operation | OperationsRoute

const API: readonly Operation[] = ['list', 'read', 'create', 'replace', 'update', 'delete']
const WRITES: readonly Operation[] = ['create', 'replace', 'update', 'delete']
const KEYED: readonly Operation[] = ['read', 'replace', 'update', 'delete']
const EVERYWHERE: readonly DocumentedOperation[] = [...API, 'health', 'metrics', 'sync', 'query']
/** API operations, the sync routes and the Query API routes (which authenticate the same way). */
const API_AND_SYNC: readonly DocumentedOperation[] = [...API, 'sync', 'query']
/** Everything that reaches the upstream: the API operations and the Query API routes (`query`). */
const UPSTREAM: readonly DocumentedOperation[] = [...API, 'query']

/**
 * Where each error can occur. Transport errors, envelope errors and the
 * credential and policy checks concern every API operation (a single read is
 * served from the listing, which may have to be fetched).
 */
export const ERROR_SCOPES = {
  IPDR_GW_MISSING_CREDENTIALS: API_AND_SYNC,
  IPDR_GW_MALFORMED_CREDENTIALS: API_AND_SYNC,
  // A JWT that fails verification (SPEC 16).
  IPDR_GW_INVALID_TOKEN: API_AND_SYNC,
  IPDR_GW_BODY_CREDENTIALS_DISABLED: UPSTREAM,
  IPDR_GW_NO_CONSUMER: API_AND_SYNC,
  IPDR_GW_ADDRESS_FORBIDDEN: API_AND_SYNC,
  IPDR_GW_OPERATION_FORBIDDEN: API_AND_SYNC,
  // A consumer pinned to `upstream.contexts` naming another in X-Trisul-Context (SPEC 13).
  IPDR_GW_CONTEXT_FORBIDDEN: API_AND_SYNC,
  IPDR_GW_RATE_LIMITED: API_AND_SYNC,
  // Checked for every route but the probes (a developer's loopback keeps its health checks).
  IPDR_GW_AUTH_RATE_LIMITED: [...API, 'metrics', 'sync', 'query'],
  IPDR_GW_VALIDATION: [...WRITES, 'query'],
  // GET and DELETE may carry legacy body credentials, so every API operation parses JSON.
  IPDR_GW_INVALID_JSON: UPSTREAM,
  IPDR_GW_INVALID_USER_ID: KEYED,
  IPDR_GW_USER_ID_MISMATCH: ['replace', 'update'],
  IPDR_GW_INVALID_QUERY: ['list', 'sync'],
  IPDR_GW_BODY_TOO_LARGE: API_AND_SYNC,
  IPDR_GW_UNSUPPORTED_MEDIA_TYPE: [...WRITES, 'sync', 'query'],
  // The router answers 404 before the handler for a {UserID} it cannot match.
  IPDR_GW_NOT_FOUND: KEYED,
  IPDR_GW_RECORD_NOT_FOUND: ['read'],
  IPDR_GW_METRICS_UNAUTHORIZED: ['metrics'],
  IPDR_GW_UPSTREAM_INVALID_TOKEN: UPSTREAM,
  IPDR_GW_UPSTREAM_CONTEXT_FORBIDDEN: UPSTREAM,
  IPDR_GW_UPSTREAM_INVALID_CONTEXT: UPSTREAM,
  // A mapping create names a customer that may not exist; a keyed write a record.
  IPDR_GW_UPSTREAM_NOT_FOUND: [...WRITES, 'query'],
  IPDR_GW_UPSTREAM_CONFLICT: ['create', 'replace', 'update'],
  // The Query API's own envelopes (SPEC 12); NOT_COMPLETED is also a result's `wait` running out.
  IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED: ['query'],
  IPDR_GW_UPSTREAM_QUERY_NOT_CANCELABLE: ['query'],
  IPDR_GW_UPSTREAM_QUERY_FORBIDDEN: ['query'],
  IPDR_GW_UPSTREAM_REJECTED: UPSTREAM,
  IPDR_GW_UPSTREAM_UNAVAILABLE: UPSTREAM,
  IPDR_GW_UPSTREAM_BAD_RESPONSE: UPSTREAM,
  IPDR_GW_UPSTREAM_TOO_LARGE: UPSTREAM,
  IPDR_GW_UPSTREAM_TIMEOUT: UPSTREAM,
  IPDR_GW_CIRCUIT_OPEN: UPSTREAM,
  // Any route that takes a body, refused before it is read (SPEC 13).
  IPDR_GW_BODIES_IN_FLIGHT: [...WRITES, 'sync', 'query'],
  IPDR_GW_AUDIT_UNAVAILABLE: [...WRITES, 'query'],
  IPDR_GW_SYNC_INVALID_INPUT: ['sync'],
  IPDR_GW_SYNC_TOO_MANY_RECORDS: ['sync'],
  IPDR_GW_SYNC_JOB_NOT_FOUND: ['sync'],
  IPDR_GW_SYNC_APPLY_RUNNING: ['sync'],
  // Only in a job document's errors (a job whose instance died), never a response status; documented with sync.
  IPDR_GW_SYNC_JOB_LOST: ['sync'],
  IPDR_GW_SYNC_JOBS_LIMIT: ['sync'],
  IPDR_GW_BAD_REQUEST: EVERYWHERE,
  IPDR_GW_REQUEST_TIMEOUT: EVERYWHERE,
  IPDR_GW_HEADERS_TOO_LARGE: EVERYWHERE,
  IPDR_GW_INTERNAL: EVERYWHERE,
} as const satisfies Record<ErrorCode, readonly DocumentedOperation[]>

/** The codes `operation` can answer with, grouped by HTTP status (ascending). */
export function errorCodesByStatus(operation: DocumentedOperation): Map<number, ErrorCode[]> {
  const byStatus = new Map<number, ErrorCode[]>()
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const scope: readonly DocumentedOperation[] = ERROR_SCOPES[code]
    if (!scope.includes(operation)) continue
    const status = ERRORS[code].status
    const codes = byStatus.get(status) ?? []
    codes.push(code)
    byStatus.set(status, codes)
  }
  return new Map([...byStatus.entries()].sort(([a], [b]) => a - b))
}

type Json = Record<string, unknown>

/** The JSON Schema of every gateway-made error body. */
export const ERROR_BODY_SCHEMA: Json = {
  type: 'object',
  description:
    'A gateway-made error. Upstream envelopes are normalized to this shape, keeping their message.',
  required: ['statusCode', 'error', 'code', 'message'],
  properties: {
    statusCode: { type: 'integer', description: 'The HTTP status, repeated.', example: 401 },
    error: { type: 'string', description: 'The HTTP reason phrase.', example: 'Unauthorized' },
    code: {
      type: 'string',
      enum: Object.keys(ERRORS),
      description: 'A stable machine-readable code (docs/errors.md).',
      example: 'IPDR_GW_MISSING_CREDENTIALS',
    },
    message: {
      type: 'string',
      description: 'What went wrong, for humans.',
      example: 'Credentials are required',
    },
  },
}

/** `components.examples`: the body of every error code, with its default message. */
export function errorExamples(): Record<ErrorCode, Json> {
  const out = {} as Record<ErrorCode, Json>
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    out[code] = { summary: ERRORS[code].message, value: errorBody(code) }
  }
  return out
}

/**
 * Builds the error responses of an operation for @fastify/swagger's
 * `schema.response`: one entry per status with a `$ref` to the error schema,
 * a `$ref` to the example of each code ({@link errorExamples}), and `headers`
 * for the status (a function, so the header descriptions live with the
 * success headers in one module).
 */
export function errorResponses(
  operation: DocumentedOperation,
  errorSchemaRef: string,
  headersFor: (status: number) => Json,
): Record<string, Json> {
  const out: Record<string, Json> = {}
  for (const [status, codes] of errorCodesByStatus(operation)) {
    const examples: Json = {}
    for (const code of codes) examples[code] = { $ref: `#/components/examples/${code}` }
    out[String(status)] = {
      description: `${STATUS_CODES[status] ?? 'Error'}: ${codes.map((c) => `\`${c}\``).join(', ')}.`,
      headers: headersFor(status),
      content: { 'application/json': { schema: { $ref: errorSchemaRef }, examples } },
    }
  }
  return out
}
