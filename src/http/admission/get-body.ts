/**
 * Fastify does not parse a body on GET (its router skips the content-type
 * parsers for GET and HEAD), but legacy Trisul clients put their credentials in
 * the JSON body of a GET (shared/SPEC.md 3.1 form 4). This reads that body
 * from the raw request, bounded by the body limit.
 */
import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../../errors.js'

export function hasBody(raw: IncomingMessage): boolean {
  const len = raw.headers['content-length']
  if (len !== undefined) return len !== '0'
  return raw.headers['transfer-encoding'] !== undefined
}

/** The most body bytes Node may read and drop after an answer that left them unread: a few KiB, no more (SPEC 13). */
export const DRAIN_MAX_BYTES = 4096

/** Whether an unread body is small enough to drain (a declared length of at most {@link DRAIN_MAX_BYTES}). */
export function drainable(raw: IncomingMessage): boolean {
  const declared = Number(raw.headers['content-length'])
  return (
    raw.headers['transfer-encoding'] === undefined && Number.isFinite(declared) && declared <= DRAIN_MAX_BYTES
  )
}

/** Reads the whole body; 413 past `limit` bytes, 408 when it does not arrive in time (src/http/server/listener-guards.ts). */
export function readRawBody(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(raw.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new GatewayError('IPDR_GW_BODY_TOO_LARGE'))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        cleanup()
        // Stop reading; the response closes the connection.
        raw.pause()
        reject(new GatewayError('IPDR_GW_BODY_TOO_LARGE'))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(Buffer.concat(chunks, size))
    }
    const onError = (err: Error) => {
      cleanup()
      // The listener's own refusal (a body not whole within its timeout: 408, SPEC 13) as it is.
      reject(
        err instanceof GatewayError
          ? err
          : new GatewayError('IPDR_GW_INVALID_JSON', 'The request body could not be read', { cause: err }),
      )
    }
    const cleanup = () => {
      raw.off('data', onData)
      raw.off('end', onEnd)
      raw.off('error', onError)
    }
    raw.on('data', onData)
    raw.on('end', onEnd)
    raw.on('error', onError)
  })
}
