/**
 * What a handler below Fastify (the listing hit handler, the write path) did for a request it then
 * passed on to Fastify, carried on the raw request so it is done once: the budget's charge (the
 * admission applies it instead of charging again) and a body it read (replayed to Fastify's parser).
 */
import type { IncomingMessage } from 'node:http'
import type { Charged } from './rate-limit.js'

const CARRIED_CHARGE = Symbol('ipdr-gateway.carriedCharge')
const CARRIED_BODY = Symbol('ipdr-gateway.carriedBody')

type Carrying = IncomingMessage & { [CARRIED_CHARGE]?: Charged; [CARRIED_BODY]?: Buffer }

/** Leaves `charged` on `req` for the route's admission. */
export function carryCharge(req: IncomingMessage, charged: Charged): void {
  ;(req as Carrying)[CARRIED_CHARGE] = charged
}

/** The charge made below Fastify for `req`, once (then forgotten). */
export function takeCarriedCharge(req: IncomingMessage): Charged | undefined {
  return take(req as Carrying, CARRIED_CHARGE)
}

/** Leaves the body read below Fastify on `req`: the stream it came from is spent. */
export function carryBody(req: IncomingMessage, body: Buffer): void {
  ;(req as Carrying)[CARRIED_BODY] = body
}

/** The body read below Fastify for `req`, once (then forgotten). */
export function takeCarriedBody(req: IncomingMessage): Buffer | undefined {
  return take(req as Carrying, CARRIED_BODY)
}

function take<K extends typeof CARRIED_CHARGE | typeof CARRIED_BODY>(req: Carrying, key: K): Carrying[K] {
  const value = req[key]
  if (value !== undefined) req[key] = undefined
  return value
}
