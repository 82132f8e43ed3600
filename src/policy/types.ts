/**
 * The shape of a validated policy (shared/SPEC.md section 4). The JSON Schema in
 * `schema.ts` is the single source of truth for the files; these types mirror it
 * after defaults are applied. A loaded policy is deeply frozen.
 */
import type { Operation, ResourceName } from '../resources.js'

export type Dialect = 'v1' | 'v2'

export interface UpstreamPolicy {
  /** Base URL of the Trisul server. Default `http://127.0.0.1:3000`; `--upstream` / `UPSTREAM_URL` override it. */
  readonly url: string
  /** `v1`: api_token + username; `v2`: also contextname / context. Default `v2`. */
  readonly dialect: Dialect
  /** Context used when neither the request nor the consumer names one. Default `default`. */
  readonly defaultContext: string
  /** Whole upstream request, headers and body. Default 10000. */
  readonly timeoutMs: number
  /** TCP (and TLS) connect. Default 3000. */
  readonly connectTimeoutMs: number
  /** Readiness probe interval. Default 10. */
  readonly probeIntervalSeconds: number
  /** false: pass upstream envelopes through untouched. Default true. */
  readonly normalizeErrors: boolean
  /** Extra CA (PEM file) for an https upstream. Default null. */
  readonly caFile: string | null
  readonly circuit: {
    /** Consecutive connect errors or timeouts that open the circuit. Default 5. */
    readonly failures: number
    /** Seconds before a half-open trial. Default 10. */
    readonly resetSeconds: number
  }
}

export interface RateLimitPolicy {
  readonly max: number
  /** A duration such as `"1 minute"` or milliseconds. */
  readonly timeWindow: string | number
  /** The window in milliseconds, computed at load. */
  readonly timeWindowMs: number
}

export interface ValidationPolicy {
  readonly userIdPattern: string
  readonly maxFieldLength: number
  readonly email: boolean
  readonly phonePattern: string
}

export interface GatewayPolicy {
  readonly upstream: UpstreamPolicy
  readonly auth: { readonly bodyCredentials: boolean }
  readonly cache: {
    readonly ttlSeconds: number
    readonly staleIfErrorSeconds: number
    readonly maxBytes: number
  }
  readonly rateLimit: RateLimitPolicy
  readonly validation: ValidationPolicy
  readonly limits: { readonly bodyBytes: number }
  readonly cors: { readonly origins: readonly string[] }
}

export interface ConsumerPolicy {
  /** File stem of `consumers/NAME.yaml`. */
  readonly name: string
  readonly usernames: readonly string[]
  /** Lower-case SHA-256 hex digests of the gateway keys. */
  readonly keys: readonly string[]
  /** Upstream credentials injected for gateway-key requests. */
  readonly upstream: {
    readonly username: string
    readonly tokenEnv: string
    readonly context: string | null
  } | null
  /** Absent resource: no operation allowed on it. */
  readonly operations: Readonly<Partial<Record<ResourceName, readonly Operation[]>>>
  readonly rateLimit: RateLimitPolicy | null
  readonly redact: readonly string[]
  /** null: any client address. */
  readonly allowIPs: readonly string[] | null
}

/** A policy ready to serve: validated, cross-checked, tokens resolved. */
export interface Policy {
  readonly gateway: GatewayPolicy
  readonly consumers: readonly ConsumerPolicy[]
  /** Consumer name → upstream token read from its `tokenEnv` at load (never logged). */
  readonly tokens: ReadonlyMap<string, string>
  /** A hash of the files, for logs and metrics (which policy is in force). */
  readonly version: string
}
