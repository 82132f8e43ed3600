/**
 * Requests that Node's HTTP parser refuses never reach Fastify's router or
 * hooks (a malformed request line, headers over the size limit, a client too
 * slow to send them). Fastify's default answer has its own body; this one has
 * the gateway's error shape and a request id, so clients and logs see one
 * format for every error. Nothing of the refused request is echoed.
 */
import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import { type ErrorCode, errorBody } from '../../errors.js'

function codeFor(err: NodeJS.ErrnoException): ErrorCode {
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'IPDR_GW_REQUEST_TIMEOUT'
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'IPDR_GW_HEADERS_TOO_LARGE'
  return 'IPDR_GW_BAD_REQUEST'
}

/** The raw HTTP/1.1 response for a refused request (pure, for tests). */
export function clientErrorResponse(err: NodeJS.ErrnoException, requestId: string): string {
  const body = JSON.stringify(errorBody(codeFor(err)))
  const { statusCode, error } = JSON.parse(body) as { statusCode: number; error: string }
  return (
    `HTTP/1.1 ${statusCode} ${error}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Request-Id: ${requestId}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  )
}

/** Fastify's `clientErrorHandler` option (called with the instance as `this`). */
export function clientErrorHandler(
  this: { log: { debug(o: object, m: string): void } },
  err: NodeJS.ErrnoException,
  socket: Socket,
): void {
  // A reset connection has nobody left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const requestId = randomUUID()
  this.log.debug({ reqId: requestId, code: err.code }, 'refused by the HTTP parser')
  if (socket.writable) socket.write(clientErrorResponse(err, requestId))
  socket.destroy()
}
