/**
 * The gateway's HTTP(S) server, given to Fastify as its `serverFactory`, and the Fastify options
 * that go with it. The server's own listener applies the limits decided before Fastify makes a
 * request (src/http/server/listener-guards.ts: body timeouts, forged forwarded addresses) and
 * offers each request to the hit handler below Fastify (src/http/listing/hit-handler.ts) once
 * it is set; the rest goes to Fastify.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { type FastifyBaseLogger, type FastifyServerOptions, LogController } from 'fastify'
import { LOG_REDACT_PATHS } from '../../logging.js'
import type { Policy } from '../../policy/types.js'
import { frameworkErrors } from '../error-handler.js'
import { requestIdOf } from '../request-context.js'
import { clientErrorHandler } from './client-errors.js'
import {
  CONNECTIONS_CHECKING_INTERVAL_MS,
  dropForgedForwards,
  guardServer,
  type ListenerLimits,
  watchRequest,
} from './listener-guards.js'
import { httpsServerOptions, type TlsMaterial } from './tls.js'

type Listener = (req: IncomingMessage, res: ServerResponse) => void
/** A handler that answers a request itself or passes it on to `next` (Fastify's). */
export type LowerHandler = (req: IncomingMessage, res: ServerResponse, next: Listener) => void

/** One handler of `handlers` after the other, the last passing on to Fastify; null for none. */
export function chainLowerHandlers(handlers: readonly LowerHandler[]): LowerHandler | null {
  return handlers.reduceRight<LowerHandler | null>(
    (rest, handler) =>
      rest === null ? handler : (req, res, next) => handler(req, res, (r, s) => rest(r, s, next)),
    null,
  )
}

export interface GatewayServer {
  /** Fastify's options: the server factory, logging, request ids, limits and error replies. */
  readonly options: FastifyServerOptions
  /** Sets the handler that sees every request before Fastify. */
  setLowerHandler(handler: LowerHandler): void
}

/**
 * The server and Fastify options for `policy` (read at start: a server's timeouts, connection cap,
 * body limit and trusted proxies are set once). `logger`: Fastify's logger option, undefined for
 * the default (info, redacted JSON on stdout).
 */
export function gatewayServer(
  policy: Policy,
  opts: { tls?: TlsMaterial; logger?: FastifyServerOptions['logger']; syncPath: string },
): GatewayServer {
  const limits: ListenerLimits = {
    server: policy.gateway.server,
    syncRequestTimeoutMs: policy.gateway.sync.requestTimeoutMs,
    syncPath: opts.syncPath,
  }
  const forwarded = policy.gateway.trustProxy.length > 0
  let lower: LowerHandler | null = null
  const serverFactory = (handler: Listener, fastifyOpts: FastifyServerOptions): Server => {
    const listener: Listener = (req, res) => {
      watchRequest(req, res, limits)
      if (forwarded) dropForgedForwards(req)
      if (lower === null) handler(req, res)
      else lower(req, res, handler)
    }
    const serverOptions = { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS }
    const server = opts.tls
      ? createHttpsServer({ ...httpsServerOptions(opts.tls), ...serverOptions }, listener)
      : createServer(serverOptions, listener)
    // What Fastify does to a server it makes itself (fastify/lib/server.js, getServerInstance),
    // with the timeouts and the per-address cap of SPEC 13.
    server.setTimeout(fastifyOpts.connectionTimeout ?? 0)
    if ((fastifyOpts.maxRequestsPerSocket ?? 0) > 0)
      server.maxRequestsPerSocket = fastifyOpts.maxRequestsPerSocket as number
    guardServer(server, limits)
    return server
  }
  const options: FastifyServerOptions = {
    ...(opts.tls ? { https: httpsServerOptions(opts.tls) } : {}),
    serverFactory: serverFactory as unknown as FastifyServerOptions['serverFactory'],
    logger:
      opts.logger === undefined
        ? ({
            level: 'info',
            redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' },
          } as unknown as FastifyBaseLogger)
        : opts.logger,
    genReqId: requestIdOf,
    // One access line per request, written when it is answered (src/http/access-log.ts), as
    // nginx's access log: Fastify's own two lines ("incoming request", "request completed") cost
    // twice the serialization and redaction for the same facts (docs/performance.md, row 13).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: policy.gateway.limits.bodyBytes,
    // Proxies are not trusted unless the policy lists them: request.ip is the socket peer.
    trustProxy: forwarded ? [...policy.gateway.trustProxy] : false,
    return503OnClosing: true,
    clientErrorHandler,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 256, ignoreTrailingSlash: false, caseSensitive: true },
    frameworkErrors,
  }
  return {
    options,
    setLowerHandler(handler) {
      lower = handler
    },
  }
}
