/**
 * JWT consumers (SPEC 16), against an identity provider the test starts on
 * loopback with RSA, EC and Ed25519 keys made here: each algorithm accepted
 * and the consumer's own Trisul credentials (from a token file) injected;
 * every way a token can be wrong refused before Trisul; the JWKS fetched as
 * SPEC 16 bounds it (a flood of unknown kids, rotation, the IdP down); a
 * token file changed and reloaded is the token sent.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import t, { type Test } from 'tap'
import { loadPolicy } from '../../src/policy/load.js'
import { PolicyStore } from '../../src/policy/store.js'
import { startGateway, tempDir, writePolicyDir } from '../helpers/gateway.js'
import { type SigningKey, signingKey, startIdp, type TestIdp, token } from '../helpers/jwks-server.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

const CRM_TOKEN = 'trisul-token-of-crm-0001'

interface Setup {
  readonly idp: TestIdp
  readonly keys: Record<SigningKey['alg'], SigningKey>
  readonly clock: { now: () => number; advance: (ms: number) => void }
  readonly get: (
    bearer: string,
    path?: string,
  ) => Promise<{ status: number; headers: Record<string, unknown>; body: string }>
  readonly upstreamCalls: () => { username: unknown; api_token: unknown }[]
  readonly dir: string
  readonly store: PolicyStore
}

/**
 * A policy directory trusting `issuers` (audience ipdr-gateway), with one JWT consumer per entry of
 * `consumers` (its name is its Trisul username; its token is CRM_TOKEN, from a token file), loaded.
 */
async function jwtPolicy(
  t: Test,
  issuers: Record<string, unknown>[],
  consumers: Record<string, Record<string, unknown>>,
  auth: Record<string, unknown> = {},
  gateway: Record<string, unknown> = {},
  files: Record<string, string> = {},
) {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'crm-token'), `${CRM_TOKEN}\n`)
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  writePolicyDir(dir, {
    gateway: {
      auth: { jwt: { issuers: issuers.map((i) => ({ audiences: ['ipdr-gateway'], ...i })) }, ...auth },
      ...gateway,
    },
    consumers: Object.fromEntries(
      Object.entries(consumers).map(([name, jwt]) => [
        name,
        { jwt, upstream: { username: name, tokenFile: 'crm-token' }, operations: { customers: ['list'] } },
      ]),
    ),
  })
  const loaded = await loadPolicy(dir, {})
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'))
  return { dir, policy: loaded.policy }
}

async function setup(t: Test, gateway: Record<string, unknown> = {}): Promise<Setup> {
  const keys = {
    RS256: await signingKey('RS256', 'rsa-1'),
    ES256: await signingKey('ES256', 'ec-1'),
    EdDSA: await signingKey('EdDSA', 'ed-1'),
  }
  const idp = await startIdp(t, Object.values(keys))
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const { dir, policy } = await jwtPolicy(
    t,
    [{ issuer: idp.issuer, jwksUrl: idp.jwksUrl, algorithms: ['RS256', 'ES256', 'EdDSA'] }],
    { crm: { issuer: idp.issuer, clientIds: ['crm-backend'], scopes: ['ipdr.customers'] } },
    { failureLimit: { max: 100, timeWindow: '1 minute' } },
    gateway,
  )
  const store = new PolicyStore({ dir, env: {}, initial: policy })
  let now = Date.now()
  const clock = {
    now: () => now,
    advance: (ms: number) => {
      now += ms
    },
  }
  const gw = await startGateway(t, { policy: store, upstreamUrl: upstream.url, now: clock.now })
  const get = async (bearer: string, path = '/api/ipdrcustomers') => {
    const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } })
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() }
  }
  const upstreamCalls = () =>
    upstream.requests.map((r) => ({ username: r.body?.username, api_token: r.body?.api_token }))
  return { idp, keys, clock, get, upstreamCalls, dir, store }
}

const CRM = { azp: 'crm-backend', scope: 'openid ipdr.customers' }

t.test('RS256, ES256 and EdDSA tokens are the consumer, with its own Trisul credentials', async (t) => {
  const s = await setup(t)
  for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
    const res = await s.get(await token(s.keys[alg], s.idp.issuer, CRM, s.clock.now()))
    t.equal(res.status, 200, `${alg} accepted`)
  }
  t.same(
    s.upstreamCalls()[0],
    { username: 'crm', api_token: CRM_TOKEN },
    'the token file, trailing newline trimmed',
  )
  // The second use of a token is a hit below Fastify: verified once, remembered until exp.
  const bearer = await token(s.keys.RS256, s.idp.issuer, { ...CRM, jti: 'again' }, s.clock.now())
  await s.get(bearer)
  const again = await s.get(bearer)
  t.equal(again.headers['x-cache'], 'HIT')
  t.equal(s.idp.fetches(), 1, 'one JWKS fetch for all of it')
  // A client id in client_id (no azp), and scp as a list, match too.
  const other = await token(
    s.keys.ES256,
    s.idp.issuer,
    { client_id: 'crm-backend', scp: ['ipdr.customers'] },
    s.clock.now(),
  )
  t.equal((await s.get(other)).status, 200, 'client_id and scp')
})

t.test('every wrong token is refused before Trisul', async (t) => {
  const s = await setup(t)
  const now = s.clock.now()
  const rsa = s.keys.RS256
  const stranger = await signingKey('RS256', 'rsa-1') // the same kid, another key
  const encode = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const unsigned = `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ ...CRM, iss: s.idp.issuer, aud: 'ipdr-gateway', exp: Math.floor(now / 1000) + 600 })}.`
  // Algorithm confusion: HS256 with the RSA public key's text as the shared secret.
  const confused = await new SignJWT({ ...CRM, aud: 'ipdr-gateway', iss: s.idp.issuer })
    .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
    .setIssuedAt(Math.floor(now / 1000))
    .setExpirationTime(Math.floor(now / 1000) + 600)
    .sign(new TextEncoder().encode(rsa.publicPem))
  const noExp = await new SignJWT({ ...CRM, aud: 'ipdr-gateway', iss: s.idp.issuer })
    .setProtectedHeader({ alg: 'RS256', kid: rsa.kid })
    .sign(rsa.privateKey)
  const invalid: [string, string, RegExp][] = [
    ['expired', await token(rsa, s.idp.issuer, { ...CRM, exp: Math.floor(now / 1000) - 61 }, now), /expired/],
    [
      'not yet valid',
      await token(rsa, s.idp.issuer, { ...CRM, nbf: Math.floor(now / 1000) + 120 }, now),
      /not valid yet/,
    ],
    ['wrong audience', await token(rsa, s.idp.issuer, { ...CRM, aud: 'another-api' }, now), /aud/],
    [
      'wrong issuer',
      await token(rsa, s.idp.issuer, { ...CRM, iss: 'https://evil.example' }, now),
      /trusted issuer/,
    ],
    ['no exp', noExp, /exp/],
    ['alg none', unsigned, /./],
    ['HS256 signed with the public key', confused, /algorithm not allowed/],
    ['signed by another key under a known kid', await token(stranger, s.idp.issuer, CRM, now), /signature/],
    ['not a readable JWT', 'eyJhbGciOiJSUzI1NiJ9.bm90LWpzb24.c2ln', /./],
  ]
  for (const [name, bearer, message] of invalid) {
    const res = await s.get(bearer)
    t.equal(res.status, 401, `${name}: 401`)
    t.equal(
      res.headers['www-authenticate'],
      'Bearer realm="ipdr-gateway", error="invalid_token"',
      `${name}: the challenge`,
    )
    const body = JSON.parse(res.body) as { code: string; message: string }
    t.equal(body.code, 'IPDR_GW_INVALID_TOKEN')
    t.match(body.message, message, `${name}: ${body.message}`)
  }
  // Within the 60 s skew: still valid.
  const skewed = await token(rsa, s.idp.issuer, { ...CRM, exp: Math.floor(now / 1000) - 30 }, now)
  t.equal((await s.get(skewed)).status, 200, 'expired 30 s ago: within the skew')
  const forbidden: [string, string][] = [
    ['unknown client', await token(rsa, s.idp.issuer, { azp: 'someone-else', scope: 'ipdr.customers' }, now)],
    ['a scope missing', await token(rsa, s.idp.issuer, { azp: 'crm-backend', scope: 'openid' }, now)],
  ]
  for (const [name, bearer] of forbidden) {
    const res = await s.get(bearer)
    t.equal(res.status, 403, `${name}: a valid token matching no consumer is 403`)
    t.equal(JSON.parse(res.body).code, 'IPDR_GW_NO_CONSUMER')
  }
  t.equal(s.upstreamCalls().length, 1, 'only the valid token reached Trisul')
})

t.test('failed JWTs are failed authentications: the address is blocked past the budget', async (t) => {
  const s = await setup(t, {})
  const policyDir = s.dir
  // Tighten the budget through a reload of the same directory.
  const gatewayFile = join(policyDir, 'gateway.json')
  const doc = JSON.parse((await import('node:fs')).readFileSync(gatewayFile, 'utf8'))
  doc.auth.failureLimit = { max: 3, timeWindow: '1 minute' }
  writeFileSync(gatewayFile, JSON.stringify(doc))
  t.equal((await s.store.reload()).ok, true)
  const bad = await token(s.keys.RS256, s.idp.issuer, { ...CRM, aud: 'nope' }, s.clock.now())
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await s.get(bad)).status)
  t.same(statuses, [401, 401, 401, 429, 429], 'three failures, then refused')
})

t.test(
  'unknown kids: at most one JWKS refetch per 30 s; rotation after the window; the IdP down keeps the last good keys',
  async (t) => {
    const s = await setup(t)
    await s.get(await token(s.keys.RS256, s.idp.issuer, CRM, s.clock.now()))
    t.equal(s.idp.fetches(), 1)
    // 200 tokens with unknown kids within 2 s of clock.
    const rogue = await signingKey('RS256', 'x')
    const flood = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        token({ ...rogue, kid: `rogue-${i}` }, s.idp.issuer, CRM, s.clock.now()),
      ),
    )
    let refused = 0
    for (const [i, bearer] of flood.entries()) {
      if (i === 100) s.clock.advance(1000)
      // 401, then 429 once the address has used its failed-authentication budget (100 here).
      if ([401, 429].includes((await s.get(bearer)).status)) refused++
    }
    t.equal(refused, 200, 'all refused')
    t.ok(s.idp.fetches() <= 2, `the IdP saw ${s.idp.fetches()} fetches in all (at most 2)`)

    // Rotation: a new key appears at the IdP; its tokens pass once the refetch window allows a fetch.
    const next = await signingKey('ES256', 'ec-2')
    s.idp.serve([...Object.values(s.keys), next])
    s.clock.advance(31_000)
    t.equal((await s.get(await token(next, s.idp.issuer, CRM, s.clock.now()))).status, 200, 'the rotated key')

    // The IdP goes down and the set's lifetime passes: the last good keys still verify.
    s.idp.fail(true)
    const before = s.idp.fetches()
    s.clock.advance(11 * 60_000)
    const fresh = await token(s.keys.EdDSA, s.idp.issuer, { ...CRM, jti: 'down' }, s.clock.now())
    t.equal((await s.get(fresh)).status, 200, 'verified with the last good set while the IdP is down')
    t.equal(s.idp.fetches(), before + 1, 'one refetch was tried, and failed')
  },
)

t.test('a discovery URL and a public key file work as a JWKS URL does', async (t) => {
  const ed = await signingKey('EdDSA', 'ed-file')
  const ec = await signingKey('ES256', 'ec-d')
  const idp = await startIdp(t, [ec])
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const { policy } = await jwtPolicy(
    t,
    [
      { issuer: idp.issuer, discoveryUrl: idp.discoveryUrl, algorithms: ['ES256'] },
      { issuer: 'https://file.example', publicKeyFile: 'idp.pem', algorithms: ['EdDSA'] },
    ],
    {
      a: { issuer: idp.issuer, subjects: ['svc-a'] },
      b: { issuer: 'https://file.example', subjects: ['svc-b'] },
    },
    {},
    {},
    { 'idp.pem': ed.publicPem },
  )
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const get = async (bearer: string) =>
    (await fetch(`${gw.url}/api/ipdrcustomers`, { headers: { authorization: `Bearer ${bearer}` } })).status
  t.equal(await get(await token(ec, idp.issuer, { sub: 'svc-a' })), 200, 'keys found through discovery')
  t.equal(await get(await token(ed, 'https://file.example', { sub: 'svc-b' })), 200, 'the key file')
  t.equal(
    await get(await token(ed, 'https://file.example', { sub: 'svc-a' })),
    403,
    'a subject of another consumer',
  )
  t.same(
    upstream.requests.map((r) => r.body?.username),
    ['a', 'b'],
    "each matching consumer's username",
  )
})

t.test('a token file changed and reloaded is the token sent', async (t) => {
  const s = await setup(t)
  const bearer = await token(s.keys.RS256, s.idp.issuer, CRM, s.clock.now())
  await s.get(bearer, '/api/ipdrcustomers?limit=1')
  writeFileSync(join(s.dir, 'crm-token'), 'rotated-trisul-token-0002\n')
  t.equal((await s.store.reload()).ok, true)
  s.clock.advance(31_000) // past the cache TTL: the listing is fetched again
  await s.get(bearer, '/api/ipdrcustomers?limit=1')
  t.same(
    s.upstreamCalls().map((c) => c.api_token),
    [CRM_TOKEN, 'rotated-trisul-token-0002'],
  )
})
