/**
 * Limits decided at the HTTP server, before Fastify makes a request (SPEC 13),
 * after Envoy's overload manager: a refusal happens as early as it can.
 *
 * - Timeouts: the headers within `server.headersTimeoutMs` (Node's own check,
 *   run every second), a request with a body whole within
 *   `server.requestTimeoutMs` (`sync.requestTimeoutMs` on the sync route: Node's
 *   `requestTimeout` is one value for the whole server), else `408` and the
 *   connection is closed; idle keep-alive connections close after
 *   `server.keepAliveTimeoutMs`.
 * - Connections per client address: past `server.maxConnectionsPerAddress` a new
 *   connection is closed at once, so one host cannot take every file
 *   descriptor; `server.trustedAddresses` (a load balancer) are exempt.
 * - Forwarded addresses: behind a trusted proxy, `X-Forwarded-For` entries that
 *   are not one IP address (a CIDR, a name) are dropped before proxy-addr reads
 *   them, so such a value is never taken as the client address.
 */

import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { isIP, type Socket } from 'node:net'
import { errorBody, GatewayError } from '../../errors.js'
import type { ServerPolicy } from '../../policy/types.js'
import { type IpRange, parseIpRange, rangeContains } from '../../shared/ip-range.js'
import { hasBody } from '../admission/get-body.js'

/** How often Node checks headers timeouts (its default, 30 s, would let a slow client hold 40 s). */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1000

export interface ListenerLimits {
  readonly server: ServerPolicy
  /** `sync.requestTimeoutMs`, for requests to {@link syncPath}. */
  readonly syncRequestTimeoutMs: number
  /** The sync route's path, whose requests get the longer timeout. */
  readonly syncPath: string
}

/** The request timeout a request gets: the sync route's, else the server's. */
export function requestTimeoutFor(url: string | undefined, limits: ListenerLimits): number {
  const path = url === undefined ? '' : url.split('?', 1)[0]
  return path === limits.syncPath ? limits.syncRequestTimeoutMs : limits.server.requestTimeoutMs
}

/** Applies the timeouts and the per-address connection cap to a server Fastify will use. */
export function guardServer(server: Server, limits: ListenerLimits): void {
  const s = limits.server
  server.headersTimeout = s.headersTimeoutMs
  // Requests with a body are timed one by one (watchRequest); a request without one is whole once its headers are.
  server.requestTimeout = 0
  server.keepAliveTimeout = s.keepAliveTimeoutMs
  const trusted = s.trustedAddresses.map((t) => parseIpRange(t)).filter((r): r is IpRange => r !== null)
  const open = new Map<string, number>()
  const max = s.maxConnectionsPerAddress
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress
    if (address === undefined) return
    if (trusted.length > 0) {
      const client = parseIpRange(address)
      if (client !== null && trusted.some((r) => rangeContains(r, client))) return
    }
    const count = (open.get(address) ?? 0) + 1
    if (count > max) {
      socket.destroy()
      return
    }
    open.set(address, count)
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1
      if (left <= 0) open.delete(address)
      else open.set(address, left)
    })
  })
}

/**
 * Times a request that carries a body: unless it has arrived whole within its
 * timeout, whatever is reading it gets `IPDR_GW_REQUEST_TIMEOUT` (so the
 * answer is the gateway's `408`) and the connection is closed after the answer;
 * when nothing reads it, the `408` is written here.
 */
export function watchRequest(req: IncomingMessage, res: ServerResponse, limits: ListenerLimits): void {
  if (!hasBody(req)) return
  const timer = setTimeout(
    () => {
      if (req.complete || res.writableEnded) return
      const socket = req.socket
      res.once('finish', () => socket.destroy())
      if (req.listenerCount('error') > 0) {
        req.emit('error', new GatewayError('IPDR_GW_REQUEST_TIMEOUT'))
        // Whatever answers now, the connection goes: the rest of the body is not read.
        setTimeout(() => socket.destroy(), 1000).unref()
        return
      }
      if (!res.headersSent) {
        const body = JSON.stringify(errorBody('IPDR_GW_REQUEST_TIMEOUT'))
        res.writeHead(408, {
          'content-type': 'application/json; charset=utf-8',
          'content-length': Buffer.byteLength(body),
          connection: 'close',
        })
        res.end(body)
      } else socket.destroy()
    },
    requestTimeoutFor(req.url, limits),
  )
  timer.unref()
  const clear = () => clearTimeout(timer)
  req.once('end', clear)
  res.once('close', clear)
}

/** Drops `X-Forwarded-For` entries that are not one IP address (behind a trusted proxy only). */
export function dropForgedForwards(req: IncomingMessage): void {
  const header = req.headers['x-forwarded-for']
  if (header === undefined) return
  const kept = (Array.isArray(header) ? header.join(',') : header)
    .split(',')
    .map((v) => v.trim())
    .filter((v) => isIP(v) !== 0)
  if (kept.length === 0) delete req.headers['x-forwarded-for']
  else req.headers['x-forwarded-for'] = kept.join(', ')
}
