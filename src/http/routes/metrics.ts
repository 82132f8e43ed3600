/**
 * GET /metrics: the Prometheus exposition (shared/SPEC.md section 5), on the
 * main port by default or on a separate listener (`--metrics-port`,
 * `metrics.port` in the policy) that keeps it off the public port. An optional
 * bearer token protects scrapes; it is compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Server as TlsServer } from 'node:tls'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { errorBody, WWW_AUTHENTICATE } from '../../errors.js'
import type { GatewayMetrics } from '../../metrics.js'
import { httpsServerOptions, secureContextOptions, type TlsMaterial } from '../server/tls.js'

// The pure recorder lives with the metrics; re-exported so the app can import
// everything HTTP-facing about metrics from here.
export { type HttpObservation, recordHttp } from '../../metrics.js'

export const METRICS_PATH = '/metrics'

export interface MetricsRouteOptions {
  /** The app's metrics (one registry per app). */
  metrics: GatewayMetrics
  /**
   * Bearer token a scraper must send as `Authorization: Bearer <token>`.
   * Default `null`: scrapes are open (keep the port private, or use a separate listener).
   * Must be a non-empty token without whitespace when given.
   */
  token?: string | null
}

export interface MetricsListenerOptions extends MetricsRouteOptions {
  /** Interface to bind, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string
  /** Port to bind; 0 picks a free one (the chosen port is returned). */
  port: number
  /** Serve HTTPS with this pair, as the main port does; default plain HTTP. */
  tls?: TlsMaterial
}

export interface MetricsListener {
  /** The port actually bound. */
  readonly port: number
  /** Takes a new certificate and key for the next handshakes (SIGHUP); open connections keep theirs. */
  reloadTls(material: TlsMaterial): void
  /** Stops accepting, closes idle connections, resolves when closed. */
  close(): Promise<void>
}

/** RFC 6750 b64token: what a bearer token may contain. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/
/** `Bearer <token>`; the scheme is case-insensitive (RFC 9110 11.1). */
const BEARER_HEADER = /^Bearer +([^\s]+) *$/i

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

/**
 * A check of the Authorization header against the configured token. Both
 * sides are hashed first so `timingSafeEqual` compares equal lengths and the
 * time taken says nothing about the token's length or content.
 */
function bearerChecker(token: string): (header: string | undefined) => 'ok' | 'missing' | 'invalid' {
  const expected = digest(token)
  return (header) => {
    if (header === undefined || header === '') return 'missing'
    const match = BEARER_HEADER.exec(header)
    if (!match) return 'invalid'
    return timingSafeEqual(digest(match[1] ?? ''), expected) ? 'ok' : 'invalid'
  }
}

function validateToken(token: string | null | undefined): string | null {
  if (token === undefined || token === null) return null
  if (typeof token !== 'string' || !BEARER_TOKEN.test(token)) {
    throw new TypeError(
      'metrics token must be a non-empty bearer token (letters, digits and -._~+/ optionally followed by =)',
    )
  }
  return token
}

/**
 * Registers GET (and HEAD) /metrics on `app`. With a token, a scrape without
 * `Authorization: Bearer <token>` or with another token gets 401
 * `IPDR_GW_METRICS_UNAUTHORIZED` and a `WWW-Authenticate` challenge.
 */
export async function registerMetricsRoute(app: FastifyInstance, opts: MetricsRouteOptions): Promise<void> {
  const { metrics } = opts
  const token = validateToken(opts.token)
  const check = token === null ? null : bearerChecker(token)

  app.get(METRICS_PATH, async (request: FastifyRequest, reply: FastifyReply) => {
    if (check) {
      const verdict = check(request.headers.authorization)
      if (verdict !== 'ok') {
        // RFC 6750 3.1: say invalid_token only when a token was sent.
        const challenge =
          verdict === 'invalid' ? `${WWW_AUTHENTICATE}, error="invalid_token"` : WWW_AUTHENTICATE
        return reply
          .code(401)
          .header('WWW-Authenticate', challenge)
          .header('Cache-Control', 'no-store')
          .send(errorBody('IPDR_GW_METRICS_UNAUTHORIZED'))
      }
    }
    const body = await metrics.registry.metrics()
    return reply
      .header('Content-Type', metrics.registry.contentType)
      .header('Cache-Control', 'no-store')
      .send(body)
  })
}

/**
 * Starts a separate listener that serves only /metrics, so scrapes can stay on a
 * private interface while the API port is public. Anything else gets a JSON 404.
 */
export async function startMetricsListener(opts: MetricsListenerOptions): Promise<MetricsListener> {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new RangeError(`metrics port must be an integer from 0 to 65535, got ${String(opts.port)}`)
  }
  // The metrics port follows the main port's TLS (SPEC 6).
  const app = Fastify({ logger: false, ...(opts.tls ? { https: httpsServerOptions(opts.tls) } : {}) })
  app.setNotFoundHandler((_request, reply) => {
    reply.code(404).send(errorBody('IPDR_GW_NOT_FOUND'))
  })
  // Never send an internal message or stack to a scraper.
  app.setErrorHandler((_error, _request, reply) => {
    reply.code(500).send(errorBody('IPDR_GW_INTERNAL'))
  })
  await registerMetricsRoute(app, { metrics: opts.metrics, token: opts.token ?? null })
  try {
    await app.listen({ host: opts.host, port: opts.port })
  } catch (err) {
    await app.close()
    const reason = err instanceof Error ? err.message : String(err)
    throw new Error(`metrics listener could not listen on ${opts.host}:${opts.port}: ${reason}`, {
      cause: err,
    })
  }
  const address = app.server.address()
  const port = address !== null && typeof address === 'object' ? address.port : opts.port
  return {
    port,
    reloadTls(material: TlsMaterial) {
      ;(app.server as unknown as TlsServer).setSecureContext(secureContextOptions(material))
    },
    async close() {
      await app.close()
    },
  }
}
