/**
 * JWT consumers (SPEC 16): a Bearer token signed by one of the policy's
 * identity providers, checked with panva/jose — signature, `iss`, `aud`,
 * `exp` (required) and `nbf` with 60 s of skew, the algorithms each issuer
 * allows (never `none` nor HMAC: the policy refuses them, and jose refuses an
 * algorithm the key's type cannot have, so a public key can never serve as an
 * HMAC secret).
 *
 * Keys: a JWKS fetched at start (or at first use), kept per its
 * `Cache-Control` max-age bounded to [5 min, 24 h]; a token whose `kid` the set
 * lacks refetches it at most once per issuer per 30 s since the last fetch
 * (single flight; the request waits for it); a set that cannot be fetched
 * leaves the last good one in use. An OIDC discovery URL is read for its
 * `jwks_uri`; a public key file is read at load (src/policy/load.ts).
 *
 * A verified token's claims are kept until its `exp` (bounded), so a client
 * that sends the same token again costs a map lookup (`peek`, which the hit
 * path below Fastify uses; it never waits).
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
} from 'jose'
import { LRUCache } from 'lru-cache'
import { request } from 'undici'
import type { JwtClaims, JwtVerdict } from '../credentials.js'
import type { JwtIssuerPolicy } from '../policy/types.js'

/** Skew allowed on `exp` and `nbf`, both ways (SPEC 16). */
export const CLOCK_SKEW_SECONDS = 60
/** Least time between two fetches of an issuer's JWKS for an unknown `kid`. */
export const REFETCH_INTERVAL_MS = 30_000
/** Bounds of the JWKS cache lifetime taken from `Cache-Control`. */
export const JWKS_MIN_TTL_MS = 5 * 60_000
export const JWKS_MAX_TTL_MS = 24 * 60 * 60_000
/** Verified tokens remembered. */
export const VERIFIED_TOKENS = 10_000
/** Longest wait for the identity provider. */
export const FETCH_TIMEOUT_MS = 5_000
/** Largest JWKS or discovery document read. */
const MAX_DOCUMENT_BYTES = 1 << 20

/** A JSON document and its cache lifetime, or a thrown error. */
export type FetchJson = (url: string) => Promise<{ body: unknown; maxAgeMs: number | null }>

export interface JwtVerifierOptions {
  /** Reads a JWKS or discovery document. Default: undici, 5 s, at most 1 MiB. */
  readonly fetchJson?: FetchJson
  /** Milliseconds clock. Default `Date.now`. */
  readonly now?: () => number
  /** Where a fetch that failed is reported (the last good set stays in use). */
  readonly onFetchError?: (issuer: string, err: unknown) => void
}

type KeyGetter = Parameters<typeof jwtVerify>[1]

/** One issuer's keys: a JWKS kept fresh, or a fixed public key. */
class IssuerKeys {
  readonly policy: JwtIssuerPolicy
  readonly #fetchJson: FetchJson
  readonly #now: () => number
  readonly #onError: (err: unknown) => void
  #set: ReturnType<typeof createLocalJWKSet> | null = null
  #fixed: KeyObject | null = null
  #fetchedAt = Number.NEGATIVE_INFINITY
  #expiresAt = Number.NEGATIVE_INFINITY
  #inFlight: Promise<void> | null = null
  #jwksUrl: string | null

  constructor(policy: JwtIssuerPolicy, publicKeyPem: string | null, deps: Required<JwtVerifierOptions>) {
    this.policy = policy
    this.#fetchJson = deps.fetchJson
    this.#now = deps.now
    this.#onError = (err) => deps.onFetchError(policy.issuer, err)
    this.#jwksUrl = policy.jwksUrl
    if (publicKeyPem !== null) this.#fixed = createPublicKey(publicKeyPem)
  }

  /** Starts the first fetch (at start, so the first request does not wait for the IdP). */
  prime(): void {
    if (this.#fixed === null) void this.#refresh().catch(() => undefined)
  }

  /** The key getter of one verification: the set as it is, refetched once on an unknown `kid`. */
  getter(): KeyGetter {
    if (this.#fixed !== null) return this.#fixed
    return async (header, token) => {
      if (this.#set === null || this.#now() >= this.#expiresAt) await this.#refreshIfAllowed()
      const set = this.#set
      if (set === null) throw new errors.JWKSNoMatchingKey()
      try {
        return await set(header, token)
      } catch (err) {
        if (!(err instanceof errors.JWKSNoMatchingKey)) throw err
        // A key the set lacks: rotation at the IdP, or a forged kid. One refetch per 30 s at most.
        const next = (await this.#refreshIfAllowed()) ? this.#set : null
        if (next === null) throw err
        return next(header, token)
      }
    }
  }

  /** Refetches unless one ran within the refetch interval (waits for one in flight); true when a newer set may be in place. */
  async #refreshIfAllowed(): Promise<boolean> {
    if (this.#inFlight !== null) {
      await this.#inFlight.catch(() => undefined)
      return true
    }
    if (this.#now() - this.#fetchedAt < REFETCH_INTERVAL_MS) return false
    await this.#refresh().catch(() => undefined)
    return true
  }

  #refresh(): Promise<void> {
    this.#inFlight ??= this.#fetch().finally(() => {
      this.#inFlight = null
    })
    return this.#inFlight
  }

  async #fetch(): Promise<void> {
    this.#fetchedAt = this.#now()
    try {
      if (this.#jwksUrl === null && this.policy.discoveryUrl !== null) {
        const { body } = await this.#fetchJson(this.policy.discoveryUrl)
        const doc = body as { jwks_uri?: unknown; issuer?: unknown }
        if (doc.issuer !== this.policy.issuer)
          throw new Error(`the discovery document names issuer ${JSON.stringify(doc.issuer)}`)
        if (typeof doc.jwks_uri !== 'string') throw new Error('the discovery document has no jwks_uri')
        this.#jwksUrl = doc.jwks_uri
      }
      const { body, maxAgeMs } = await this.#fetchJson(this.#jwksUrl as string)
      const keys = (body as { keys?: unknown }).keys
      if (!Array.isArray(keys)) throw new Error('the JWKS has no keys array')
      this.#set = createLocalJWKSet(body as JSONWebKeySet)
      const ttl = Math.min(JWKS_MAX_TTL_MS, Math.max(JWKS_MIN_TTL_MS, maxAgeMs ?? JWKS_MIN_TTL_MS))
      this.#expiresAt = this.#now() + ttl
    } catch (err) {
      // The last good set stays; the next try comes after the refetch interval.
      this.#onError(err)
      throw err
    }
  }
}

/** Verifies tokens against the issuers of the policy in force; `configure` on each load and reload. */
export class JwtVerifier {
  readonly #deps: Required<JwtVerifierOptions>
  #issuers = new Map<string, IssuerKeys>()
  readonly #verified: LRUCache<string, JwtClaims>

  constructor(opts: JwtVerifierOptions = {}) {
    this.#deps = {
      fetchJson: opts.fetchJson ?? fetchJsonDocument,
      now: opts.now ?? Date.now,
      onFetchError: opts.onFetchError ?? (() => undefined),
    }
    this.#verified = new LRUCache({ max: VERIFIED_TOKENS })
  }

  /** Whether any issuer is configured: without one, no Bearer is tried as a JWT. */
  get enabled(): boolean {
    return this.#issuers.size > 0
  }

  /**
   * The issuers of a (re)loaded policy, with their public key files read. An issuer whose settings did
   * not change keeps its fetched keys; verified tokens are forgotten (the rules may have changed).
   */
  configure(issuers: readonly JwtIssuerPolicy[], publicKeys: ReadonlyMap<string, string>): void {
    const next = new Map<string, IssuerKeys>()
    for (const policy of issuers) {
      const old = this.#issuers.get(policy.issuer)
      const pem = publicKeys.get(policy.issuer) ?? null
      if (old !== undefined && sameIssuer(old.policy, policy) && pem === null) {
        next.set(policy.issuer, old)
        continue
      }
      const keys = new IssuerKeys(policy, pem, this.#deps)
      keys.prime()
      next.set(policy.issuer, keys)
    }
    this.#issuers = next
    this.#verified.clear()
  }

  /** The verdict on `token` if it was verified and has not expired; undefined otherwise (never waits): a {@link JwtLookup}. */
  readonly lookup = (token: string): JwtVerdict | undefined => {
    const claims = this.peek(token)
    return claims === undefined ? undefined : { ok: true, claims }
  }

  /** The claims of `token` if it was verified and has not expired; undefined otherwise (never waits). */
  peek(token: string): JwtClaims | undefined {
    const claims = this.#verified.get(token)
    if (claims === undefined) return undefined
    if (this.#deps.now() / 1000 >= claims.expiresAt + CLOCK_SKEW_SECONDS) {
      this.#verified.delete(token)
      return undefined
    }
    return claims
  }

  /** Verifies `token` (signature, issuer, audience, times, algorithm); the verdict's message is safe to show. */
  async verify(token: string): Promise<JwtVerdict> {
    const known = this.peek(token)
    if (known !== undefined) return { ok: true, claims: known }
    let iss: unknown
    try {
      decodeProtectedHeader(token)
      iss = decodeJwt(token).iss
    } catch {
      return { ok: false, message: 'The bearer token is not a readable JWT' }
    }
    const keys = typeof iss === 'string' ? this.#issuers.get(iss) : undefined
    if (keys === undefined) return { ok: false, message: 'The token was not issued by a trusted issuer' }
    const policy = keys.policy
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, keys.getter(), {
        issuer: policy.issuer,
        audience: [...policy.audiences],
        algorithms: [...policy.algorithms],
        clockTolerance: CLOCK_SKEW_SECONDS,
        requiredClaims: ['exp'],
        currentDate: new Date(this.#deps.now()),
      }))
    } catch (err) {
      return { ok: false, message: verdictMessage(err) }
    }
    const claims = claimsOf(policy.issuer, payload)
    this.#verified.set(token, claims, {
      ttl: Math.max(1, (claims.expiresAt + CLOCK_SKEW_SECONDS) * 1000 - this.#deps.now()),
    })
    return { ok: true, claims }
  }
}

function sameIssuer(a: JwtIssuerPolicy, b: JwtIssuerPolicy): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

function claimsOf(issuer: string, payload: JWTPayload): JwtClaims {
  const scopes = new Set<string>()
  const scope = payload.scope
  if (typeof scope === 'string') for (const s of scope.split(' ')) if (s !== '') scopes.add(s)
  const scp = payload.scp
  if (Array.isArray(scp)) for (const s of scp) if (typeof s === 'string') scopes.add(s)
  const azp = typeof payload.azp === 'string' ? payload.azp : null
  const clientId = azp ?? (typeof payload.client_id === 'string' ? payload.client_id : null)
  return {
    issuer,
    subject: typeof payload.sub === 'string' ? payload.sub : null,
    clientId,
    scopes,
    expiresAt: payload.exp as number,
  }
}

/** What a client is told about a refused token: the check that failed, never a key or a claim's value. */
function verdictMessage(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'The token has expired'
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'The token is not valid yet'
    if (err.claim === 'aud') return 'The token is not meant for this gateway (aud)'
    if (err.claim === 'iss') return 'The token was not issued by a trusted issuer'
    if (err.claim === 'exp') return 'The token has no expiry (exp)'
    return `The token's ${err.claim} claim is not acceptable`
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'The token is signed with an algorithm not allowed'
  if (err instanceof errors.JWKSNoMatchingKey) return 'The token is signed with an unknown key'
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'The token signature is invalid'
  return 'The token is not a valid JWT'
}

/** Reads a JSON document from an identity provider: bounded in time and size; `Cache-Control: max-age` kept. */
async function fetchJsonDocument(url: string): Promise<{ body: unknown; maxAgeMs: number | null }> {
  const res = await request(url, {
    method: 'GET',
    headers: { accept: 'application/json' },
    headersTimeout: FETCH_TIMEOUT_MS,
    bodyTimeout: FETCH_TIMEOUT_MS,
    maxRedirections: 0,
  } as Parameters<typeof request>[1])
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new Error(`${url} answered ${res.statusCode}`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length
    if (size > MAX_DOCUMENT_BYTES) {
      res.body.destroy()
      throw new Error(`${url}: more than ${MAX_DOCUMENT_BYTES} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  const cacheControl = String(res.headers['cache-control'] ?? '')
  const maxAge = /(?:^|,)\s*max-age=(\d+)/i.exec(cacheControl)
  const noStore = /no-store|no-cache/i.test(cacheControl)
  return {
    body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
    maxAgeMs: noStore ? 0 : maxAge ? Number(maxAge[1]) * 1000 : null,
  }
}
