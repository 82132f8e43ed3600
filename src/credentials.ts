/**
 * Credential resolution (shared/SPEC.md 3.1), a pure function of the request's
 * headers and body. First match wins:
 *   1. `Authorization: Bearer <gateway key>` of a policy consumer, or a JWT of a
 *      trusted issuer (SPEC 16: tried first when it has a JWT's shape);
 *   2. `Authorization: Bearer <api_token>` + `X-Trisul-Username`;
 *   3. `Authorization: Basic base64(username:api_token)`;
 *   4. `api_token` + `username` in the JSON body (unless the policy turns it off).
 * A present but malformed header never falls through to a later form: a client
 * that meant to authenticate one way gets told why it failed.
 */
import { createHash } from 'node:crypto'
import type { ErrorCode } from './errors.js'

/** Longest Authorization header accepted (a Trisul token is 32–64 characters). */
export const MAX_AUTHORIZATION_LENGTH = 4096
/** Longest username or token accepted in any form. */
export const MAX_CREDENTIAL_LENGTH = 1024
/** Context names: what Trisul accepts in a context name, bounded. */
export const CONTEXT_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/

/** The upstream identity a request acts as. Never logged. */
export interface UpstreamAuth {
  readonly username: string
  readonly token: string
  /** sha256 of the token: cache keys never hold the token itself. */
  readonly tokenHash: string
  readonly context: string
}

export type CredentialForm = 'key' | 'jwt' | 'bearer' | 'basic' | 'body'

/** What a verified JWT says about its holder (SPEC 16; verified by src/auth/jwt-verifier.ts). */
export interface JwtClaims {
  readonly issuer: string
  readonly subject: string | null
  /** `azp`, else `client_id`. */
  readonly clientId: string | null
  readonly scopes: ReadonlySet<string>
  /** Unix seconds. */
  readonly expiresAt: number
}

/** A JWT's verification: its claims, or why it was refused (a message safe to show). */
export type JwtVerdict =
  | { readonly ok: true; readonly claims: JwtClaims }
  | { readonly ok: false; readonly message: string }

/** The verdict on a JWT-shaped Bearer token; undefined when it has not been verified (yet). */
export type JwtLookup = (token: string) => JwtVerdict | undefined

/** Whether a Bearer value has the shape of a signed JWT (JWS compact: three base64url parts, a JSON header). */
export function looksLikeJwt(value: string): boolean {
  return value.startsWith('eyJ') && /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(value)
}

/** The Bearer value of a request's one Authorization header when it has a JWT's shape; else null. */
export function bearerJwtOf(rawHeaders: readonly string[]): string | null {
  const values = headerValues(rawHeaders, CREDENTIAL_HEADERS).authorization
  if (values === undefined || values.length !== 1) return null
  const value = values[0] as string
  if (value.length > MAX_AUTHORIZATION_LENGTH || value.slice(0, 7).toLowerCase() !== 'bearer ') return null
  const token = value.slice(7).trim()
  return looksLikeJwt(token) ? token : null
}

export type ResolvedCredentials =
  | { ok: true; form: 'key'; keyHash: string; context: string | null }
  | { ok: true; form: 'jwt'; claims: JwtClaims; context: string | null }
  | {
      ok: true
      form: 'bearer' | 'basic' | 'body'
      username: string
      token: string
      /** sha256 hex of the token, when it was already computed (Bearer: the key lookup). */
      tokenHash?: string
      context: string | null
    }
  | { ok: false; code: ErrorCode; message: string }

export interface CredentialInput {
  /**
   * Header name (lower case) → every value the client sent for it, in order
   * (from `rawHeaders`, because Node silently drops duplicate Authorization headers).
   */
  readonly headers: Readonly<Record<string, readonly string[]>>
  /** The parsed JSON body, if any. */
  readonly body: unknown
  /** Policy `auth.bodyCredentials`. */
  readonly bodyCredentials: boolean
  /** True when the SHA-256 hex digest is a gateway key of some consumer. */
  readonly isGatewayKey: (keyHash: string) => boolean
  /**
   * With JWT issuers configured (SPEC 16): the verdict on a JWT-shaped Bearer, tried before the
   * gateway-key lookup. Absent: no Bearer is a JWT.
   */
  readonly jwt?: JwtLookup
}

const fail = (code: ErrorCode, message: string): ResolvedCredentials => ({ ok: false, code, message })

// Visible ASCII only: header values are Latin-1 on the wire, and a token with
// control characters or non-ASCII bytes is never a valid Trisul token.
const VISIBLE_ASCII = /^[\x21-\x7e]+$/
// Usernames may contain spaces inside, never control characters.
const USERNAME = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** How many recent credentials `sha256Hex` remembers the digest of. */
export const DIGEST_MEMO_SIZE = 1024
const digests = new Map<string, string>()

/**
 * SHA-256 hex of a credential (a gateway key or an upstream token). Every
 * request hashes one, and the same few clients send the same ones over and
 * over, so the digests of the last {@link DIGEST_MEMO_SIZE} distinct values are
 * remembered (the whole memo is dropped when full: bounded, and no ordering to
 * keep per lookup). The memo holds only credentials that requests presented;
 * the process held each of them while serving that request anyway.
 */
export function sha256Hex(value: string): string {
  let digest = digests.get(value)
  if (digest === undefined) {
    digest = createHash('sha256').update(value, 'utf8').digest('hex')
    if (digests.size >= DIGEST_MEMO_SIZE) digests.clear()
    digests.set(value, digest)
  }
  return digest
}

function single(headers: CredentialInput['headers'], name: string): string | null | 'duplicate' {
  const values = headers[name]
  if (!values || values.length === 0) return null
  if (values.length > 1) return 'duplicate'
  return values[0] ?? null
}

function validUsername(u: string): boolean {
  return u.length > 0 && u.length <= MAX_CREDENTIAL_LENGTH && USERNAME.test(u)
}

function validToken(t: string): boolean {
  return t.length > 0 && t.length <= MAX_CREDENTIAL_LENGTH && VISIBLE_ASCII.test(t)
}

/** Context from `X-Trisul-Context`; undefined when absent, null when invalid. */
function headerContext(headers: CredentialInput['headers']): string | undefined | null {
  const v = single(headers, 'x-trisul-context')
  if (v === null) return undefined
  if (v === 'duplicate' || !CONTEXT_PATTERN.test(v)) return null
  return v
}

export function resolveCredentials(input: CredentialInput): ResolvedCredentials {
  const { headers } = input
  const context = headerContext(headers)
  if (context === null) {
    return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'X-Trisul-Context must be one context name')
  }
  const auth = single(headers, 'authorization')
  if (auth === 'duplicate') return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'More than one Authorization header')
  if (auth !== null) return fromAuthorization(auth, headers, input, context ?? null)
  return fromBody(input, context ?? null)
}

function fromAuthorization(
  auth: string,
  headers: CredentialInput['headers'],
  input: CredentialInput,
  context: string | null,
): ResolvedCredentials {
  if (auth.length > MAX_AUTHORIZATION_LENGTH) {
    return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Authorization header too long')
  }
  const space = auth.indexOf(' ')
  const scheme = (space === -1 ? auth : auth.slice(0, space)).toLowerCase()
  const param = space === -1 ? '' : auth.slice(space + 1).trim()
  if (scheme === 'bearer') {
    // A JWT may be longer than a Trisul token: up to the header's own bound.
    if (input.jwt !== undefined && looksLikeJwt(param)) {
      const verdict = input.jwt(param)
      if (verdict === undefined) return fail('IPDR_GW_INVALID_TOKEN', 'The token has not been verified')
      if (!verdict.ok) return fail('IPDR_GW_INVALID_TOKEN', verdict.message)
      return { ok: true, form: 'jwt', claims: verdict.claims, context }
    }
    if (!validToken(param)) return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Malformed Bearer credentials')
    const keyHash = sha256Hex(param)
    if (input.isGatewayKey(keyHash)) return { ok: true, form: 'key', keyHash, context }
    const username = single(headers, 'x-trisul-username')
    if (username === 'duplicate') {
      return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'More than one X-Trisul-Username header')
    }
    if (username === null) {
      return fail(
        'IPDR_GW_MALFORMED_CREDENTIALS',
        'Unknown gateway key; an upstream API token needs X-Trisul-Username',
      )
    }
    if (!validUsername(username)) return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Malformed X-Trisul-Username')
    return { ok: true, form: 'bearer', username, token: param, tokenHash: keyHash, context }
  }
  if (scheme === 'basic') {
    if (!BASE64.test(param) || param.length === 0) {
      return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Malformed Basic credentials')
    }
    let decoded: string
    try {
      decoded = utf8.decode(Buffer.from(param, 'base64'))
    } catch {
      return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Basic credentials are not UTF-8')
    }
    const colon = decoded.indexOf(':')
    if (colon === -1)
      return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Basic credentials need username:api_token')
    const username = decoded.slice(0, colon)
    const token = decoded.slice(colon + 1)
    if (!validUsername(username) || !validToken(token)) {
      return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Malformed Basic credentials')
    }
    return { ok: true, form: 'basic', username, token, context }
  }
  return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Unsupported authorization scheme; use Bearer or Basic')
}

function fromBody(input: CredentialInput, context: string | null): ResolvedCredentials {
  const body = input.body
  const hasBodyCreds =
    typeof body === 'object' &&
    body !== null &&
    !Array.isArray(body) &&
    ('api_token' in body || 'username' in body)
  if (!hasBodyCreds) return fail('IPDR_GW_MISSING_CREDENTIALS', 'Credentials are required')
  if (!input.bodyCredentials) {
    return fail(
      'IPDR_GW_BODY_CREDENTIALS_DISABLED',
      'Credentials in the request body are not accepted; use the Authorization header',
    )
  }
  const { api_token: token, username } = body as Record<string, unknown>
  if (
    typeof token !== 'string' ||
    typeof username !== 'string' ||
    !validToken(token) ||
    !validUsername(username)
  ) {
    return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Malformed body credentials')
  }
  let ctx = context
  if (ctx === null) {
    // Legacy clients name the context in the body, under either dialect's name.
    const b = body as Record<string, unknown>
    const bodyCtx = b.contextname ?? b.context
    if (bodyCtx !== undefined) {
      if (typeof bodyCtx !== 'string' || !CONTEXT_PATTERN.test(bodyCtx)) {
        return fail('IPDR_GW_MALFORMED_CREDENTIALS', 'Malformed context in body')
      }
      ctx = bodyCtx
    }
  }
  return { ok: true, form: 'body', username, token, context: ctx }
}

/**
 * Every value of each header, from Node's `rawHeaders` (which keeps the
 * duplicates that `headers` merges or drops).
 */
export function headerValues(
  rawHeaders: readonly string[],
  names: readonly string[],
): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase()
    if (names.includes(name)) {
      const list = out[name] ?? []
      list.push(rawHeaders[i + 1] as string)
      out[name] = list
    }
  }
  return out
}

export const CREDENTIAL_HEADERS = ['authorization', 'x-trisul-username', 'x-trisul-context'] as const
