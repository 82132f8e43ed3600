/**
 * The checks a JSON Schema cannot express: values that must parse (durations,
 * CIDRs, URLs, origins, regular expressions), environment variables that must
 * be set, and rules across files (a username or a key hash in two consumers).
 * Runs on the defaults-applied documents, also on ones that failed the schema,
 * so one run lists every problem; every check guards its own types. Pure: the
 * environment is passed in.
 */

import { parseIpRange } from '../shared/ip-range.js'
import { TLS12_CIPHERS } from '../shared/tls-suites.js'
import { isTimeZone } from '../shared/trisul-time.js'
import { parseDuration } from './duration.js'
import { checkPattern } from './pattern-check.js'
import { parseHostPort, redisUrlProblem } from './redis-url.js'
import { CONSUMER_NAME_PATTERN } from './schema.js'
import { formatPath, type PathSegment } from './schema-errors.js'

/** Collects `file: path: message` problems. */
export interface ProblemSink {
  add(file: string, path: readonly PathSegment[] | string, message: string): void
}

export interface GatewayDoc {
  readonly file: string
  readonly data: unknown
}

export interface ConsumerDoc {
  readonly file: string
  readonly name: string
  readonly data: unknown
}

type Env = Readonly<Record<string, string | undefined>>

/** Names that would collide with the metric labels the gateway uses itself. */
const RESERVED_CONSUMER_NAMES = new Set(['unknown'])
const CONSUMER_NAME_RE = new RegExp(CONSUMER_NAME_PATTERN)

function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null
}

function strings(v: unknown): Array<[number, string]> {
  if (!Array.isArray(v)) return []
  const out: Array<[number, string]> = []
  v.forEach((item, i) => {
    if (typeof item === 'string') out.push([i, item])
  })
  return out
}

function checkWindow(sink: ProblemSink, file: string, path: PathSegment[], limit: unknown): void {
  const o = obj(limit)
  if (!o || !Object.hasOwn(o, 'timeWindow')) return
  const parsed = parseDuration(o.timeWindow)
  if (!parsed.ok) sink.add(file, [...path, 'timeWindow'], parsed.message)
}

function checkEnv(sink: ProblemSink, file: string, path: PathSegment[], name: unknown, env: Env): void {
  if (typeof name !== 'string' || name === '') return
  const value = env[name]
  if (value === undefined || value === '') {
    sink.add(file, path, `environment variable ${name} is not set (or is empty)`)
  }
}

function checkRanges(sink: ProblemSink, file: string, path: PathSegment[], list: unknown): void {
  for (const [i, text] of strings(list)) {
    if (!parseIpRange(text)) {
      sink.add(file, [...path, i], `${JSON.stringify(text)} is not an IPv4/IPv6 address or CIDR`)
    }
  }
}

function checkUpstreamUrl(sink: ProblemSink, file: string, value: unknown): void {
  if (typeof value !== 'string') return
  let url: URL
  try {
    url = new URL(value)
  } catch {
    sink.add(file, 'upstream.url', `${JSON.stringify(value)} is not a URL`)
    return
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    sink.add(file, 'upstream.url', 'must be an http: or https: URL')
  }
  if (url.username !== '' || url.password !== '') {
    // Never echo the value: it holds a credential.
    sink.add(file, 'upstream.url', 'must not contain credentials (tokens belong in environment variables)')
  }
  if (url.search !== '' || url.hash !== '') {
    sink.add(file, 'upstream.url', 'must not have a query or fragment')
  }
}

function checkOrigins(sink: ProblemSink, file: string, list: unknown): void {
  for (const [i, text] of strings(list)) {
    if (text === '*') continue
    let origin: string | null = null
    try {
      origin = new URL(text).origin
    } catch {
      origin = null
    }
    // Browsers send `Origin: scheme://host[:port]`; anything else (a path, a
    // trailing slash, a default port) would never match.
    if (origin === null || origin === 'null' || origin !== text) {
      const hint = origin && origin !== 'null' ? ` (did you mean ${JSON.stringify(origin)}?)` : ''
      sink.add(
        file,
        ['cors', 'origins', i],
        `${JSON.stringify(text)} is not an origin scheme://host[:port]${hint}`,
      )
    }
  }
}

/** `auth.jwt.issuers`: each `iss` once; no `none` nor HMAC, whose "secret" would be a public key (SPEC 16). */
function checkJwtIssuers(sink: ProblemSink, file: string, issuers: unknown): void {
  if (!Array.isArray(issuers)) return
  const seen = new Set<string>()
  issuers.forEach((raw, i) => {
    const issuer = obj(raw)
    if (!issuer) return
    if (typeof issuer.issuer === 'string') {
      if (seen.has(issuer.issuer))
        sink.add(file, ['auth', 'jwt', 'issuers', i, 'issuer'], 'this issuer is already listed')
      seen.add(issuer.issuer)
    }
    const sources = ['jwksUrl', 'discoveryUrl', 'publicKeyFile'].filter((k) => typeof issuer[k] === 'string')
    if (sources.length !== 1)
      sink.add(
        file,
        ['auth', 'jwt', 'issuers', i],
        `needs exactly one of jwksUrl, discoveryUrl, publicKeyFile${sources.length > 1 ? ` (has ${sources.join(', ')})` : ''}`,
      )
    for (const [j, alg] of strings(issuer.algorithms)) {
      if (alg === 'none' || alg.startsWith('HS'))
        sink.add(
          file,
          ['auth', 'jwt', 'issuers', i, 'algorithms', j],
          `${alg} is refused: only asymmetric algorithms (RS*, PS*, ES*, EdDSA) can be trusted from an identity provider`,
        )
    }
  })
}

/** Checks gateway.yaml (defaults applied). */
export function crossCheckGateway(sink: ProblemSink, doc: GatewayDoc, env: Env): void {
  const g = obj(doc.data)
  if (!g) return
  checkRanges(sink, doc.file, ['server', 'trustedAddresses'], obj(g.server)?.trustedAddresses)
  const ciphers = obj(obj(g.server)?.tls)?.ciphers
  for (const [i, suite] of strings(ciphers)) {
    if (!TLS12_CIPHERS.includes(suite))
      sink.add(
        doc.file,
        ['server', 'tls', 'ciphers', i],
        `${JSON.stringify(suite)} is not an ECDHE + AEAD suite the gateway offers (${TLS12_CIPHERS.join(', ')})`,
      )
  }
  const upstream = obj(g.upstream)
  if (upstream) checkUpstreamUrl(sink, doc.file, upstream.url)
  if (typeof upstream?.timeZone === 'string' && !isTimeZone(upstream.timeZone)) {
    sink.add(
      doc.file,
      ['upstream', 'timeZone'],
      `not a time zone this system knows: ${JSON.stringify(upstream.timeZone)} (an IANA name such as Asia/Kolkata)`,
    )
  }
  // In the order of the schema's keys, so problems read top to bottom.
  checkWindow(sink, doc.file, ['auth', 'failureLimit'], obj(g.auth)?.failureLimit)
  checkJwtIssuers(sink, doc.file, obj(obj(g.auth)?.jwt)?.issuers)
  checkWindow(sink, doc.file, ['rateLimit'], g.rateLimit)
  const validation = obj(g.validation)
  for (const key of ['userIdPattern', 'phonePattern'] as const) {
    const source = validation?.[key]
    if (typeof source !== 'string') continue
    for (const message of checkPattern(source)) sink.add(doc.file, ['validation', key], message)
  }
  checkOrigins(sink, doc.file, obj(g.cors)?.origins)
  checkEnv(sink, doc.file, ['metrics', 'tokenEnv'], obj(g.metrics)?.tokenEnv, env)
  if (typeof obj(g.metrics)?.tokenEnv === 'string' && typeof obj(g.metrics)?.tokenFile === 'string')
    sink.add(doc.file, ['metrics', 'tokenFile'], 'one source for the token: tokenEnv or tokenFile, not both')
  checkRanges(sink, doc.file, ['trustProxy'], g.trustProxy)
  const redis = obj(obj(g.store)?.redis)
  if (redis) checkRedisStore(sink, doc.file, redis, env)
}

/** `store.redis`: one way to reach Redis (url, sentinels or cluster), addresses that parse, one source per secret. */
function checkRedisStore(sink: ProblemSink, file: string, redis: Record<string, unknown>, env: Env): void {
  const at = (key: string): PathSegment[] => ['store', 'redis', key]
  if (typeof redis.url === 'string') {
    const problem = redisUrlProblem(redis.url)
    if (problem) sink.add(file, at('url'), problem)
  }
  const given = (['url', 'sentinels', 'cluster'] as const).filter(
    (k) => redis[k] !== null && redis[k] !== undefined,
  )
  if (given.length > 1) {
    sink.add(file, at(given[1] as string), `cannot be used with ${given[0]}: name one way to reach Redis`)
  }
  for (const key of ['sentinels', 'cluster'] as const) {
    for (const [i, entry] of strings(redis[key])) {
      if (!parseHostPort(entry)) sink.add(file, [...at(key), i], 'must be host:port')
    }
  }
  for (const secret of ['password', 'sentinelPassword'] as const) {
    const envKey = `${secret}Env`
    const fileKey = `${secret}File`
    if (typeof redis[envKey] === 'string' && typeof redis[fileKey] === 'string') {
      sink.add(file, at(fileKey), `cannot be used with ${envKey}: name one source for the secret`)
    }
    checkEnv(sink, file, at(envKey), redis[envKey], env)
  }
}

/** Checks a consumer's name (its file stem), whatever the file holds. */
export function checkConsumerName(sink: ProblemSink, file: string, name: string): void {
  if (!CONSUMER_NAME_RE.test(name) || RESERVED_CONSUMER_NAMES.has(name)) {
    sink.add(
      file,
      '(file)',
      `consumer name ${JSON.stringify(name)} (the file stem) must match ${CONSUMER_NAME_PATTERN} and not be "unknown"; it becomes a metric label`,
    )
  }
}

/** Checks one consumer file on its own (defaults applied). */
export function crossCheckConsumer(sink: ProblemSink, doc: ConsumerDoc, env: Env): void {
  const c = obj(doc.data)
  if (!c) return
  const upstream = obj(c.upstream)
  if (Array.isArray(c.keys) && c.keys.length > 0 && c.upstream === null) {
    sink.add(
      doc.file,
      'keys',
      'a consumer with gateway keys needs upstream credentials (upstream.username, upstream.tokenEnv or tokenFile)',
    )
  }
  const hasUsername = typeof upstream?.username === 'string'
  const hasTokenEnv = typeof upstream?.tokenEnv === 'string'
  const hasTokenFile = typeof upstream?.tokenFile === 'string'
  if (
    Array.isArray(c.keys) &&
    c.keys.length > 0 &&
    upstream &&
    !(hasUsername && (hasTokenEnv || hasTokenFile))
  ) {
    sink.add(
      doc.file,
      'upstream',
      'a consumer with gateway keys needs upstream.username and upstream.tokenEnv (or tokenFile)',
    )
  }
  if (c.jwt !== null && c.jwt !== undefined && !(hasUsername && (hasTokenEnv || hasTokenFile))) {
    sink.add(
      doc.file,
      'jwt',
      'a JWT consumer needs upstream credentials (upstream.username and upstream.tokenEnv or tokenFile)',
    )
  }
  const jwt = obj(c.jwt)
  if (jwt && !Array.isArray(jwt.subjects) && !Array.isArray(jwt.clientIds))
    sink.add(doc.file, 'jwt', 'needs subjects or clientIds: which tokens of the issuer are this consumer')
  if (upstream && hasUsername && !hasTokenEnv && !hasTokenFile)
    sink.add(doc.file, ['upstream', 'tokenEnv'], 'is required with username (or tokenFile)')
  if (upstream && !hasUsername && (hasTokenEnv || hasTokenFile))
    sink.add(doc.file, ['upstream', 'username'], 'is required with tokenEnv or tokenFile')
  if (hasTokenEnv && hasTokenFile)
    sink.add(doc.file, ['upstream', 'tokenFile'], 'one source for the token: tokenEnv or tokenFile, not both')
  if (hasTokenEnv) checkEnv(sink, doc.file, ['upstream', 'tokenEnv'], upstream?.tokenEnv, env)
  const contexts = Array.isArray(upstream?.contexts) ? (upstream?.contexts as unknown[]) : null
  if (contexts && typeof upstream?.context === 'string' && !contexts.includes(upstream.context)) {
    sink.add(doc.file, ['upstream', 'context'], `must be one of upstream.contexts (${contexts.join(', ')})`)
  }
  checkWindow(sink, doc.file, ['rateLimit'], c.rateLimit)
  checkRanges(sink, doc.file, ['allowIPs'], c.allowIPs)
}

/** Rules across consumers: a username or a key hash belongs to one consumer. */
export function crossCheckConsumers(sink: ProblemSink, docs: readonly ConsumerDoc[]): void {
  const usernameOwner = new Map<string, string>()
  const keyOwner = new Map<string, string>()
  for (const doc of docs) {
    const c = obj(doc.data)
    if (!c) continue
    for (const [i, username] of strings(c.usernames)) {
      const owner = usernameOwner.get(username)
      if (owner !== undefined && owner !== doc.name) {
        sink.add(
          doc.file,
          ['usernames', i],
          `username ${JSON.stringify(username)} is already used by consumer "${owner}"`,
        )
      } else usernameOwner.set(username, doc.name)
    }
    for (const [i, key] of strings(c.keys)) {
      const owner = keyOwner.get(key)
      // Never print the hash: it identifies a credential.
      if (owner !== undefined && owner !== doc.name) {
        sink.add(doc.file, ['keys', i], `this key hash is already used by consumer "${owner}"`)
      } else keyOwner.set(key, doc.name)
    }
  }
}

/**
 * A sink that formats and de-duplicates, drops a cross-check problem on a path
 * the schema already reported, and lists problems grouped by file in the order
 * the files were noted (gateway first, then consumers by name).
 */
export class ProblemList implements ProblemSink {
  readonly #problems: Array<{ file: string; text: string }> = []
  readonly #seen = new Set<string>()
  readonly #schemaPaths = new Set<string>()
  readonly #fileRank = new Map<string, number>()

  /** Fixes the position of `file`'s problems in the list. */
  noteFile(file: string): void {
    if (!this.#fileRank.has(file)) this.#fileRank.set(file, this.#fileRank.size)
  }

  add(file: string, path: readonly PathSegment[] | string, message: string): void {
    const p = typeof path === 'string' ? path : formatPath(path)
    if (this.#schemaPaths.has(`${file}\u0000${p}`)) return
    const text = `${file}: ${p}: ${message}`
    if (this.#seen.has(text)) return
    this.#seen.add(text)
    this.noteFile(file)
    this.#problems.push({ file, text })
  }

  /** A schema problem: recorded, and its path shadows later cross-checks. */
  addSchema(file: string, path: string, message: string): void {
    this.add(file, path, message)
    this.#schemaPaths.add(`${file}\u0000${path}`)
  }

  get list(): string[] {
    const rank = (file: string) => this.#fileRank.get(file) ?? Number.MAX_SAFE_INTEGER
    // Array.prototype.sort is stable: within a file, problems keep their order.
    return [...this.#problems].sort((a, b) => rank(a.file) - rank(b.file)).map((p) => p.text)
  }
}

export { formatPath }
