/**
 * What a request's failure is answered with: anything thrown becomes a gateway
 * error (5xx details stay in the log), and with `upstream.normalizeErrors:
 * false` an upstream envelope keeps its own status. The root error handler and
 * the audit's outcome line (src/http/api-routes.ts) both use it, so the audit
 * records the status the client really got.
 */
import type { FastifyError } from 'fastify'
import { type ErrorCode, GatewayError } from '../errors.js'

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
