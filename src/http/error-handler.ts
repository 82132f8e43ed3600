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
import type { IncomingMessage } from 'node:http'
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifyServerOptions,
} from 'fastify'
import type { UpstreamAuth } from '../credentials.js'
import {
  ERRORS,
  type ErrorBody,
  errorBody,
  GatewayError,
  toGatewayError,
  verdictOfError,
  WWW_AUTHENTICATE,
} from '../errors.js'
import type { Policy } from '../policy/types.js'
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

/** What answers an error, for Fastify's reply (the root error handler) and for the write path below Fastify. */
export interface ErrorAnswer {
  readonly statusCode: number
  /** Headers to add, in order, before the content type. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  /** An upstream answer passed through as received, or the gateway's error body. */
  readonly body: Buffer | string | ErrorBody
  /** What the answer says of the credentials (SPEC 13's failed-authentication budget). */
  readonly verdict: 'accepted' | 'refused' | null
}

/** The request an error answers, as far as its answer depends on it. */
export interface ErroredRequest {
  readonly raw: IncomingMessage
  readonly url: string
  readonly upstreamAuth: UpstreamAuth | null
  /** The policy the request runs under; undefined before it had one (a framework error). */
  readonly policy: Policy | undefined
  readonly log: FastifyBaseLogger
  /** Whether the answer has a `WWW-Authenticate` already. */
  readonly hasChallenge: boolean
}

/** Turns anything thrown into the answer the client gets, and logs it (pure apart from the log line). */
export function errorAnswer(err: unknown, request: ErroredRequest): ErrorAnswer {
  const ge = toGatewayError(err)
  const verdict = verdictOfError(ge)
  const headers: Array<readonly [string, string]> = []
  if (ge.statusCode === 408 || !(request.raw.complete || drainable(request.raw)))
    headers.push(['connection', 'close'])
  const secrets = [
    ...presentedSecrets(request.raw.rawHeaders),
    ...(request.upstreamAuth ? [request.upstreamAuth.token] : []),
    ...querySecrets(request.url),
  ]
  if (ge.passthrough && request.policy?.gateway.upstream.normalizeErrors === false) {
    const text = ge.passthrough.body.toString('utf8')
    const scrubbed = scrubSecrets(text, secrets)
    const body = scrubbed === text ? ge.passthrough.body : scrubbed
    return { statusCode: ge.passthrough.statusCode, headers, body, verdict }
  }
  const message = capMessage(scrubSecrets(ge.message, secrets))
  if (ge.statusCode >= 500) request.log.error({ err: ge.cause ?? ge, code: ge.code }, message)
  else request.log.info({ code: ge.code, statusCode: ge.statusCode }, message)
  for (const [k, v] of Object.entries(ge.headers)) headers.push([k, v])
  if (ge.statusCode === 401 && !request.hasChallenge && ge.headers['www-authenticate'] === undefined) {
    headers.push(['www-authenticate', WWW_AUTHENTICATE])
  }
  return { statusCode: ge.statusCode, headers, body: errorBody(ge.code, message), verdict }
}

/** The root error handler. */
export function replyWithError(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const answer = errorAnswer(err, {
    raw: request.raw,
    url: request.url,
    upstreamAuth: request.upstreamAuth,
    policy: request.gw?.policy,
    log: request.log,
    hasChallenge: reply.hasHeader('www-authenticate'),
  })
  if (answer.verdict !== null && request.gw) request.gw.trisulVerdict = answer.verdict
  for (const [k, v] of answer.headers) reply.header(k, v)
  reply.code(answer.statusCode).type('application/json; charset=utf-8').send(answer.body)
}

/** The root error handler and the 404 of routes that do not exist. */
export function registerErrorReplies(app: FastifyInstance): void {
  app.setErrorHandler(replyWithError)
  app.setNotFoundHandler((_request, reply) => {
    reply.code(ERRORS.IPDR_GW_NOT_FOUND.status).send(errorBody('IPDR_GW_NOT_FOUND'))
  })
}
