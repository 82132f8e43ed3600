/**
 * Every error the gateway makes, defined once with its code and HTTP status
 * (after fastify's lib/errors.js). Responses use the shape
 * `{statusCode, error, code, message}`; docs/errors.md lists every code and a
 * test keeps the two in step.
 */
import { STATUS_CODES } from 'node:http'
import type { FastifyError } from 'fastify'

export interface ErrorDefinition {
  readonly status: number
  /** Default message; a throw site may give a more precise one. */
  readonly message: string
}

export const ERRORS = {
  IPDR_GW_MISSING_CREDENTIALS: { status: 401, message: 'Credentials are required' },
  IPDR_GW_MALFORMED_CREDENTIALS: { status: 401, message: 'Malformed credentials' },
  IPDR_GW_INVALID_TOKEN: { status: 401, message: 'The bearer token is not a valid JWT of a trusted issuer' },
  IPDR_GW_BODY_CREDENTIALS_DISABLED: {
    status: 401,
    message: 'Credentials in the request body are not accepted; use the Authorization header',
  },
  IPDR_GW_NO_CONSUMER: { status: 403, message: 'No consumer of the policy matches these credentials' },
  IPDR_GW_ADDRESS_FORBIDDEN: { status: 403, message: 'Requests from this address are not allowed' },
  IPDR_GW_OPERATION_FORBIDDEN: { status: 403, message: 'This operation is not allowed by the policy' },
  IPDR_GW_CONTEXT_FORBIDDEN: {
    status: 403,
    message: 'The policy does not allow this context for this consumer',
  },
  IPDR_GW_RATE_LIMITED: { status: 429, message: 'Rate limit exceeded' },
  IPDR_GW_AUTH_RATE_LIMITED: { status: 429, message: 'Too many failed authentications from this address' },
  IPDR_GW_VALIDATION: { status: 400, message: 'Invalid request body' },
  IPDR_GW_INVALID_JSON: { status: 400, message: 'Malformed JSON body' },
  IPDR_GW_INVALID_USER_ID: { status: 400, message: 'Invalid UserID in path' },
  IPDR_GW_USER_ID_MISMATCH: { status: 400, message: 'The body UserID differs from the path' },
  IPDR_GW_INVALID_QUERY: { status: 400, message: 'Invalid query parameter' },
  IPDR_GW_BODY_TOO_LARGE: { status: 413, message: 'Request body too large' },
  IPDR_GW_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Request body must be application/json' },
  IPDR_GW_NOT_FOUND: { status: 404, message: 'Not found' },
  IPDR_GW_RECORD_NOT_FOUND: { status: 404, message: 'No record with this UserID' },
  IPDR_GW_METRICS_UNAUTHORIZED: { status: 401, message: 'A scrape token is required' },
  // Upstream envelopes, normalized (shared/SPEC.md 3.3); the upstream message is kept.
  IPDR_GW_UPSTREAM_INVALID_TOKEN: { status: 401, message: 'Invalid API token' },
  IPDR_GW_UPSTREAM_CONTEXT_FORBIDDEN: {
    status: 403,
    message: 'The user is not allowed to access the context',
  },
  IPDR_GW_UPSTREAM_INVALID_CONTEXT: { status: 400, message: 'Invalid context name' },
  IPDR_GW_UPSTREAM_NOT_FOUND: { status: 404, message: 'Not found upstream' },
  IPDR_GW_UPSTREAM_CONFLICT: { status: 409, message: 'Conflict upstream' },
  IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED: { status: 409, message: 'The query has not completed yet' },
  IPDR_GW_UPSTREAM_QUERY_NOT_CANCELABLE: {
    status: 409,
    message: 'The query is not in NEW or INPROGRESS state',
  },
  IPDR_GW_UPSTREAM_QUERY_FORBIDDEN: { status: 403, message: 'This query belongs to another user' },
  IPDR_GW_UPSTREAM_REJECTED: { status: 422, message: 'The upstream rejected the request' },
  // Upstream failures.
  IPDR_GW_UPSTREAM_UNAVAILABLE: { status: 502, message: 'The upstream is unavailable' },
  IPDR_GW_UPSTREAM_BAD_RESPONSE: { status: 502, message: 'The upstream sent an invalid response' },
  IPDR_GW_UPSTREAM_TOO_LARGE: {
    status: 502,
    message: 'The upstream answer is larger than the gateway accepts (upstream.maxListingBytes)',
  },
  IPDR_GW_UPSTREAM_TIMEOUT: { status: 504, message: 'The upstream did not answer in time' },
  IPDR_GW_CIRCUIT_OPEN: { status: 503, message: 'The upstream is failing; requests are paused' },
  IPDR_GW_BODIES_IN_FLIGHT: {
    status: 503,
    message: 'The gateway holds as many request bodies as it may (limits.inFlightBodyBytes); retry shortly',
  },
  IPDR_GW_SYNC_INVALID_INPUT: {
    status: 400,
    message: "The sync input must be a JSON array of customers or CSV in Trisul's import layout",
  },
  IPDR_GW_SYNC_TOO_MANY_RECORDS: {
    status: 413,
    message: 'The sync input has more records than sync.maxRecords',
  },
  IPDR_GW_SYNC_JOB_NOT_FOUND: { status: 404, message: 'No such sync job' },
  IPDR_GW_SYNC_APPLY_RUNNING: {
    status: 409,
    message: 'A sync apply for this consumer and context is running',
  },
  IPDR_GW_SYNC_JOB_LOST: {
    status: 503,
    message: 'The instance running this sync job stopped',
  },
  IPDR_GW_SYNC_JOBS_LIMIT: { status: 429, message: 'Too many sync jobs are running for this consumer' },
  IPDR_GW_AUDIT_UNAVAILABLE: {
    status: 503,
    message: 'The write cannot be recorded in the audit trail, so it was not sent',
  },
  // Requests Node's HTTP parser refuses before they become requests (src/http/server/client-errors.ts).
  IPDR_GW_BAD_REQUEST: { status: 400, message: 'Malformed HTTP request' },
  IPDR_GW_REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time' },
  IPDR_GW_HEADERS_TOO_LARGE: { status: 431, message: 'Request headers too large' },
  IPDR_GW_INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, ErrorDefinition>

export type ErrorCode = keyof typeof ERRORS

export interface ErrorBody {
  statusCode: number
  error: string
  code: ErrorCode
  message: string
}

/** An error the gateway answers with; `cause` is logged, never sent. */
export class GatewayError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  /** Extra response headers (`Retry-After`, `WWW-Authenticate`, …). */
  readonly headers: Readonly<Record<string, string>>
  /**
   * The upstream envelope as received, for `upstream.normalizeErrors: false`
   * (legacy clients get it untouched instead of this error).
   */
  readonly passthrough: { readonly statusCode: number; readonly body: Buffer } | null

  constructor(
    code: ErrorCode,
    message?: string,
    options: {
      cause?: unknown
      headers?: Record<string, string>
      passthrough?: { statusCode: number; body: Buffer }
    } = {},
  ) {
    super(message ?? ERRORS[code].message, { cause: options.cause })
    this.name = 'GatewayError'
    this.code = code
    this.statusCode = ERRORS[code].status
    this.headers = options.headers ?? {}
    this.passthrough = options.passthrough ?? null
  }

  toBody(): ErrorBody {
    return errorBody(this.code, this.message)
  }
}

export function errorBody(code: ErrorCode, message?: string): ErrorBody {
  const status = ERRORS[code].status
  return {
    statusCode: status,
    error: STATUS_CODES[status] ?? 'Error',
    code,
    message: message ?? ERRORS[code].message,
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError
}

/** The challenge sent with every 401 (shared/SPEC.md 3.1). */
export const WWW_AUTHENTICATE = 'Bearer realm="ipdr-gateway"'
/** The challenge of a refused JWT (SPEC 16, RFC 6750 section 3.1). */
export const WWW_AUTHENTICATE_INVALID_TOKEN = 'Bearer realm="ipdr-gateway", error="invalid_token"'

/** Maps anything thrown during a request to a gateway error (5xx details stay in the log). */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  const e = err as Partial<FastifyError> & { statusCode?: number }
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('IPDR_GW_INVALID_JSON', undefined, { cause: err })
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('IPDR_GW_BODY_TOO_LARGE', undefined, { cause: err })
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError('IPDR_GW_UNSUPPORTED_MEDIA_TYPE', undefined, { cause: err })
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('IPDR_GW_INVALID_JSON', 'Content-Length does not match the body', {
        cause: err,
      })
  }
  if (e?.code === 'IPDR_GW_REQUEST_TIMEOUT' || e?.statusCode === 408)
    return new GatewayError('IPDR_GW_REQUEST_TIMEOUT', undefined, { cause: err })
  if (err instanceof SyntaxError) return new GatewayError('IPDR_GW_INVALID_JSON', undefined, { cause: err })
  const status = typeof e?.statusCode === 'number' ? e.statusCode : 500
  if (status === 413) return new GatewayError('IPDR_GW_BODY_TOO_LARGE', undefined, { cause: err })
  if (status === 415) return new GatewayError('IPDR_GW_UNSUPPORTED_MEDIA_TYPE', undefined, { cause: err })
  if (status === 404) return new GatewayError('IPDR_GW_NOT_FOUND', undefined, { cause: err })
  if (status >= 400 && status < 500) return new GatewayError('IPDR_GW_VALIDATION', undefined, { cause: err })
  return new GatewayError('IPDR_GW_INTERNAL', undefined, { cause: err })
}

/** The status the client is answered with for `ge`. */
export function answerStatus(ge: GatewayError, normalizeErrors: boolean): number {
  return ge.passthrough && !normalizeErrors ? ge.passthrough.statusCode : ge.statusCode
}

/** Envelopes Trisul sends only after it has accepted the credentials (it names a record, a context or a query). */
const ACCEPTING_ENVELOPES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'IPDR_GW_UPSTREAM_CONTEXT_FORBIDDEN',
  'IPDR_GW_UPSTREAM_INVALID_CONTEXT',
  'IPDR_GW_UPSTREAM_NOT_FOUND',
  'IPDR_GW_UPSTREAM_CONFLICT',
  'IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED',
  'IPDR_GW_UPSTREAM_QUERY_NOT_CANCELABLE',
  'IPDR_GW_UPSTREAM_QUERY_FORBIDDEN',
  'IPDR_GW_UPSTREAM_REJECTED',
])

/**
 * What an upstream error says of the request's credentials (SPEC 13): `refused` for Trisul's
 * invalid-token envelope, `accepted` for an envelope it sends only to a user it knows, else null.
 * Read from the code, so it holds whether the envelope is normalized or passed through.
 */
export function verdictOfError(ge: GatewayError): 'accepted' | 'refused' | null {
  if (ge.code === 'IPDR_GW_UPSTREAM_INVALID_TOKEN') return 'refused'
  return ACCEPTING_ENVELOPES.has(ge.code) ? 'accepted' : null
}
