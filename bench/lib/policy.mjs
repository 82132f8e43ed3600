/**
 * The policy every benchmark gateway runs with: credential form 2 (Bearer +
 * X-Trisul-Username) matched by a permissive `default` consumer, rate limits
 * far above any load the bench makes, a TTL longer than a whole run (unless
 * a row turns the cache off), and a byte budget that holds every listing.
 * Written as JSON files (the loader accepts them like YAML) to a temp dir.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ALL = ['list', 'read', 'create', 'replace', 'update', 'delete']

/** High enough never to interfere: a 100 million requests per minute budget. */
export const BENCH_RATE_LIMIT = Object.freeze({ max: 100_000_000, timeWindow: '1 minute' })

/**
 * `redactedUsername`: also a consumer `redacted` for that upstream username, with both phones redacted.
 * `metered`: also a consumer `metered` for that upstream username, with its own rate limit.
 * `identities`: also a gateway-key consumer `keyed` and a JWT consumer `jwt` (subject `bench`, issuer
 * `identities.issuer` whose public key is `identities.publicKeyPem`), both sending `identities.username`
 * with `identities.token` from a token file (SPEC 16).
 * @param {{ upstreamUrl: string, ttlSeconds?: number, redisUrl?: string, redisCluster?: string[], keyPrefix?: string, rateLimit?: object, leaseMs?: number, cacheMaxBytes?: number, audit?: { file: string, fsync?: boolean, reads?: boolean, signingKeyFile?: string, syslog?: object }, sync?: object, redactedUsername?: string, metered?: { username: string, rateLimit: object } }} opts
 * @returns {string} the directory
 */
export function writeBenchPolicy({
  upstreamUrl,
  ttlSeconds = 3600,
  redisUrl,
  redisCluster,
  keyPrefix,
  rateLimit,
  leaseMs,
  cacheMaxBytes = 1024 * 1024 * 1024,
  audit,
  sync,
  redactedUsername,
  metered,
  identities,
  applyWrites = true,
}) {
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-gw-bench-policy-'))
  mkdirSync(join(dir, 'consumers'))
  const gateway = {
    upstream: { url: upstreamUrl, dialect: 'v2', defaultContext: 'default', timeoutMs: 60_000 },
    cache: { ttlSeconds, staleIfErrorSeconds: 0, maxBytes: cacheMaxBytes, applyWrites },
    rateLimit: rateLimit ?? BENCH_RATE_LIMIT,
    ...(redisUrl || redisCluster
      ? {
          store: {
            redis: {
              ...(redisCluster ? { cluster: redisCluster } : { url: redisUrl }),
              ...(keyPrefix ? { keyPrefix } : {}),
              ...(leaseMs ? { leaseMs } : {}),
            },
          },
        }
      : {}),
    ...(audit ? { audit: { ...audit, fsync: audit.fsync === true } } : {}),
    ...(sync ? { sync } : {}),
  }
  const consumer = { operations: { customers: [...ALL, 'sync'], mappings: ALL }, rateLimit: null }
  writeFileSync(join(dir, 'gateway.json'), JSON.stringify(gateway))
  writeFileSync(join(dir, 'consumers', 'default.json'), JSON.stringify(consumer))
  if (metered) {
    const doc = { ...consumer, usernames: [metered.username], rateLimit: metered.rateLimit }
    writeFileSync(join(dir, 'consumers', 'metered.json'), JSON.stringify(doc))
  }
  if (identities) {
    writeFileSync(join(dir, 'idp.pem'), identities.publicKeyPem)
    writeFileSync(join(dir, 'trisul-token'), `${identities.token}\n`)
    gateway.auth = {
      jwt: {
        issuers: [
          {
            issuer: identities.issuer,
            publicKeyFile: 'idp.pem',
            audiences: ['ipdr-gateway'],
            algorithms: ['RS256'],
          },
        ],
      },
    }
    writeFileSync(join(dir, 'gateway.json'), JSON.stringify(gateway))
    const upstream = { username: identities.username, tokenFile: 'trisul-token' }
    writeFileSync(
      join(dir, 'consumers', 'keyed.json'),
      JSON.stringify({ ...consumer, keys: [identities.keyHash], upstream }),
    )
    writeFileSync(
      join(dir, 'consumers', 'jwt.json'),
      JSON.stringify({ ...consumer, jwt: { issuer: identities.issuer, subjects: ['bench'] }, upstream }),
    )
  }
  if (redactedUsername) {
    const redacted = { ...consumer, usernames: [redactedUsername], redact: ['PhoneNumber', 'AltPhoneNumber'] }
    writeFileSync(join(dir, 'consumers', 'redacted.json'), JSON.stringify(redacted))
  }
  return dir
}
