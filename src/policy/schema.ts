/**
 * The one JSON Schema (draft 2020-12) of the policy files: the single source of
 * truth for their keys, types and defaults. `ipdr-gateway check-policies
 * --schema` prints it; the loader validates `gateway.yaml` against
 * `$defs/gateway` and each `consumers/NAME.yaml` against `$defs/consumer`, then
 * fills defaults from the `default` annotations; docs/policies.md is checked
 * against it by a test. Checks a schema cannot express live in cross-check.ts.
 */
import { API_RESOURCES, type ApiResourceName, policyOperations, RESOURCES } from '../resources.js'
import { DURATION_PATTERN } from './duration.js'

export const POLICY_SCHEMA_ID = 'urn:ipdr-gateway:policy'

/** A consumer's name is its file stem; it becomes a metric label, hence the tight grammar. */
export const CONSUMER_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,63}$'

/** Lower-case SHA-256 hex of a gateway key. */
export const KEY_HASH_PATTERN = '^[0-9a-f]{64}$'

/** A portable environment variable name. */
export const ENV_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,127}$'

/** The JWT signature algorithms a policy may allow (SPEC 16): asymmetric only. */
export const JWT_ALGORITHMS: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]

/** Fields `redact` may name: every field either resource returns. */
export function redactableFields(): string[] {
  const names = new Set<string>(['id', 'ipdr_customer_id'])
  for (const r of RESOURCES) for (const f of r.fields) names.add(f.name)
  return [...names].sort()
}

type Schema = Record<string, unknown>

const positiveInt = (description: string, defaultValue: number, maximum?: number): Schema => ({
  type: 'integer',
  minimum: 1,
  ...(maximum === undefined ? {} : { maximum }),
  default: defaultValue,
  description,
})

const timeWindow = (defaultValue: string): Schema => ({
  type: ['integer', 'string'],
  minimum: 1,
  pattern: DURATION_PATTERN,
  default: defaultValue,
  description:
    'Window length: whole milliseconds, or a number and a unit (ms, s, m, h, d or their long forms), e.g. "30 seconds", "1 minute", "2 hours", "1 day". At most 30 days.',
})

function rateLimitSchema(opts: {
  description: string
  nullable: boolean
  /** Absent: `max` is required. */
  maxDefault?: number
  maxDescription?: string
  minMax: number
  window: string
  default: unknown
}): Schema {
  return {
    type: opts.nullable ? ['object', 'null'] : 'object',
    additionalProperties: false,
    required: opts.maxDefault === undefined ? ['max'] : [],
    properties: {
      max: {
        type: 'integer',
        minimum: opts.minMax,
        maximum: 1_000_000_000,
        ...(opts.maxDefault === undefined ? {} : { default: opts.maxDefault }),
        description: opts.maxDescription ?? 'Requests allowed per window.',
      },
      timeWindow: timeWindow(opts.window),
    },
    default: opts.default,
    description: opts.description,
  }
}

const stringList = (description: string, item: Schema = { type: 'string', minLength: 1 }): Schema => ({
  type: 'array',
  items: item,
  uniqueItems: true,
  default: [],
  description,
})

/** A list of `host:port` (checked by the cross-checks), or null. */
const hostPortList = (description: string): Schema => ({
  type: ['array', 'null'],
  minItems: 1,
  uniqueItems: true,
  items: { type: 'string', minLength: 1, maxLength: 300 },
  default: null,
  description,
})

const secretEnv = (description: string): Schema => ({
  type: ['string', 'null'],
  pattern: ENV_NAME_PATTERN,
  default: null,
  description: `${description} It must be set when named. Not with the …File form. null: none.`,
})

const secretFile = (description: string): Schema => ({
  type: ['string', 'null'],
  minLength: 1,
  default: null,
  description: `${description} Relative to the policy directory; one trailing newline trimmed; re-read on reload. null: none.`,
})

/** `store.redis` (SPEC 8, 15); also what `--redis` alone gets its defaults from. */
export function redisStoreSchema(): Schema {
  return {
    type: ['object', 'null'],
    additionalProperties: false,
    default: null,
    description:
      'The Redis that instances naming the same url and keyPrefix share: rate budgets, failed-authentication counters, cache coherence and one fill for all. null: in-process state (one instance). --redis / REDIS_URL set the url. Read at start only.',
    properties: {
      url: {
        type: ['string', 'null'],
        minLength: 1,
        default: null,
        description:
          'redis://[:password@]host[:port][/db], rediss:// (TLS), or redis+sentinel://[:password@]host:port,host:port/name[/db]. null: sentinels or cluster if given, else redis://127.0.0.1:6379. Overridden by --redis / REDIS_URL. Prefer REDIS_URL for a password: the policy file is not a secret store.',
      },
      sentinels: hostPortList(
        'Redis Sentinel (SPEC 15): host:port of each sentinel; the gateway asks them for the master of `name`, follows a failover and never writes to a replica. Not with url or cluster.',
      ),
      name: {
        type: 'string',
        minLength: 1,
        maxLength: 200,
        default: 'mymaster',
        description: 'With sentinels: the name of the master group the sentinels watch.',
      },
      cluster: hostPortList(
        'Redis Cluster (SPEC 15): host:port of one or more nodes to discover the cluster from. Not with url or sentinels.',
      ),
      passwordEnv: secretEnv('The Redis password (AUTH), from this environment variable.'),
      passwordFile: secretFile(
        'The Redis password, from this file (a systemd credential, a Kubernetes secret).',
      ),
      sentinelPasswordEnv: secretEnv('The password of the sentinels, from this environment variable.'),
      sentinelPasswordFile: secretFile('The password of the sentinels, from this file.'),
      tls: {
        type: 'boolean',
        default: false,
        description:
          'TLS to Redis, the sentinels and the cluster nodes, verified against the system CAs (and NODE_EXTRA_CA_CERTS). A rediss:// url turns it on by itself.',
      },
      keyPrefix: {
        type: 'string',
        minLength: 1,
        maxLength: 64,
        pattern: '^[A-Za-z0-9._:-]+$',
        default: 'ipdr-gateway:',
        description:
          'Prefix of every key and channel; instances with the same store and keyPrefix behave as one gateway. No braces: the gateway puts its own hash tags after it (a Redis Cluster).',
      },
      timeoutMs: positiveInt(
        'Longest wait for one Redis command; past it the instance counts locally and reads through until Redis answers again.',
        100,
        10_000,
      ),
      shareMaxBytes: {
        type: 'integer',
        minimum: 0,
        maximum: 536_870_912,
        default: 67_108_864,
        description:
          'Largest listing one instance fetches for all (one fill for all); larger ones are fetched by each instance. 0: never shared.',
      },
      leaseMs: {
        type: 'integer',
        minimum: 200,
        maximum: 60_000,
        default: 1500,
        description:
          'How long an instance may serve cached listings after its last contact with Redis. A write waits at most this long for an instance that stopped answering (paused, cut off, killed).',
      },
      directAcks: {
        type: 'boolean',
        default: true,
        description:
          "Instances acknowledge invalidations to the writer by UDP, on the address each reaches Redis from (a port the system picks): one hop instead of two on every write; through Redis when the writer's receipt does not come within 5 ms. A lost datagram or an unreachable address costs time, never correctness; false: through Redis only.",
      },
    },
  }
}

function gatewaySchema(): Schema {
  return {
    type: 'object',
    additionalProperties: false,
    description: 'DIR/gateway.yaml (or gateway.json): settings of the whole gateway.',
    properties: {
      upstream: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'The Trisul server behind the gateway.',
        properties: {
          url: {
            type: 'string',
            minLength: 1,
            default: 'http://127.0.0.1:3000',
            description:
              'Base URL (http or https, no credentials, query or fragment). Overridden by --upstream / UPSTREAM_URL. When absent, `serve` without an upstream starts the embedded emulator.',
          },
          dialect: {
            enum: ['v1', 'v2'],
            default: 'v2',
            description:
              'v1: api_token + username in the body; v2: also contextname (customers) / context (mappings).',
          },
          defaultContext: {
            type: 'string',
            minLength: 1,
            maxLength: 128,
            default: 'default',
            description: 'Context used when neither X-Trisul-Context nor the consumer names one (v2).',
          },
          timeoutMs: positiveInt(
            'Whole upstream request, headers and body, in milliseconds.',
            10000,
            600_000,
          ),
          connectTimeoutMs: positiveInt('TCP (and TLS) connect timeout in milliseconds.', 3000, 600_000),
          probeIntervalSeconds: positiveInt('Interval of the readiness probe (a TCP connect).', 10, 86_400),
          normalizeErrors: {
            type: 'boolean',
            default: true,
            description:
              'Map upstream error envelopes to real status codes; false passes them through untouched.',
          },
          caFile: {
            type: ['string', 'null'],
            minLength: 1,
            default: null,
            description:
              'Extra CA certificate (PEM) for an https upstream; a relative path is relative to the policy directory. TLS verification is never skipped.',
          },
          maxListingBytes: {
            type: 'integer',
            minimum: 1024,
            maximum: 4_294_967_295,
            default: 2_147_483_648,
            description:
              'Largest listing accepted from the upstream, in bytes (2 GiB: about 13 million customers); past it 502 IPDR_GW_UPSTREAM_TOO_LARGE.',
          },
          timeZone: {
            type: 'string',
            minLength: 1,
            maxLength: 64,
            default: 'Asia/Kolkata',
            description:
              "IANA time zone of Trisul's DD-MM-YYYY HH:MM:SS times (the CSV of POST /sync/customers, the IPDR Query API).",
          },
          circuit: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description: 'Circuit breaker on connect errors and timeouts.',
            properties: {
              failures: positiveInt(
                'Consecutive connect errors or timeouts that open the circuit.',
                5,
                10_000,
              ),
              resetSeconds: positiveInt(
                'Seconds the circuit stays open before a half-open trial.',
                10,
                86_400,
              ),
            },
          },
        },
      },
      auth: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Client authentication.',
        properties: {
          bodyCredentials: {
            type: 'boolean',
            default: true,
            description: 'Accept credentials in the JSON body (credential form 4, legacy clients).',
          },
          failureLimit: rateLimitSchema({
            description:
              'Failed authentications (401 responses) allowed per client address per window; past it the address gets 429 IPDR_GW_AUTH_RATE_LIMITED until the window ends. max 0 turns the limiter off.',
            nullable: false,
            maxDefault: 10,
            maxDescription: 'Failed authentications allowed per address per window; 0 turns the limiter off.',
            minMax: 0,
            window: '1 minute',
            default: {},
          }),
          knownGoodSeconds: {
            type: 'integer',
            minimum: 0,
            maximum: 86_400,
            default: 600,
            description:
              "Seconds a Trisul token stays proven after Trisul last accepted it: requests with proven credentials (or a matching gateway key) are not charged to, nor refused by, their address's failed-authentication budget, so a guesser behind a CRM's NAT cannot lock the CRM out. 0: only gateway keys are proven.",
          },
          jwt: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description:
              "JWT consumers (SPEC 16): a Bearer token signed by one of these identity providers is matched to a consumer's `jwt` rules and gets that consumer's Trisul credentials.",
            properties: {
              issuers: {
                type: 'array',
                default: [],
                description:
                  'The identity providers trusted, one entry per `iss`, each with exactly one of jwksUrl, discoveryUrl, publicKeyFile.',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['issuer', 'audiences'],
                  properties: {
                    issuer: {
                      type: 'string',
                      minLength: 1,
                      maxLength: 1024,
                      description:
                        'The `iss` of its tokens, exactly (e.g. https://sso.isp.example/realms/crm).',
                    },
                    jwksUrl: {
                      type: 'string',
                      pattern: '^https?://',
                      description:
                        'Its JSON Web Key Set, fetched at start and kept per Cache-Control (5 min to 24 h).',
                    },
                    discoveryUrl: {
                      type: 'string',
                      pattern: '^https?://',
                      description:
                        'Its OpenID Connect discovery document (…/.well-known/openid-configuration), read for jwks_uri; its issuer must equal `issuer`.',
                    },
                    publicKeyFile: {
                      type: 'string',
                      minLength: 1,
                      description:
                        'A PEM public key instead of a key set (relative to the policy directory; re-read on reload).',
                    },
                    audiences: {
                      type: 'array',
                      minItems: 1,
                      uniqueItems: true,
                      items: { type: 'string', minLength: 1, maxLength: 1024 },
                      description: 'Accepted `aud` values: a token must name one of them.',
                    },
                    algorithms: {
                      type: 'array',
                      minItems: 1,
                      uniqueItems: true,
                      items: { type: 'string', enum: [...JWT_ALGORITHMS, 'HS256', 'HS384', 'HS512', 'none'] },
                      default: ['RS256', 'ES256', 'EdDSA'],
                      description:
                        'Asymmetric signature algorithms accepted; `none` and HMAC (HS*) are refused as policy errors: a public key must never serve as a shared secret.',
                    },
                  },
                },
              },
            },
          },
        },
      },
      cache: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Cache of listings.',
        properties: {
          ttlSeconds: {
            type: 'integer',
            minimum: 0,
            maximum: 86_400,
            default: 30,
            description: 'Seconds a cached listing is fresh; 0 disables caching.',
          },
          staleIfErrorSeconds: {
            type: 'integer',
            minimum: 0,
            maximum: 604_800,
            default: 300,
            description: 'Seconds past the TTL a listing may still be served while the upstream fails.',
          },
          maxBytes: {
            type: 'integer',
            minimum: 0,
            default: 268435456,
            description: 'Byte budget of all cached listings together.',
          },
          applyWrites: {
            type: 'boolean',
            default: true,
            description:
              "Apply each successful write's answer to the context's cached listings, on every instance, instead of dropping them (SPEC 19); false: drop them (the next read refetches).",
          },
        },
      },
      rateLimit: rateLimitSchema({
        description:
          'Default per-consumer budget, for consumers without their own rateLimit (the default consumer counts it per upstream username).',
        nullable: false,
        maxDefault: 600,
        minMax: 1,
        window: '1 minute',
        default: {},
      }),
      validation: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Rules for request bodies and the UserID path segment.',
        properties: {
          userIdPattern: {
            type: 'string',
            minLength: 2,
            maxLength: 512,
            default: '^[A-Za-z0-9._@:+-]{1,64}$',
            description:
              'Regular expression (anchored with ^…$, no nested quantifiers) every UserID must match, in the path and in bodies.',
          },
          maxFieldLength: positiveInt('Longest accepted string field, in characters.', 256, 65_536),
          email: {
            type: 'boolean',
            default: true,
            description: 'Email must look like an address when present and non-empty.',
          },
          phonePattern: {
            type: 'string',
            minLength: 2,
            maxLength: 512,
            default: '^[0-9+() -]{4,20}$',
            description:
              'Regular expression (anchored, no nested quantifiers) PhoneNumber and AltPhoneNumber must match when present and non-empty.',
          },
          requiredFields: {
            type: 'array',
            items: { enum: ['UserID', 'Name', 'Address', 'Email', 'PhoneNumber', 'AltPhoneNumber'] },
            uniqueItems: true,
            default: ['UserID', 'Name'],
            description:
              "Customer fields a create or replace (single or sync) must carry, non-empty, else 400 naming the field and nothing sent upstream (SPEC 17), e.g. DoT's CAF: [UserID, Name, Address]. UserID and Name are required by Trisul whatever this says.",
          },
        },
      },
      limits: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Request limits.',
        properties: {
          bodyBytes: positiveInt(
            'Largest accepted request body in bytes (larger: 413).',
            1048576,
            104_857_600,
          ),
          inFlightBodyBytes: positiveInt(
            "Request body bytes the gateway holds at once, summed over all requests (a declared Content-Length counts in full, a chunked body as its route's limit); past it a new body is refused with 503 and Retry-After before it is read.",
            268_435_456,
            17_179_869_184,
          ),
        },
      },
      cors: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'CORS for browser-based CRMs.',
        properties: {
          origins: stringList(
            'Allowed origins, each exactly scheme://host[:port] (no path, no trailing slash), or "*" for any. Empty: CORS off.',
          ),
        },
      },
      metrics: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'The Prometheus endpoint.',
        properties: {
          port: {
            type: ['integer', 'null'],
            minimum: 1,
            maximum: 65535,
            default: null,
            description:
              'Serve /metrics on this separate port (same host) instead of the main port; null: main port.',
          },
          tokenEnv: {
            type: ['string', 'null'],
            pattern: ENV_NAME_PATTERN,
            default: null,
            description:
              'Environment variable holding a bearer token that scrapes must send; it must be set when named. Not with tokenFile. null: no token.',
          },
          tokenFile: secretFile('The bearer token that scrapes must send, from this file (read at start).'),
        },
      },
      docs: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'API documentation.',
        properties: {
          swaggerUi: { type: 'boolean', default: false, description: 'Serve Swagger UI at /docs.' },
        },
      },
      store: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description:
          'Shared state for several instances (SPEC 8). Without store.redis every instance keeps its counters and cache to itself.',
        properties: {
          redis: redisStoreSchema(),
        },
      },
      server: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'The listener clients connect to.',
        properties: {
          requestTimeoutMs: positiveInt(
            'A request must arrive whole (headers and body) within this many ms, else 408 and the connection is closed (the sync route: sync.requestTimeoutMs).',
            30_000,
            3_600_000,
          ),
          headersTimeoutMs: positiveInt(
            'The request headers must arrive within this many ms, else 408 and the connection is closed.',
            10_000,
            600_000,
          ),
          keepAliveTimeoutMs: positiveInt(
            'An idle keep-alive connection is closed after this many ms.',
            72_000,
            3_600_000,
          ),
          maxConnectionsPerAddress: positiveInt(
            'Open connections one client address may hold; past it a new connection from that address is closed at once (addresses in trustedAddresses are exempt).',
            256,
            1_000_000,
          ),
          trustedAddresses: stringList(
            'Addresses or CIDRs (a load balancer, a reverse proxy) exempt from maxConnectionsPerAddress. Read at start only.',
          ),
          tls: {
            type: ['object', 'null'],
            additionalProperties: false,
            required: ['certFile', 'keyFile'],
            default: null,
            description:
              'HTTPS for clients, TLS 1.2 and later only (SPEC 6); paths relative to the policy directory. --tls-cert / --tls-key override the pair. SIGHUP reloads the files; the paths are read at start. null: plain HTTP.',
            properties: {
              certFile: {
                type: 'string',
                minLength: 1,
                description: 'PEM certificate (chain) the gateway presents.',
              },
              keyFile: {
                type: 'string',
                minLength: 1,
                description: 'PEM private key of the certificate (not encrypted).',
              },
              clientCaFile: {
                type: ['string', 'null'],
                minLength: 1,
                default: null,
                description:
                  'PEM CA: every client must present a certificate it signed, else the handshake fails. null: no client certificate.',
              },
              ciphers: {
                type: ['array', 'null'],
                items: { type: 'string', minLength: 1 },
                uniqueItems: true,
                minItems: 1,
                default: null,
                description:
                  'TLS 1.2 cipher suites (OpenSSL names) to offer, narrowing the default: ECDHE key exchange with AEAD ciphers only (Mozilla intermediate); a suite outside that list is a policy error. TLS 1.3 suites are as Node offers them. null: the whole default list.',
              },
            },
          },
        },
      },
      telemetry: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description:
          'Tracing (SPEC 18): W3C Trace Context always; spans exported by OTLP/HTTP when an endpoint is set. Read at start.',
        properties: {
          otlp: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description: 'Where spans go.',
            properties: {
              endpoint: {
                type: ['string', 'null'],
                pattern: '^https?://[^\\s]+$',
                default: null,
                description:
                  'OTLP/HTTP base URL of a collector (spans are POSTed to {endpoint}/v1/traces), e.g. http://127.0.0.1:4318; OTEL_EXPORTER_OTLP_ENDPOINT overrides it. null: no span is made.',
              },
            },
          },
          sampleRatio: {
            type: 'number',
            minimum: 0,
            maximum: 1,
            default: 0.01,
            description:
              "Share of new traces sampled; a client's traceparent decides for its own (parent-based).",
          },
          maxSampledPerSecond: {
            type: 'integer',
            minimum: 0,
            maximum: 1_000_000,
            default: 1000,
            description:
              "Most requests recorded per second on this instance, whatever the ratio or the clients' sampled flags say: a client that marks every request sampled cannot make the gateway record and export them all. Past it a request is traced but not recorded.",
          },
        },
      },
      mappings: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Static IP mappings (SPEC 17).',
        properties: {
          delete: {
            enum: ['remove', 'expire'],
            default: 'remove',
            description:
              'What a mapping DELETE does: remove (Trisul deletes it) or expire (the gateway sets its endtime to now instead, as Trisul advises, so who-had-this-IP answers for the past stay true).',
          },
        },
      },
      sync: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'CRM sync jobs, POST /sync/customers (SPEC 10, docs/sync.md).',
        properties: {
          concurrency: positiveInt('Upstream writes in flight per job.', 4, 32),
          maxWritesPerSecond: positiveInt('Upstream writes per second per job, to spare Trisul.', 50, 10_000),
          // No schema default: the deprecated maxInputBytes is read when this is absent (src/policy/load.ts).
          maxBodyBytes: {
            type: 'integer',
            minimum: 1,
            maximum: 1_073_741_824,
            description:
              'Largest sync input (JSON or CSV) in bytes; past it 413. Applies only to a request already admitted for sync. Default 67108864 (64 MiB, about 400,000 customers).',
          },
          maxInputBytes: {
            type: 'integer',
            minimum: 1,
            maximum: 1_073_741_824,
            description: 'Deprecated name of maxBodyBytes (read when maxBodyBytes is not given).',
          },
          requestTimeoutMs: positiveInt(
            'A sync request must arrive whole within this many ms, else 408 and the connection is closed.',
            300_000,
            3_600_000,
          ),
          maxRecords: positiveInt(
            'Most records (JSON array items or CSV rows) one sync job may carry; past it 413.',
            2_000_000,
            100_000_000,
          ),
          maxJobs: positiveInt(
            'Jobs one consumer may have planning or applying at once; past it 429.',
            2,
            100,
          ),
        },
      },
      audit: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description:
          'The audit trail of every write the gateway forwards (SPEC 11, docs/audit.md). Read at start only.',
        properties: {
          file: {
            type: ['string', 'null'],
            minLength: 1,
            maxLength: 4096,
            default: null,
            description:
              'The JSON-lines file, relative to the working directory (the shipped policy: data/audit.jsonl); --audit-file / AUDIT_FILE override it, one file per instance. null: no audit trail.',
          },
          required: {
            type: 'boolean',
            default: true,
            description:
              'A write whose intent line cannot be written is refused with 503 IPDR_GW_AUDIT_UNAVAILABLE and never sent upstream. false: it is sent anyway (counted as failed).',
          },
          fsync: {
            type: 'boolean',
            default: false,
            description:
              'Flush each write of lines to disk (fdatasync) before answering; lines written together share one flush.',
          },
          maxBytes: {
            type: 'integer',
            minimum: 65_536,
            maximum: 1_099_511_627_776,
            default: 104_857_600,
            description:
              'Rotate past this size: the file is renamed FILE.<seq of its last line, 12 digits> and the hash chain continues in a new FILE.',
          },
          reads: {
            type: 'boolean',
            default: true,
            description:
              'An access line for every answer that discloses subscriber data (SPEC 14): listings, filters, single reads, mapping lookups, query results, sync plans; cache hits included, 304s not. false: writes only.',
          },
          syslog: {
            type: ['object', 'null'],
            additionalProperties: false,
            required: ['host', 'port'],
            default: null,
            description:
              'The off-host copy (SPEC 14): every line, as it is written, to a syslog receiver (RFC 5424 over TCP, octet-counted framing). null: none.',
            properties: {
              host: {
                type: 'string',
                minLength: 1,
                maxLength: 255,
                description: 'The receiver (rsyslog imtcp, syslog-ng network()).',
              },
              port: { type: 'integer', minimum: 1, maximum: 65_535, description: 'Its TCP port.' },
              tls: {
                type: 'boolean',
                default: false,
                description: 'TLS to the receiver, verified against caFile or the system CAs.',
              },
              caFile: {
                type: ['string', 'null'],
                minLength: 1,
                default: null,
                description:
                  'PEM CA of the receiver, relative to the policy directory. null: the system CAs.',
              },
              queueBytes: {
                type: 'integer',
                minimum: 65_536,
                maximum: 1_073_741_824,
                default: 16_777_216,
                description:
                  'Lines wait in order while the receiver is away, up to this many bytes; past it the oldest are dropped (counted in ipdr_gateway_audit_shipped_total{result="dropped"}).',
              },
            },
          },
          retainDays: positiveInt(
            'Rotated files whose newest line is older than this many days are deleted (at start and after each rotation), never the current file (SPEC 14; DoT asks two years of IPDR records).',
            730,
            36_500,
          ),
          legalHold: {
            type: 'boolean',
            default: false,
            description: 'true: retention deletes nothing (an investigation, a court order).',
          },
          signingKeyFile: {
            type: ['string', 'null'],
            minLength: 1,
            default: null,
            description:
              'An Ed25519 private key (PEM; openssl genpkey -algorithm ed25519) that signs checkpoint lines (SPEC 14), relative to the policy directory. null: no checkpoint lines.',
          },
          checkpointSeconds: positiveInt(
            'A signed checkpoint line at least this often while lines are written (also first in each rotated-to file and at a clean stop); the head kept beside the file as often.',
            60,
            86_400,
          ),
          readUserIds: {
            type: 'integer',
            minimum: 0,
            maximum: 100_000,
            default: 100,
            description:
              'An access line names up to this many UserIDs (for a mapping answer, the customers of its records); past it only their count and the SHA-256 of the sorted list (userIdsDigest).',
          },
        },
      },
      trustProxy: stringList(
        'Addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed for the client address (allowIPs, the failed-authentication limiter). Empty: the socket address. Read at start only.',
      ),
    },
  }
}

function consumerSchema(): Schema {
  const operationList = (resource: ApiResourceName): Schema => ({
    type: 'array',
    items: { enum: [...policyOperations(resource)] },
    uniqueItems: true,
    description:
      resource === 'queries'
        ? 'Operations allowed on the IPDR Query API (SPEC 12); read is status and result.'
        : `Operations allowed on ${resource}; read is the gateway's single-record read.`,
  })
  return {
    type: 'object',
    additionalProperties: false,
    description: 'DIR/consumers/NAME.yaml (or NAME.json): one consumer; its name is the file stem.',
    properties: {
      usernames: stringList(
        'Upstream usernames matched for credential forms 2-4 (a username belongs to at most one consumer).',
        { type: 'string', minLength: 1, maxLength: 128 },
      ),
      keys: stringList('SHA-256 (lower-case hex) of the gateway keys matched for credential form 1.', {
        type: 'string',
        pattern: KEY_HASH_PATTERN,
      }),
      upstream: {
        type: ['object', 'null'],
        additionalProperties: false,
        default: null,
        // One without the other names no credentials.
        // username with a token source: checked across keys (src/policy/cross-check.ts).
        description:
          'Upstream credentials injected for gateway-key and JWT requests (username with tokenEnv or tokenFile, required when keys or jwt is set), the context and the contexts allowed.',
        properties: {
          username: { type: 'string', minLength: 1, maxLength: 128, description: 'Upstream username.' },
          tokenEnv: {
            type: ['string', 'null'],
            pattern: ENV_NAME_PATTERN,
            default: null,
            description:
              'Environment variable holding the upstream api_token; it must be set. Not with tokenFile.',
          },
          tokenFile: {
            type: ['string', 'null'],
            minLength: 1,
            default: null,
            description:
              'File holding the upstream api_token instead (systemd credentials, Kubernetes secrets): relative to the policy directory, one trailing newline trimmed, re-read on reload. Not with tokenEnv.',
          },
          context: {
            type: ['string', 'null'],
            minLength: 1,
            maxLength: 128,
            default: null,
            description:
              "Context for this consumer's requests (v2); null: the gateway's upstream.defaultContext.",
          },
          contexts: {
            type: ['array', 'null'],
            items: { type: 'string', minLength: 1, maxLength: 128 },
            uniqueItems: true,
            minItems: 1,
            default: null,
            description:
              "The only contexts X-Trisul-Context may select for this consumer (else 403 IPDR_GW_CONTEXT_FORBIDDEN); the consumer's context (or the default context) must be among them. null: any context its Trisul user may reach.",
          },
        },
      },
      operations: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Allowed operations per resource; an absent resource allows nothing.',
        properties: Object.fromEntries(API_RESOURCES.map((r) => [r, operationList(r)])),
      },
      rateLimit: rateLimitSchema({
        description:
          "This consumer's budget, shared by all its credentials (the default consumer: per upstream username). null: the gateway's rateLimit.",
        nullable: true,
        minMax: 1,
        window: '1 minute',
        default: null,
      }),
      redact: stringList('Fields replaced by "***" in every response (listings, single reads, writes).', {
        enum: redactableFields(),
      }),
      allowIPs: {
        type: ['array', 'null'],
        items: { type: 'string', minLength: 1 },
        uniqueItems: true,
        default: null,
        description: 'Client addresses or CIDRs (IPv4/IPv6) allowed to use this consumer; null: any address.',
      },
      jwt: {
        type: ['object', 'null'],
        additionalProperties: false,
        default: null,
        required: ['issuer'],
        description:
          'Matched by a verified JWT (SPEC 16): from `issuer` (one of auth.jwt.issuers), with a `sub` in `subjects` or a client id (`azp`, else `client_id`) in `clientIds`, carrying every scope of `scopes`. Needs upstream credentials. null: not a JWT consumer.',
        properties: {
          issuer: {
            type: 'string',
            minLength: 1,
            maxLength: 1024,
            description: 'The issuer, as in auth.jwt.issuers.',
          },
          subjects: {
            type: 'array',
            minItems: 1,
            uniqueItems: true,
            items: { type: 'string', minLength: 1, maxLength: 1024 },
            description: '`sub` values matched.',
          },
          clientIds: {
            type: 'array',
            minItems: 1,
            uniqueItems: true,
            items: { type: 'string', minLength: 1, maxLength: 1024 },
            description: 'Client ids matched (`azp`, else `client_id`): an OAuth2 client-credentials client.',
          },
          scopes: stringList('Scopes the token must all carry (`scope`, space-separated, or `scp`).', {
            type: 'string',
            minLength: 1,
            maxLength: 256,
          }),
        },
      },
    },
  }
}

/**
 * The policy schema. `$defs.gateway` describes gateway.yaml, `$defs.consumer`
 * one consumer file; the root describes the whole directory as one object
 * (`gateway` plus `consumers` keyed by name) for tools that want a single document.
 */
export function policyJsonSchema(): Record<string, unknown> {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: POLICY_SCHEMA_ID,
    title: 'ipdr-gateway policy',
    description:
      'The policy directory: gateway.yaml and consumers/NAME.yaml (or .json). Unknown keys are errors; absent keys take their default.',
    type: 'object',
    additionalProperties: false,
    properties: {
      gateway: { $ref: '#/$defs/gateway' },
      consumers: {
        type: 'object',
        propertyNames: { pattern: CONSUMER_NAME_PATTERN },
        additionalProperties: { $ref: '#/$defs/consumer' },
        description: 'Consumers by name (the file stem of consumers/NAME.yaml).',
      },
    },
    $defs: {
      gateway: gatewaySchema(),
      consumer: consumerSchema(),
    },
  }
}
