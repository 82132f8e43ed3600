/**
 * An identity provider for tests, on a loopback port: serves a JSON Web Key
 * Set (and an OIDC discovery document) the test changes at will, counts the
 * fetches, and can fail; signs tokens with keys made in the test (RSA, EC,
 * Ed25519), each under its own `kid`.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose'
import type { Test } from 'tap'

export interface SigningKey {
  readonly kid: string
  readonly alg: 'RS256' | 'ES256' | 'EdDSA'
  readonly privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey']
  readonly jwk: JWK
  /** SPKI PEM of the public key. */
  readonly publicPem: string
}

export async function signingKey(alg: SigningKey['alg'], kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' }
  const { createPublicKey } = await import('node:crypto')
  const publicPem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({
    type: 'spki',
    format: 'pem',
  }) as string
  return { kid, alg, privateKey, jwk, publicPem }
}

export interface TestIdp {
  readonly url: string
  readonly issuer: string
  readonly jwksUrl: string
  readonly discoveryUrl: string
  /** JWKS requests served (failed ones included). */
  fetches(): number
  /** The keys served from now on. */
  serve(keys: readonly SigningKey[]): void
  /** Answer 503 (true) or serve again (false). */
  fail(failing: boolean): void
  /** `Cache-Control` of the JWKS answers. */
  cacheControl(value: string): void
}

export async function startIdp(t: Test, keys: readonly SigningKey[]): Promise<TestIdp> {
  let served = [...keys]
  let failing = false
  let fetches = 0
  let cacheControl = 'max-age=600'
  let base = ''
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks` }))
      return
    }
    if (req.url !== '/jwks') {
      res.writeHead(404).end()
      return
    }
    fetches++
    if (failing) {
      res.writeHead(503).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': cacheControl })
    res.end(JSON.stringify({ keys: served.map((k) => k.jwk) }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return {
    url: base,
    issuer: base,
    jwksUrl: `${base}/jwks`,
    discoveryUrl: `${base}/.well-known/openid-configuration`,
    fetches: () => fetches,
    serve: (next) => {
      served = [...next]
    },
    fail: (next) => {
      failing = next
    },
    cacheControl: (value) => {
      cacheControl = value
    },
  }
}

/** A token signed by `key`: `claims` over an hour's validity from `nowMs`, for `aud` ipdr-gateway. */
export function token(
  key: SigningKey,
  issuer: string,
  claims: JWTPayload = {},
  nowMs = Date.now(),
): Promise<string> {
  const now = Math.floor(nowMs / 1000)
  return new SignJWT({
    aud: 'ipdr-gateway',
    iat: now,
    nbf: now,
    exp: now + 3600,
    ...claims,
    iss: claims.iss ?? issuer,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .sign(key.privateKey)
}
