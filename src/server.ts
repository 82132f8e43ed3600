/**
 * The only place the gateway listens, watches its policy and handles signals
 * (after fastify/demo's server.ts). SIGTERM/SIGINT: stop accepting, let
 * in-flight requests finish within `shutdownTimeoutMs`, exit 0. SIGHUP: reload
 * the policy.
 */
import { hostname } from 'node:os'
import type { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import type { RuntimeConfig } from './config.js'
import { startMetricsListener } from './http/routes/metrics.js'
import { loadTlsMaterial, secureContextOptions, type TlsFiles } from './http/server/tls.js'
import { LOG_REDACT_PATHS } from './logging.js'
import { createMetrics } from './metrics.js'
import { PolicyStore } from './policy/store.js'
import type { Policy } from './policy/types.js'

export interface RunServerOptions {
  readonly config: RuntimeConfig
  readonly policy: Policy
  readonly env: Readonly<Record<string, string | undefined>>
  /** Overrides the policy's upstream.url (the flag, or the embedded emulator). */
  readonly upstreamUrl?: string
  /** Runs after the gateway has closed (the embedded emulator). */
  readonly afterClose?: () => Promise<void>
  /** Install signal handlers. Default true. */
  readonly handleSignals?: boolean
  /** Swagger UI at /docs whatever the policy says (the demo). Default false. */
  readonly swaggerUi?: boolean
}

export interface RunningServer {
  readonly app: FastifyInstance
  readonly address: string
  close(): Promise<void>
  /** What SIGHUP does for TLS: the certificate and key read again; false when the new pair was refused. */
  reloadTls(): Promise<boolean>
}

export async function runServer(opts: RunServerOptions): Promise<RunningServer> {
  const { config } = opts
  const metrics = createMetrics()
  let app: FastifyInstance | null = null
  const log = {
    info: (o: object, m?: string) => app?.log.info(o, m),
    warn: (o: object, m?: string) => app?.log.warn(o, m),
    error: (o: object, m?: string) => app?.log.error(o, m),
  }
  const store = new PolicyStore({
    dir: config.policiesDir,
    env: opts.env,
    initial: opts.policy,
    logger: log,
    onReload: (result) => metrics.policyReloads.inc({ result }),
  })
  const metricsPort = config.metricsPort ?? opts.policy.gateway.metrics.port
  const metricsToken = opts.policy.metricsToken
  // The flags win over the policy's server.tls for the pair; the client CA comes from the policy.
  const tlsFiles: TlsFiles | null = config.tls
    ? {
        ...config.tls,
        clientCaFile: opts.policy.gateway.server.tls?.clientCaFile ?? null,
        ciphers: opts.policy.gateway.server.tls?.ciphers ?? null,
      }
    : opts.policy.gateway.server.tls
  // Checked before anything listens: a bad pair stops the start, naming the file.
  const tls = tlsFiles ? await loadTlsMaterial(tlsFiles) : null
  app = await buildApp({
    ...(tls ? { tls } : {}),
    policy: store,
    ...(opts.upstreamUrl ? { upstreamUrl: opts.upstreamUrl } : {}),
    ...(config.redisUrl ? { redisUrl: config.redisUrl } : {}),
    ...(config.auditFile ? { auditFile: config.auditFile } : {}),
    ...(config.otlpEndpoint ? { otlpEndpoint: config.otlpEndpoint } : {}),
    instanceName: `${hostname()}:${config.port}`,
    logger: { level: config.logLevel, redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' } },
    metrics,
    metricsToken,
    metricsOnMainPort: metricsPort === null,
    swaggerUi: opts.swaggerUi === true,
  })
  let address: string
  let metricsListener: Awaited<ReturnType<typeof startMetricsListener>> | null = null
  try {
    address = await app.listen({ host: config.host, port: config.port })
    if (metricsPort !== null) {
      metricsListener = await startMetricsListener({
        ...(tls ? { tls } : {}),
        metrics,
        host: config.host,
        port: metricsPort,
        token: metricsToken,
      })
    }
  } catch (err) {
    // A port in use must not leave half a server behind.
    store.close()
    await app.close()
    await opts.afterClose?.()
    throw err
  }
  store.watch()
  const running = app
  running.log.info(
    { address, upstream: opts.upstreamUrl ?? opts.policy.gateway.upstream.url, policy: opts.policy.version },
    'gateway listening',
  )

  /**
   * Reads the certificate and key again; the next handshakes use them, open connections keep
   * theirs. A pair that does not hold together keeps the old one, logged and counted as an
   * `invalid` reload. Resolves true when the new pair is in force.
   */
  const reloadTls = async (): Promise<boolean> => {
    if (!tlsFiles) return true
    try {
      const next = await loadTlsMaterial(tlsFiles)
      ;(running.server as unknown as TlsServer).setSecureContext(secureContextOptions(next))
      metricsListener?.reloadTls(next)
      running.log.info({ certificate: next.fingerprint, validTo: next.validTo }, 'TLS certificate reloaded')
      return true
    } catch (err) {
      metrics.policyReloads.inc({ result: 'invalid' })
      running.log.error(
        { reason: (err as Error).message },
        'TLS certificate not reloaded: keeping the current one',
      )
      return false
    }
  }
  if (tls)
    running.log.info({ certificate: tls.fingerprint, validTo: tls.validTo }, 'serving HTTPS (TLS 1.2+)')

  let closing: Promise<void> | null = null
  const close = (): Promise<void> => {
    closing ??= (async () => {
      store.close()
      const bounded = new Promise<void>((resolve) => setTimeout(resolve, config.shutdownTimeoutMs).unref())
      await Promise.race([running.close(), bounded])
      await metricsListener?.close()
      await opts.afterClose?.()
    })()
    return closing
  }

  if (opts.handleSignals !== false) {
    const onStop = (signal: string) => {
      running.log.info({ signal }, 'shutting down')
      void close().then(() => process.exit(0))
    }
    process.once('SIGTERM', onStop)
    process.once('SIGINT', onStop)
    process.on('SIGHUP', () => {
      running.log.info('SIGHUP: reloading the policy')
      void store.reload()
      void reloadTls()
    })
  }
  return { app: running, address, close, reloadTls }
}
