/**
 * Bounded memory for request bodies in flight (SPEC 13, `limits.inFlightBodyBytes`):
 * before a body is read, the request reserves what it may take (its declared
 * `Content-Length`, or its route's limit when it is chunked) from one budget
 * shared by all requests; past the budget it is refused with `503` and
 * `Retry-After` before a byte of it is read. The reservation is released when
 * the answer is done. Registered as a `preParsing` hook, which Fastify runs
 * after `onRequest` (so only admitted requests reserve) and before any body is read.
 */
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayError } from '../../errors.js'
import { takeCarriedBody } from './carried.js'
import { hasBody } from './get-body.js'
import '../request-context.js'

/** Seconds a refused client is asked to wait. */
const RETRY_AFTER_SECONDS = '1'

export class BodiesInFlight {
  #held = 0

  /** Reserves `bytes` unless that would pass `max`; false when refused. */
  reserve(bytes: number, max: number): boolean {
    if (this.#held + bytes > max) return false
    this.#held += bytes
    return true
  }

  release(bytes: number): void {
    this.#held = Math.max(0, this.#held - bytes)
  }
}

/** What a request may hold of the budget: its declared length, else its route's body limit. */
export function bodyReservation(request: FastifyRequest): number {
  const limit = request.routeOptions.bodyLimit ?? request.gw.policy.gateway.limits.bodyBytes
  const declared = Number(request.headers['content-length'])
  return Number.isFinite(declared) && declared >= 0 ? Math.min(declared, limit) : limit
}

export function registerBodiesInFlight(app: FastifyInstance, bodies: BodiesInFlight): void {
  app.addHook('preParsing', async (request, reply, payload) => {
    if (!hasBody(request.raw)) return payload
    const bytes = bodyReservation(request)
    const max = request.gw.policy.gateway.limits.inFlightBodyBytes
    if (!bodies.reserve(bytes, max)) {
      reply.header('retry-after', RETRY_AFTER_SECONDS)
      throw new GatewayError('IPDR_GW_BODIES_IN_FLIGHT', undefined, {
        headers: { 'retry-after': RETRY_AFTER_SECONDS },
      })
    }
    reply.raw.once('close', () => bodies.release(bytes))
    // A body the write path below Fastify read already, before it passed the request on: replayed.
    const carried = takeCarriedBody(request.raw)
    return carried === undefined ? payload : Readable.from([carried], { objectMode: false })
  })
}
