/**
 * The shape of a validated policy (shared/SPEC.md section 4). The JSON Schema in
 * `schema.ts` is the single source of truth for the files; these types mirror it
 * after defaults are applied. A loaded policy is deeply frozen.
 */
import type { ApiResourceName, PolicyOperation } from '../resources.js'

export type Dialect = 'v1' | 'v2'

export interface UpstreamPolicy {
  /** Base URL of the Trisul server. Default `http://127.0.0.1:3000`; `--upstream` / `UPSTREAM_URL` override it. */
  readonly url: string
  /**
   * True when `gateway.yaml` sets `upstream.url` itself; false when `url` is the
   * built-in default. `serve` with no `--upstream`/`UPSTREAM_URL` and
   * `urlFromPolicy: false` may start the embedded emulator (SPEC 6).
   */
  readonly urlFromPolicy: boolean
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
  /** Extra CA (PEM file) for an https upstream, resolved to an absolute path (relative to the policy directory) at load. Default null. */
  readonly caFile: string | null
  /** Largest listing accepted from the upstream, in bytes; past it 502 `IPDR_GW_UPSTREAM_TOO_LARGE`. Default 2147483648. */
  readonly maxListingBytes: number
  /** IANA zone of Trisul's `DD-MM-YYYY HH:MM:SS` times. Default `Asia/Kolkata`. */
  readonly timeZone: string
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
  /** Customer fields a create or replace must carry, non-empty (SPEC 17). Default `[UserID, Name]`. */
  readonly requiredFields: readonly string[]
}

export interface GatewayPolicy {
  readonly upstream: UpstreamPolicy
  readonly auth: {
    readonly bodyCredentials: boolean
    /** Failed authentications (401 responses) allowed per client address per window; `max: 0` turns the limiter off. Default 10 per minute. */
    readonly failureLimit: RateLimitPolicy
    /** Seconds a Trisul token Trisul accepted stays proven (not charged to, nor refused by, an address block). Default 600. */
    readonly knownGoodSeconds: number
    /** JWT consumers (SPEC 16): the identity providers whose tokens are trusted. Default: none. */
    readonly jwt: { readonly issuers: readonly JwtIssuerPolicy[] }
  }
  readonly cache: {
    readonly ttlSeconds: number
    readonly staleIfErrorSeconds: number
    readonly maxBytes: number
    /** Apply a write's answer to the cached listings instead of dropping them (SPEC 19). Default true. */
    readonly applyWrites: boolean
  }
  readonly rateLimit: RateLimitPolicy
  readonly validation: ValidationPolicy
  readonly limits: {
    readonly bodyBytes: number
    /** Body bytes held at once over all requests; past it 503 before a body is read (SPEC 13). Default 268435456. */
    readonly inFlightBodyBytes: number
  }
  readonly cors: { readonly origins: readonly string[] }
  readonly metrics: {
    /** A separate listener port for `/metrics` (same host); null: served on the main port. Default null. */
    readonly port: number | null
    /** Environment variable holding the scrape bearer token (resolved into `Policy.metricsToken`); null: no token required. Default null. */
    readonly tokenEnv: string | null
    /** File holding the scrape bearer token instead (relative to the policy directory). Default null. */
    readonly tokenFile: string | null
  }
  readonly docs: {
    /** Serve Swagger UI at `/docs`. Default false. */
    readonly swaggerUi: boolean
  }
  /**
   * Addresses or CIDRs of reverse proxies whose `X-Forwarded-For` is believed
   * (Fastify's `trustProxy`); empty: the socket address is the client address.
   * Read once at start (Fastify takes it at construction): a reload that changes
   * it is logged and needs a restart. Default [].
   */
  readonly trustProxy: readonly string[]
  /** Shared state for several instances (SPEC 8). Read at start only. */
  readonly store: { readonly redis: RedisStorePolicy | null }
  /** The audit trail of writes (SPEC 11). Read at start only. */
  readonly audit: AuditPolicy
  /** Tracing (SPEC 18). Read at start. */
  readonly telemetry: {
    /** OTLP/HTTP base URL; `OTEL_EXPORTER_OTLP_ENDPOINT` overrides it. Default null: no span is made. */
    readonly otlp: { readonly endpoint: string | null }
    /** Root sampling ratio (parent-based). Default 0.01. */
    readonly sampleRatio: number
    /** Most requests recorded per second per instance, whatever is asked. Default 1000. */
    readonly maxSampledPerSecond: number
  }
  /** Static IP mappings (SPEC 17). */
  readonly mappings: {
    /** `remove`: a DELETE deletes; `expire`: it sets `endtime` to now instead. Default `remove`. */
    readonly delete: 'remove' | 'expire'
  }
  /** CRM sync jobs (SPEC 10). */
  readonly sync: SyncPolicy
  /** The client listener (SPEC 6). */
  readonly server: ServerPolicy
}

/** The client listener (SPEC 6, 13). */
export interface ServerPolicy {
  readonly tls: TlsPolicy | null
  /** Whole request (headers and body) within this; else 408 and the connection closed. Default 30000. */
  readonly requestTimeoutMs: number
  /** Headers within this. Default 10000. */
  readonly headersTimeoutMs: number
  /** An idle keep-alive connection closes after this. Default 72000. */
  readonly keepAliveTimeoutMs: number
  /** Connections one address may hold open; past it new ones are closed at once. Default 256. */
  readonly maxConnectionsPerAddress: number
  /** Addresses or CIDRs exempt from the per-address cap (a load balancer). Read at start. Default []. */
  readonly trustedAddresses: readonly string[]
}

export interface TlsPolicy {
  /** PEM certificate, resolved to an absolute path (relative to the policy directory) at load. */
  readonly certFile: string
  /** PEM private key, resolved like `certFile`. */
  readonly keyFile: string
  /** PEM CA that must have signed every client certificate; null: none asked for. Default null. */
  readonly clientCaFile: string | null
  /** TLS 1.2 suites offered, a subset of the ECDHE + AEAD default; null: the default. */
  readonly ciphers: readonly string[] | null
}

export interface SyncPolicy {
  /** Upstream writes in flight per job (1-32). Default 4. */
  readonly concurrency: number
  /** Upstream writes per second per job. Default 50. */
  readonly maxWritesPerSecond: number
  /** Largest input in bytes; past it 413. Only for a request admitted for sync. Default 67108864. */
  readonly maxBodyBytes: number
  /** The whole sync request within this; else 408. Default 300000. */
  readonly requestTimeoutMs: number
  /** Most records in one job; past it 413. Default 2000000. */
  readonly maxRecords: number
  /** Jobs per consumer planning or applying at once; past it 429. Default 2. */
  readonly maxJobs: number
}

export interface AuditPolicy {
  /** JSON-lines file, relative to the working directory; `--audit-file` / `AUDIT_FILE` override it. Default null: no audit trail. */
  readonly file: string | null
  /** Refuse (503) a write whose intent cannot be recorded. Default true. */
  readonly required: boolean
  /** fdatasync before answering. Default false. */
  readonly fsync: boolean
  /** Rotate past this size, the chain continuing in the next file. Default 104857600. */
  readonly maxBytes: number
  /** Access lines for answers that disclose subscriber data (SPEC 14). Default true. */
  readonly reads: boolean
  /** UserIDs named in an access line before only a count and digest. Default 100. */
  readonly readUserIds: number
  /** Rotated files older than this many days are deleted. Default 730. */
  readonly retainDays: number
  /** Retention deletes nothing. Default false. */
  readonly legalHold: boolean
  /** Ed25519 private key (PEM) signing checkpoints, resolved against the policy directory. Default null. */
  readonly signingKeyFile: string | null
  /** Seconds between checkpoints while lines are written. Default 60. */
  readonly checkpointSeconds: number
  /** The off-host copy: a syslog receiver. Default null. */
  readonly syslog: {
    readonly host: string
    readonly port: number
    /** Default false. */
    readonly tls: boolean
    /** Resolved against the policy directory. Default null: the system CAs. */
    readonly caFile: string | null
    /** Default 16777216. */
    readonly queueBytes: number
  } | null
}

/** The secrets of `store.redis`, read at load. */
export interface StoreSecrets {
  readonly password: string | null
  readonly sentinelPassword: string | null
}

export interface RedisStorePolicy {
  /**
   * `redis://`, `rediss://` or `redis+sentinel://` URL, maybe with a password; `--redis` / `REDIS_URL`
   * override it. Default null: `sentinels` or `cluster` when given, else `redis://127.0.0.1:6379`.
   */
  readonly url: string | null
  /** Redis Sentinel: `host:port` of each sentinel (SPEC 15). Default null. */
  readonly sentinels: readonly string[] | null
  /** The master group the sentinels watch. Default `mymaster`. */
  readonly name: string
  /** Redis Cluster: `host:port` of nodes to discover it from (SPEC 15). Default null. */
  readonly cluster: readonly string[] | null
  /** Environment variable holding the Redis password. Default null. */
  readonly passwordEnv: string | null
  /** File holding the Redis password (relative to the policy directory). Default null. */
  readonly passwordFile: string | null
  /** Environment variable holding the sentinels' password. Default null. */
  readonly sentinelPasswordEnv: string | null
  /** File holding the sentinels' password. Default null. */
  readonly sentinelPasswordFile: string | null
  /** TLS to Redis, the sentinels and the cluster nodes. Default false. */
  readonly tls: boolean
  /** Prefix of every key and channel. Default `ipdr-gateway:`. */
  readonly keyPrefix: string
  /** Longest wait for one command, in ms. Default 100. */
  readonly timeoutMs: number
  /** Largest listing shared between instances by one fill, in bytes. Default 67108864. */
  readonly shareMaxBytes: number
  /** Lease: how long cached listings may be served after the last contact with Redis, in ms. Default 2000. */
  readonly leaseMs: number
  /** Acknowledgements of invalidations by UDP to the writer, through Redis when no receipt comes. Default true. */
  readonly directAcks: boolean
}

/** An identity provider whose signed tokens identify consumers (SPEC 16). */
export interface JwtIssuerPolicy {
  /** The `iss` its tokens carry. */
  readonly issuer: string
  /** Where its key set is; exactly one of the three is given. */
  readonly jwksUrl: string | null
  /** OpenID Connect discovery document (`…/.well-known/openid-configuration`), read for `jwks_uri`. */
  readonly discoveryUrl: string | null
  /** A PEM public key, resolved against the policy directory. */
  readonly publicKeyFile: string | null
  /** Accepted `aud` values; a token must name one. */
  readonly audiences: readonly string[]
  /** Asymmetric algorithms accepted (never `none` nor HMAC). Default `[RS256, ES256, EdDSA]`. */
  readonly algorithms: readonly string[]
}

/** How a consumer is matched by a verified JWT: its issuer, and `sub` or client id, and scopes. */
export interface ConsumerJwtPolicy {
  readonly issuer: string
  /** `sub` values matched; null: not by subject. */
  readonly subjects: readonly string[] | null
  /** `azp` (else `client_id`) values matched; null: not by client id. */
  readonly clientIds: readonly string[] | null
  /** Scopes the token must all carry (`scope` or `scp`). Default none. */
  readonly scopes: readonly string[]
}

export interface ConsumerPolicy {
  /** File stem of `consumers/NAME.yaml`. */
  readonly name: string
  readonly usernames: readonly string[]
  /** Lower-case SHA-256 hex digests of the gateway keys. */
  readonly keys: readonly string[]
  /** Upstream credentials injected for gateway-key requests. */
  readonly upstream: {
    /** With `tokenEnv`: the upstream credentials of gateway-key requests. */
    readonly username: string | null
    readonly tokenEnv: string | null
    /** Instead of `tokenEnv`: a file holding the token (SPEC 16), resolved against the policy directory. */
    readonly tokenFile: string | null
    readonly context: string | null
    /** The only contexts `X-Trisul-Context` may select (SPEC 13); null: any. Default null. */
    readonly contexts: readonly string[] | null
  } | null
  /** Absent resource: no operation allowed on it. */
  readonly operations: Readonly<Partial<Record<ApiResourceName, readonly PolicyOperation[]>>>
  readonly rateLimit: RateLimitPolicy | null
  readonly redact: readonly string[]
  /** null: any client address. */
  readonly allowIPs: readonly string[] | null
  /** Matched by a verified JWT (SPEC 16); null: not a JWT consumer. */
  readonly jwt: ConsumerJwtPolicy | null
}

/** A policy ready to serve: validated, cross-checked, tokens resolved. */
export interface Policy {
  readonly gateway: GatewayPolicy
  readonly consumers: readonly ConsumerPolicy[]
  /** JWT issuer → its `publicKeyFile`'s PEM text, read at load. */
  readonly jwtPublicKeys: ReadonlyMap<string, string>
  /** Consumer name → upstream token read from its `tokenEnv` or `tokenFile` at load (never logged). */
  readonly tokens: ReadonlyMap<string, string>
  /** The `/metrics` scrape bearer token read from `gateway.metrics.tokenEnv` at load (never logged); null: none required. */
  readonly metricsToken: string | null
  /** The passwords of `store.redis` read from their `…Env` or `…File` at load (never logged). */
  readonly storeSecrets: StoreSecrets
  /** A hash of the files, for logs and metrics (which policy is in force). */
  readonly version: string
}
