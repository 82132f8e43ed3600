/**
 * What a request's failure is answered with: anything thrown becomes a gateway
 * error (5xx details stay in the log), and with `upstream.normalizeErrors:
 * false` an upstream envelope keeps its own status. The root error handler and
 * the audit's outcome line (src/http/api-routes.ts) both use it, so the audit
 * records the status the client really got.
 */
import type { FastifyError } from 'fastify'
import { GatewayError } from '../errors.js'

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
