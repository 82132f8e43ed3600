/**
 * Runtime configuration of `ipdr-gateway serve` (shared/SPEC.md 6): flags
 * override environment variables, which override defaults. Parsed and checked
 * once, then frozen; every error names the flag or variable at fault. The policy
 * (upstream, cache, consumers …) is loaded separately from `policiesDir`.
 */
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { redisUrlProblem } from './policy/redis-url.js'

export interface RuntimeConfig {
  /** `--host` / `HOST`. Default `127.0.0.1`. */
  readonly host: string
  /** `--port` / `PORT`. Default 8080. */
  readonly port: number
  /** `--upstream` / `UPSTREAM_URL`; null: use the policy's `upstream.url` (or the embedded emulator). */
  readonly upstreamUrl: string | null
  /** `--policies` / `POLICIES_DIR`. Default: the `policies/` directory shipped with the package. */
  readonly policiesDir: string
  /** `--log-level` / `LOG_LEVEL`. Default `info`. */
  readonly logLevel: LogLevel
  /** `--metrics-port` / `METRICS_PORT`; null: the policy's `metrics.port`, else /metrics on the main port. */
  readonly metricsPort: number | null
  /** `--shutdown-timeout` / `SHUTDOWN_TIMEOUT_MS`: bound on finishing in-flight requests. Default 10000. */
  readonly shutdownTimeoutMs: number
  /** `--redis` / `REDIS_URL`: the shared store (SPEC 8); null: the policy's `store.redis`, else none. */
  readonly redisUrl: string | null
  /** `--audit-file` / `AUDIT_FILE`: this instance's audit trail (SPEC 11); null: the policy's `audit.file`. */
  readonly auditFile: string | null
  /** `--tls-cert` + `--tls-key` (`TLS_CERT_FILE` + `TLS_KEY_FILE`): HTTPS with this pair; null: the policy's `server.tls`. */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | null
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`: where spans go (SPEC 18); null: the policy's `telemetry.otlp.endpoint`. */
  readonly otlpEndpoint: string | null
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 8080
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000
export const SHIPPED_POLICIES_DIR = fileURLToPath(new URL('../policies', import.meta.url))

// A startup problem of flags and environment (exit status 2), never an HTTP answer.
export class ConfigError extends Error {
  override name = 'ConfigError'
}

function port(value: string, name: string, allowZero = true): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535 || (!allowZero && Number(value) === 0)) {
    throw new ConfigError(`${name}: must be a port number (0-65535), got ${JSON.stringify(value)}`)
  }
  return Number(value)
}

function url(value: string, name: string): string {
  let u: URL
  try {
    u = new URL(value)
  } catch {
    throw new ConfigError(`${name}: not a URL: ${JSON.stringify(value)}`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(`${name}: must be http:// or https://`)
  }
  if (u.username || u.password) throw new ConfigError(`${name}: must not carry credentials`)
  return value
}

export const SERVE_OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string' },
  upstream: { type: 'string' },
  policies: { type: 'string' },
  'log-level': { type: 'string' },
  'metrics-port': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  redis: { type: 'string' },
  'audit-file': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** Parses `serve` flags over the environment. Throws ConfigError. */
export function parseServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RuntimeConfig {
  let values: Record<string, string | boolean | undefined>
  try {
    values = parseArgs({
      args: [...argv],
      options: SERVE_OPTIONS,
      strict: true,
      allowPositionals: false,
    }).values
  } catch (err) {
    throw new ConfigError((err as Error).message)
  }
  const pick = (flag: string, envName: string): { value: string; name: string } | null => {
    const v = values[flag]
    if (typeof v === 'string') return { value: v, name: `--${flag}` }
    const e = env[envName]
    if (e !== undefined && e !== '') return { value: e, name: envName }
    return null
  }
  const host = pick('host', 'HOST')
  const p = pick('port', 'PORT')
  const up = pick('upstream', 'UPSTREAM_URL')
  const pol = pick('policies', 'POLICIES_DIR')
  const lvl = pick('log-level', 'LOG_LEVEL')
  const mp = pick('metrics-port', 'METRICS_PORT')
  const st = pick('shutdown-timeout', 'SHUTDOWN_TIMEOUT_MS')
  const rd = pick('redis', 'REDIS_URL')
  const af = pick('audit-file', 'AUDIT_FILE')
  const tc = pick('tls-cert', 'TLS_CERT_FILE')
  const tk = pick('tls-key', 'TLS_KEY_FILE')
  if ((tc === null) !== (tk === null)) {
    throw new ConfigError(
      `${(tc ?? tk)?.name}: --tls-cert and --tls-key go together (or TLS_CERT_FILE and TLS_KEY_FILE)`,
    )
  }
  // The OpenTelemetry SDKs' own variable (no flag: collectors are configured by environment).
  const otlp = env.OTEL_EXPORTER_OTLP_ENDPOINT
  const otlpEndpoint = otlp === undefined || otlp === '' ? null : url(otlp, 'OTEL_EXPORTER_OTLP_ENDPOINT')
  const redisProblem = rd ? redisUrlProblem(rd.value) : null
  if (rd && redisProblem) throw new ConfigError(`${rd.name}: ${redisProblem}`)
  if (lvl && !(LOG_LEVELS as readonly string[]).includes(lvl.value)) {
    throw new ConfigError(`${lvl.name}: must be one of ${LOG_LEVELS.join(', ')}`)
  }
  if (st && !/^\d{1,7}$/.test(st.value)) throw new ConfigError(`${st.name}: must be milliseconds`)
  return Object.freeze({
    host: host ? host.value : DEFAULT_HOST,
    port: p ? port(p.value, p.name) : DEFAULT_PORT,
    upstreamUrl: up ? url(up.value, up.name) : null,
    policiesDir: pol ? pol.value : SHIPPED_POLICIES_DIR,
    logLevel: (lvl ? lvl.value : 'info') as LogLevel,
    metricsPort: mp ? port(mp.value, mp.name, false) : null,
    shutdownTimeoutMs: st ? Number(st.value) : DEFAULT_SHUTDOWN_TIMEOUT_MS,
    redisUrl: rd ? rd.value : null,
    auditFile: af ? af.value : null,
    tls: tc && tk ? Object.freeze({ certFile: tc.value, keyFile: tk.value }) : null,
    otlpEndpoint,
  })
}
