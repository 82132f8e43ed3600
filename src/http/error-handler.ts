/**
 * The one place an error becomes a reply (after fastify's lib/error-handler.js): the root error
 * handler, the router's own rejections and the 404 of an unknown route. The mapping of anything
 * thrown to a gateway error is `toGatewayError` (src/errors.ts), which the audit's outcome lines
 * share, so the audit records the status the client really got.
 *
 * - With `upstream.normalizeErrors: false` an upstream envelope is passed through as Trisul sent it.
 * - What Trisul said of the credentials is noted for the failed-authentication limiter (SPEC 13).
 * - Nothing secret is echoed: the request's token, key and secret query values are masked in any
 *   message, and messages are capped (SPEC 13).
 * - A body left unread is not drained past a few KiB: the connection closes after the answer.
 * - 5xx details stay in the log.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify'
import {
  ERRORS,
  errorBody,
  GatewayError,
  toGatewayError,
  verdictOfError,
  WWW_AUTHENTICATE,
} from '../errors.js'
import { capMessage, presentedSecrets, querySecrets, scrubSecrets } from '../secrets.js'
import { drainable } from './admission/get-body.js'
import './request-context.js'

/**
 * Fastify's `frameworkErrors`: the router's own rejections (a path that is not valid
 * percent-encoding, a parameter over maxParamLength) get the gateway's error shape and request
 * id too; nothing reached a route, so nothing reached the upstream.
 */
export const frameworkErrors: NonNullable<FastifyServerOptions['frameworkErrors']> = (
  err,
  request,
  rawReply,
) => {
  const reply = rawReply as FastifyReply
  const ge =
    err.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new GatewayError('IPDR_GW_INVALID_USER_ID', 'UserID is too long')
      : err.code === 'FST_ERR_BAD_URL'
        ? new GatewayError('IPDR_GW_NOT_FOUND')
        : new GatewayError('IPDR_GW_INTERNAL')
  request.log.info({ code: ge.code, statusCode: ge.statusCode }, ge.message)
  reply.header('x-request-id', request.id)
  reply.code(ge.statusCode).type('application/json; charset=utf-8').send(ge.toBody())
}

/** The root error handler. */
export function replyWithError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const ge = toGatewayError(err)
  const verdict = verdictOfError(ge)
  if (verdict !== null && request.gw) request.gw.trisulVerdict = verdict
  if (ge.statusCode === 408 || !(request.raw.complete || drainable(request.raw)))
    reply.header('connection', 'close')
  const secrets = [
    ...presentedSecrets(request.raw.rawHeaders),
    ...(request.upstreamAuth ? [request.upstreamAuth.token] : []),
    ...querySecrets(request.url),
  ]
  if (ge.passthrough && request.gw?.policy.gateway.upstream.normalizeErrors === false) {
    const text = ge.passthrough.body.toString('utf8')
    const scrubbed = scrubSecrets(text, secrets)
    const body = scrubbed === text ? ge.passthrough.body : scrubbed
    reply.code(ge.passthrough.statusCode).type('application/json; charset=utf-8').send(body)
    return
  }
  const message = capMessage(scrubSecrets(ge.message, secrets))
  if (ge.statusCode >= 500) request.log.error({ err: ge.cause ?? ge, code: ge.code }, message)
  else request.log.info({ code: ge.code, statusCode: ge.statusCode }, message)
  for (const [k, v] of Object.entries(ge.headers)) reply.header(k, v)
  if (ge.statusCode === 401 && !reply.hasHeader('www-authenticate')) {
    reply.header('www-authenticate', WWW_AUTHENTICATE)
  }
  reply.code(ge.statusCode).type('application/json; charset=utf-8').send(errorBody(ge.code, message))
}

/** The root error handler and the 404 of routes that do not exist. */
export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler(replyWithError)
  app.setNotFoundHandler((_request, reply) => {
    reply.code(ERRORS.IPDR_GW_NOT_FOUND.status).send(errorBody('IPDR_GW_NOT_FOUND'))
  })
}
