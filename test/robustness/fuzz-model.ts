/**
 * The model behind the fuzz: fast-check generators for hostile requests
 * (paths, methods, header sets with every Authorization variant, bodies), the
 * secrets they use, a tagging upstream, and the oracle that says which
 * upstream identity a request must act as. The upstream tags every record with
 * a hash of the credentials it received, so a response can be checked against
 * the identity of the request that got it (cache isolation).
 */
import { createHash, randomBytes } from 'node:crypto'
import fc from 'fast-check'
import type { PolicySpec } from '../helpers/gateway.js'
import type { Behaviour, RecordedRequest } from '../helpers/recording-upstream.js'

const hex = () => randomBytes(8).toString('hex')

/** Every secret the fuzz uses; each is long and random, so a match in a log is never a coincidence. */
export const SECRETS = {
  tokenA: `fzta${hex()}`,
  tokenB: `fztb${hex()}`,
  decoyToken: `fztd${hex()}`,
  keyCrm: `fzkc${hex()}`,
  keyOps: `fzko${hex()}`,
  unknownKey: `fzku${hex()}`,
  crmUpstreamToken: `fzuc${hex()}`,
  opsUpstreamToken: `fzuo${hex()}`,
} as const

export const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex')
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64')

/** Usernames used by the fuzz; none may appear in /metrics (labels are consumer names). */
export const USERNAMES = ['fzalice', 'fzbob', 'fzcrmuser', 'fzopsuser'] as const
const CONSUMER_CONTEXT: Record<string, string> = { fzcrmuser: 'default', fzopsuser: 'ctx2' }

export const FUZZ_POLICY: PolicySpec = {
  gateway: {
    upstream: { timeoutMs: 10_000, connectTimeoutMs: 5000, circuit: { failures: 10000, resetSeconds: 5 } },
    auth: { failureLimit: { max: 0 } },
    rateLimit: { max: 100_000_000, timeWindow: '1 minute' },
  },
  consumers: {
    default: {
      operations: {
        customers: ['list', 'read', 'create', 'replace', 'update', 'delete'],
        mappings: ['list', 'read', 'create', 'replace', 'update', 'delete'],
      },
    },
    crm: {
      usernames: ['fzcrmuser'],
      keys: [sha256(SECRETS.keyCrm)],
      upstream: { username: 'fzcrmuser', tokenEnv: 'FZ_CRM_TOKEN', context: 'default' },
      operations: {
        customers: ['list', 'read', 'create', 'replace', 'update', 'delete'],
        mappings: ['list', 'read'],
      },
      rateLimit: { max: 100_000_000, timeWindow: '1 minute' },
      redact: ['PhoneNumber'],
    },
    ops: {
      usernames: ['fzopsuser'],
      keys: [sha256(SECRETS.keyOps)],
      upstream: { username: 'fzopsuser', tokenEnv: 'FZ_OPS_TOKEN', context: 'ctx2' },
      operations: { customers: ['list', 'read'], mappings: ['list', 'read', 'create', 'delete'] },
      rateLimit: { max: 100_000_000, timeWindow: '1 minute' },
    },
  },
  env: { FZ_CRM_TOKEN: SECRETS.crmUpstreamToken, FZ_OPS_TOKEN: SECRETS.opsUpstreamToken },
}

/** The upstream credentials a request acts as: what the upstream must receive, and its tag. */
export interface UpstreamIdentity {
  readonly username: string
  readonly token: string
  readonly context: string
}

export function tagOf(id: UpstreamIdentity): string {
  return sha256(JSON.stringify([id.username, id.token, id.context])).slice(0, 16)
}

/** The identity an upstream request carried in its body. */
export function receivedIdentity(body: Record<string, unknown> | undefined): UpstreamIdentity {
  return {
    username: String(body?.username),
    token: String(body?.api_token),
    context: String(body?.contextname ?? body?.context),
  }
}

/** A healthy upstream that tags every record it returns with the credentials it received. */
export function taggingUpstream(req: RecordedRequest): Behaviour {
  const tag = tagOf(receivedIdentity(req.body))
  const path = req.url
  if (req.method === 'GET' && path === '/api/ipdrcustomers') {
    return {
      kind: 'json',
      body: [1, 2, 3].map((i) => ({
        id: i,
        Name: `Name ${i}`,
        Address: `Street ${i}`,
        Email: `u${i}@example.com`,
        PhoneNumber: `980000000${i}`,
        AltPhoneNumber: '',
        UserID: `U${i}`,
        tag,
      })),
    }
  }
  if (req.method === 'GET' && path === '/api/ipdrcustomers_mapping') {
    return {
      kind: 'json',
      body: [
        {
          id: 1,
          ipdr_customer_id: 1,
          ipsubnet: '10.0.0.0/24',
          starttime: 0,
          endtime: null,
          terminalid: 't',
          tag,
        },
        {
          id: 2,
          ipdr_customer_id: 2,
          ipsubnet: '2001:db8::/64',
          starttime: 5,
          endtime: 50,
          terminalid: 'u',
          tag,
        },
      ],
    }
  }
  if (req.method !== 'GET') {
    const { api_token: _t, username: _u, contextname: _c, context: _x, ...fields } = req.body ?? {}
    // A write's answer is the context's record, not the identity's view: SPEC 19 applies it to every
    // identity's cached listing of the context, so it carries no identity tag (listings keep theirs).
    return { kind: 'json', body: { id: 9, ...fields } }
  }
  return { kind: 'json', body: { status: 'Error', message: 'unexpected request' } }
}

// ---------------------------------------------------------------- identities

/**
 * How a request presents credentials. `valid` ones resolve to an upstream
 * identity (the oracle); the others must never reach the upstream.
 */
export type Presented =
  | { kind: 'key'; consumer: 'crm' | 'ops'; scheme: string; context: string | null; extraUsername: boolean }
  | { kind: 'bearer'; username: string; token: string; scheme: string; context: string | null }
  | { kind: 'basic'; username: string; token: string; scheme: string; context: string | null }
  | {
      kind: 'body'
      username: string
      token: string
      context: string | null
      via: 'header' | 'contextname' | 'context'
    }
  | { kind: 'none' }
  | { kind: 'invalid'; headers: Record<string, string>; body?: Record<string, unknown> }

const contextArb = fc.option(fc.constantFrom('default', 'ctx2', 'ctx3', 'ctx.A-b_9'), { nil: null })
const tokenArb = fc.constantFrom(SECRETS.tokenA, SECRETS.tokenB)
const usernameArb = fc.constantFrom(...USERNAMES)
const bearerScheme = fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Bearer ')
const basicScheme = fc.constantFrom('Basic', 'basic', 'BASIC')

const invalidBasicPayloads: string[] = [
  '%%%',
  'abc',
  '====',
  b64('nocolon'),
  b64(`:${SECRETS.tokenA}`),
  b64('fzalice:'),
  b64(`fzalice:${SECRETS.tokenA} with space`),
  b64(Buffer.from([0xff, 0xfe, 0x3a, 0x41, 0x42])),
  b64(`fzalice\u0000:${SECRETS.tokenA}`),
  `${b64(`fzalice:${SECRETS.tokenA}`)}!`,
  `${b64(`fzalice:${SECRETS.tokenA}`)} ${b64('x:y')}`,
]

const invalidArb: fc.Arbitrary<Presented> = fc.oneof(
  fc
    .constantFrom(...invalidBasicPayloads)
    .map((p): Presented => ({ kind: 'invalid', headers: { authorization: `Basic ${p}` } })),
  fc
    .constantFrom(
      'Bearer',
      'Bearer ',
      'Bearer \t',
      `Bearer ${SECRETS.tokenA} extra`,
      `Bearer ${'x'.repeat(5000)}`,
    )
    .map(
      (a): Presented => ({ kind: 'invalid', headers: { authorization: a, 'x-trisul-username': 'fzalice' } }),
    ),
  // A token that is no gateway key, without X-Trisul-Username.
  fc.constant<Presented>({ kind: 'invalid', headers: { authorization: `Bearer ${SECRETS.unknownKey}` } }),
  // A bad username or context with otherwise good credentials.
  fc.constantFrom(' fzalice', 'fzalice ', `${'u'.repeat(1100)}`, 'fz\u00e9').map(
    (u): Presented => ({
      kind: 'invalid',
      headers: { authorization: `Bearer ${SECRETS.tokenA}`, 'x-trisul-username': u },
    }),
  ),
  fc.constantFrom('a b', '../x', 'x'.repeat(65), '', 'ctx/2', 'ctx%2F', '\u00e9t\u00e9', 'default,ctx2').map(
    (c): Presented => ({
      kind: 'invalid',
      headers: { authorization: `Bearer ${SECRETS.keyCrm}`, 'x-trisul-context': c },
    }),
  ),
  // Unknown schemes and garbage.
  fc
    .string({ maxLength: 40, unit: fc.constantFrom(...'ABCdef0123 =+/:.-_'.split('')) })
    .map((s): Presented => ({ kind: 'invalid', headers: { authorization: `X${s}` } })),
  fc
    .constantFrom(
      'Token abc',
      'Digest username="a"',
      'Negotiate YII=',
      'Bearer:abc',
      'Basic:abc',
      'AWS4-HMAC-SHA256 x',
    )
    .map((a): Presented => ({ kind: 'invalid', headers: { authorization: a } })),
  // Body credentials of the wrong types or incomplete.
  fc
    .constantFrom<Record<string, unknown>>(
      { api_token: 5, username: 'fzalice' },
      { api_token: SECRETS.tokenA },
      { username: 'fzalice' },
      { api_token: [SECRETS.tokenA], username: 'fzalice' },
      { api_token: SECRETS.tokenA, username: { $ne: null } },
      { api_token: SECRETS.tokenA, username: 'fzalice', contextname: 'a b' },
      { api_token: SECRETS.tokenA, username: 'fzalice', context: 7 },
      { api_token: '', username: 'fzalice' },
    )
    .map((body): Presented => ({ kind: 'invalid', headers: {}, body })),
)

export const presentedArb: fc.Arbitrary<Presented> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc
      .record({
        consumer: fc.constantFrom('crm' as const, 'ops' as const),
        scheme: bearerScheme,
        context: contextArb,
        extraUsername: fc.boolean(),
      })
      .map((r): Presented => ({ kind: 'key', ...r })),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({ username: usernameArb, token: tokenArb, scheme: bearerScheme, context: contextArb })
      .map((r): Presented => ({ kind: 'bearer', ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ username: usernameArb, token: tokenArb, scheme: basicScheme, context: contextArb })
      .map((r): Presented => ({ kind: 'basic', ...r })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        username: usernameArb,
        token: tokenArb,
        context: contextArb,
        via: fc.constantFrom('header' as const, 'contextname' as const, 'context' as const),
      })
      .map((r): Presented => ({ kind: 'body', ...r })),
  },
  { weight: 1, arbitrary: fc.constant<Presented>({ kind: 'none' }) },
  { weight: 3, arbitrary: invalidArb },
)

/** The oracle: the upstream identity a request must act as, or null when it must be refused. */
export function expectedIdentity(p: Presented): UpstreamIdentity | null {
  switch (p.kind) {
    case 'key':
      return p.consumer === 'crm'
        ? { username: 'fzcrmuser', token: SECRETS.crmUpstreamToken, context: p.context ?? 'default' }
        : { username: 'fzopsuser', token: SECRETS.opsUpstreamToken, context: p.context ?? 'ctx2' }
    case 'bearer':
    case 'basic':
    case 'body':
      return {
        username: p.username,
        token: p.token,
        context: p.context ?? CONSUMER_CONTEXT[p.username] ?? 'default',
      }
    default:
      return null
  }
}

/** Headers and body fields that present `p`. */
export function presentation(p: Presented): {
  headers: Record<string, string>
  bodyFields: Record<string, unknown> | null
} {
  switch (p.kind) {
    case 'key': {
      const key = p.consumer === 'crm' ? SECRETS.keyCrm : SECRETS.keyOps
      const headers: Record<string, string> = { authorization: `${p.scheme} ${key}` }
      if (p.context) headers['x-trisul-context'] = p.context
      // Ignored for a gateway key: the key names the consumer.
      if (p.extraUsername) headers['x-trisul-username'] = 'fzbob'
      return { headers, bodyFields: null }
    }
    case 'bearer': {
      const headers: Record<string, string> = {
        authorization: `${p.scheme} ${p.token}`,
        'x-trisul-username': p.username,
      }
      if (p.context) headers['x-trisul-context'] = p.context
      return { headers, bodyFields: null }
    }
    case 'basic': {
      const headers: Record<string, string> = {
        authorization: `${p.scheme} ${b64(`${p.username}:${p.token}`)}`,
      }
      if (p.context) headers['x-trisul-context'] = p.context
      return { headers, bodyFields: null }
    }
    case 'body': {
      const headers: Record<string, string> = {}
      const bodyFields: Record<string, unknown> = { api_token: p.token, username: p.username }
      if (p.context) {
        if (p.via === 'header') headers['x-trisul-context'] = p.context
        else bodyFields[p.via] = p.context
      }
      return { headers, bodyFields }
    }
    case 'none':
      return { headers: {}, bodyFields: null }
    case 'invalid':
      return { headers: { ...p.headers }, bodyFields: p.body ?? null }
  }
}

/** Every string that must never show up in a log line, /metrics, or (but for its own request) a response. */
export function secretStrings(): string[] {
  const out: string[] = Object.values(SECRETS)
  for (const u of USERNAMES) {
    for (const t of [SECRETS.tokenA, SECRETS.tokenB]) out.push(b64(`${u}:${t}`))
  }
  return out
}

// ---------------------------------------------------------------- paths

const SEGMENTS = [
  'U1',
  'U2',
  'U404',
  '..',
  '.',
  '%2e%2e',
  '%2E',
  '.%2e',
  'a%2Fb',
  '%2F',
  '%2f..%2f',
  'a%5Cb',
  '%5C',
  '%00',
  'a%0D%0Ab',
  '%09',
  '%ZZ',
  '%',
  '%C3%BC',
  '%FF',
  '%C0%AE%C0%AE',
  '%E2%80%AE',
  'U1;x',
  '~',
  '@',
  'a:b',
  'a+b',
  '%20',
  'x'.repeat(64),
  'x'.repeat(65),
  'x'.repeat(300),
  '__proto__',
  'constructor',
  'prototype',
  'hasOwnProperty',
  'U1%3F',
  'U1%23x',
]

export const segmentArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...SEGMENTS) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9._@:+-]{1,70}$/) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }).map(encodeURIComponent) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 12 }).map(encodeURIComponent) },
)

const QUERIES = [
  '?UserID=U1',
  '?q=a',
  '?q=NAME%202',
  '?limit=1&offset=1',
  '?limit=0',
  '?limit=-1',
  '?limit=99999999999999999999',
  '?offset=x',
  '?q=',
  '?q=%00',
  '?ip=10.0.0.1',
  '?ip=2001:db8::1&at=10',
  '?ip=::1&at=5',
  '?at=abc',
  '?bogus=1',
  '?UserID=U1&UserID=U2',
  '?__proto__[x]=1',
  '?__proto__=1',
  '?constructor=1',
  '?q[]=1',
  '?q[a]=b',
  '?&&&',
  '?=',
  '?%ZZ=1',
  '?Email=u1@example.com',
  '?PhoneNumber=9800000001',
  '?ipdr_customer_id=1',
  '?ipsubnet=10.0.0.0/24',
]

export const queryArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...QUERIES) },
  { weight: 1, arbitrary: fc.webQueryParameters().map((q) => `?${q}`) },
)

const ODD_PATHS = [
  '//evil.example/api/ipdrcustomers',
  '//127.0.0.1:1/api/ipdrcustomers',
  '///api/ipdrcustomers',
  '/api//ipdrcustomers',
  '/api/ipdrcustomers/',
  '/api/ipdrcustomers//',
  '/api/ipdrcustomers//U1',
  '/API/IPDRCUSTOMERS',
  '/api/ipdrcustomers/../ipdrcustomers_mapping',
  '/api/ipdrcustomers/..%2f..%2fadmin',
  '/api/ipdrcustomers%2fU1',
  '/api/ipdrcustomers%2FU1',
  '/api/ipdrcustomers/U1/..',
  '/api/ipdrcustomers/U1/x',
  '/api/ipdrcustomers_mappingX',
  '/api/ipdrcustomersX',
  '/api/ipdrcustomers.json',
  '/api/ipdrcustomers;jsessionid=1',
  '/api',
  '/',
  '/healthz',
  '/readyz',
  '/metrics',
  '/docs',
  '/docs/json',
  '/api/admin',
  '/%2e%2e/api/ipdrcustomers',
  '/api/%2e%2e/api/ipdrcustomers',
  '/api/ipdrcustomers\\..\\admin',
  '/api/ipdrcustomers/%E2%80%AE',
  '/api/ipdrcustomers#frag',
  '/api/ipdrcustomers?',
  '/api/ipdrcustomers/U1?UserID=U2',
  'http://evil.example/api/ipdrcustomers',
  'http://127.0.0.1:1/api/ipdrcustomers_mapping',
]

export const pathArb: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.constantFrom('/api/ipdrcustomers', '/api/ipdrcustomers_mapping'),
        fc.option(segmentArb, { nil: null }),
        fc.option(queryArb, { nil: null }),
      )
      .map(([base, seg, q]) => `${base}${seg === null ? '' : `/${seg}`}${q ?? ''}`),
  },
  { weight: 2, arbitrary: fc.constantFrom(...ODD_PATHS) },
  // An empty target cannot be sent on the wire.
  { weight: 1, arbitrary: fc.webPath().map((p) => (p === '' ? '/' : p)) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        fc.constantFrom('/api/ipdrcustomers/', '/', '/api/ipdrcustomers?q=', '/a/'),
        fc.integer({ min: 200, max: 20_000 }),
      )
      .map(([prefix, n]) => `${prefix}${'a'.repeat(n)}`),
  },
)

export const methodArb = fc.constantFrom(
  'GET',
  'GET',
  'GET',
  'GET',
  'POST',
  'POST',
  'PUT',
  'PATCH',
  'PATCH',
  'DELETE',
  'DELETE',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
)

// ---------------------------------------------------------------- bodies

const FIELD_NAMES = [
  'UserID',
  'Name',
  'Address',
  'Email',
  'PhoneNumber',
  'AltPhoneNumber',
  'ipsubnet',
  'starttime',
  'endtime',
  'terminalid',
]

const fieldValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9._@:+-]{1,20}$/) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      'U1',
      'a@b.co',
      '9800000001',
      '10.0.0.1',
      '10.0.0.0/8',
      '2001:db8::/32',
      '0',
      '100',
      '',
      'not an email',
      '999.1.1.1',
      '10.0.0.0/33',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
)

const objectBodyArb: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  // Plausible write bodies: known fields with good and bad values.
  fc.dictionary(fc.constantFrom(...FIELD_NAMES), fieldValueArb, { maxKeys: 7 }),
  fc.record({ UserID: fc.constantFrom('U1', 'W1'), Name: fc.string({ maxLength: 30 }) }),
  fc.record({
    ipsubnet: fc.constantFrom('10.1.2.3', '10.0.0.0/24', '::1', 'fe80::/10'),
    starttime: fc.constantFrom('0', '5', 7),
    terminalid: fc.string({ maxLength: 8 }),
  }),
  // Unknown fields and prototype names as own keys.
  fc.dictionary(
    fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'Evil', 'id', 'tag'),
    fieldValueArb,
    {
      maxKeys: 3,
    },
  ),
  fc.object({ maxDepth: 4 }) as fc.Arbitrary<Record<string, unknown>>,
)

function deep(depth: number, open: string, close: string, inner = '1'): string {
  return open.repeat(depth) + inner + close.repeat(depth)
}

/** Raw bodies no generator of values makes: broken, deep, huge, poisoned. */
export const RAW_BODIES: string[] = [
  '',
  ' ',
  '\n\t',
  '{',
  '{"UserID":',
  'null',
  'true',
  '0',
  '"text"',
  '[]',
  '[{"UserID":"U1","Name":"A"}]',
  '1e999',
  '{"UserID":"U1","Name":"A"}garbage',
  '{"__proto__":{"admin":true},"UserID":"U1","Name":"A"}',
  '{"constructor":{"prototype":{"admin":true}},"UserID":"U1","Name":"A"}',
  '{"UserID":"U1","Name":"A","__proto__":{}}',
  '{"UserID":"a","UserID":"b","Name":"x"}',
  '\ufeff{"UserID":"U1","Name":"A"}',
  '{"UserID":"U1\u0000","Name":"A"}',
  '{"UserID":"\\ud800","Name":"A"}',
  deep(5000, '[', ']'),
  deep(5000, '{"a":', '}'),
  `{"UserID":"U1","Name":${deep(3000, '{"x":', '}')}}`,
  `{"UserID":"U1","Name":"${'N'.repeat(900_000)}"}`,
  `{"UserID":"U1","Name":"${'N'.repeat(1_100_000)}"}`,
  `[${'1,'.repeat(300_000)}1]`,
  deep(100_000, '[', ']'),
  `{"constructor":${deep(100_000, '{"a":', '}')}}`,
  `{"__proto__":${deep(100_000, '[', ']')}}`,
]

export type FuzzBody = { kind: 'none' } | { kind: 'json'; value: unknown } | { kind: 'raw'; text: string }

export const bodyArb: fc.Arbitrary<FuzzBody> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<FuzzBody>({ kind: 'none' }) },
  { weight: 5, arbitrary: objectBodyArb.map((value): FuzzBody => ({ kind: 'json', value })) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 6 }).map((value): FuzzBody => ({ kind: 'json', value })) },
  { weight: 2, arbitrary: fc.constantFrom(...RAW_BODIES).map((text): FuzzBody => ({ kind: 'raw', text })) },
  { weight: 1, arbitrary: fc.string({ maxLength: 50 }).map((text): FuzzBody => ({ kind: 'raw', text })) },
)

export const contentTypeArb = fc.constantFrom(
  'application/json',
  'application/json',
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/json; charset=latin1',
  'multipart/form-data; boundary=x',
  null,
)

/** Headers a hostile or careless client adds; none of them may change who the request acts as. */
export const extraHeadersArb: fc.Arbitrary<Record<string, string>> = fc.dictionary(
  fc.constantFrom(
    'cookie',
    'x-forwarded-for',
    'x-real-ip',
    'x-request-id',
    'accept-encoding',
    'if-none-match',
    'host',
    'x-http-method-override',
    'forwarded',
    'origin',
    'accept',
    'range',
  ),
  fc.oneof(
    fc.constantFrom(
      'session=abc',
      '10.0.0.1',
      '127.0.0.1, 10.0.0.1',
      'for=10.0.0.1',
      'gzip',
      'br',
      'gzip;q=0, br;q=0',
      '*',
      'identity;q=0',
      '"x"',
      'W/"y"',
      'evil.example',
      'DELETE',
      'https://evil.example',
      'bytes=0-10',
      'a'.repeat(200),
      '../../x',
      'req-1',
    ),
    fc.string({ maxLength: 30, unit: fc.constantFrom(...'abcXYZ019 -_.,;=/*"'.split('')) }),
  ),
  { maxKeys: 3 },
)

export interface FuzzRequest {
  method: string
  path: string
  presented: Presented
  body: FuzzBody
  contentType: string | null
  extra: Record<string, string>
  /** Header credentials plus body credentials of someone else: the header must win. */
  decoy: boolean
}

/** Anything at all: most of these are refused, which is the point. */
const hostileArb: fc.Arbitrary<FuzzRequest> = fc.record({
  method: methodArb,
  path: pathArb,
  presented: presentedArb,
  body: bodyArb,
  contentType: contentTypeArb,
  extra: extraHeadersArb,
  decoy: fc.boolean(),
})

const CUSTOMER_QUERIES = [
  '',
  '',
  '',
  '?UserID=U1',
  '?q=name',
  '?limit=1&offset=1',
  '?Email=u2@example.com',
  '?PhoneNumber=9800000003',
]
const MAPPING_QUERIES = [
  '',
  '',
  '',
  '?ip=10.0.0.1',
  '?ip=2001:db8::1&at=10',
  '?ipdr_customer_id=1',
  '?ipsubnet=10.0.0.0/24',
]

/** Well-formed reads and writes with valid credentials: they reach the upstream and the cache. */
const plausibleArb: fc.Arbitrary<FuzzRequest> = fc
  .record({
    route: fc.oneof(
      {
        weight: 3,
        arbitrary: fc
          .constantFrom(...CUSTOMER_QUERIES)
          .map((q) => ['GET', `/api/ipdrcustomers${q}`, null] as const),
      },
      {
        weight: 2,
        arbitrary: fc
          .constantFrom(...MAPPING_QUERIES)
          .map((q) => ['GET', `/api/ipdrcustomers_mapping${q}`, null] as const),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(
            fc.constantFrom('/api/ipdrcustomers/', '/api/ipdrcustomers_mapping/'),
            fc.constantFrom('U1', 'U2', 'U3', 'U404'),
          )
          .map(([base, id]) => ['GET', `${base}${id}`, null] as const),
      },
      {
        weight: 1,
        arbitrary: fc.constantFrom<readonly [string, string, Record<string, unknown> | null]>(
          ['POST', '/api/ipdrcustomers', { UserID: 'U7', Name: 'Seven' }],
          [
            'PUT',
            '/api/ipdrcustomers/U1',
            {
              UserID: 'U1',
              Name: 'One',
              Address: 'A',
              Email: 'o@example.com',
              PhoneNumber: '9800000001',
              AltPhoneNumber: '',
            },
          ],
          ['PATCH', '/api/ipdrcustomers/U2', { Email: 'two@example.com' }],
          ['DELETE', '/api/ipdrcustomers/U3', null],
          ['POST', '/api/ipdrcustomers_mapping', { UserID: 'U1', ipsubnet: '10.9.0.0/16', starttime: '0' }],
          ['PUT', '/api/ipdrcustomers_mapping/U1', { ipsubnet: '10.9.0.0/16', starttime: 1, endtime: null }],
          ['PATCH', '/api/ipdrcustomers_mapping/U1', { ipsubnet: '10.9.0.0/16', terminalid: 'x' }],
          ['DELETE', '/api/ipdrcustomers_mapping/U1', { ipsubnet: '10.9.0.0/16' }],
        ),
      },
    ),
    presented: presentedArb.filter((p) => expectedIdentity(p) !== null),
    extra: extraHeadersArb,
    decoy: fc.boolean(),
  })
  .map(
    ({ route: [method, path, body], presented, extra, decoy }): FuzzRequest => ({
      method,
      path,
      presented,
      body: body === null ? { kind: 'none' } : { kind: 'json', value: body },
      contentType: 'application/json',
      extra,
      decoy,
    }),
  )

export const requestArb: fc.Arbitrary<FuzzRequest> = fc.oneof(
  { weight: 3, arbitrary: hostileArb },
  { weight: 2, arbitrary: plausibleArb },
)

/** Renders a fuzz request to headers and a payload (undefined: no body). */
export function render(r: FuzzRequest): { headers: Record<string, string>; payload: string | undefined } {
  const { headers: credHeaders, bodyFields } = presentation(r.presented)
  const headers: Record<string, string> = { ...r.extra, ...credHeaders }
  let payload: string | undefined
  const extraFields: Record<string, unknown> = { ...(bodyFields ?? {}) }
  const headerCreds =
    r.presented.kind === 'key' || r.presented.kind === 'bearer' || r.presented.kind === 'basic'
  if (r.decoy && headerCreds)
    Object.assign(extraFields, { api_token: SECRETS.decoyToken, username: 'fzmallory' })
  const hasExtra = Object.keys(extraFields).length > 0
  switch (r.body.kind) {
    case 'none':
      payload = hasExtra ? JSON.stringify(extraFields) : undefined
      break
    case 'json': {
      const v = r.body.value
      payload =
        hasExtra && v !== null && typeof v === 'object' && !Array.isArray(v)
          ? JSON.stringify({ ...(v as object), ...extraFields })
          : hasExtra
            ? JSON.stringify(extraFields)
            : JSON.stringify(v)
      break
    }
    case 'raw':
      payload = hasExtra ? JSON.stringify(extraFields) : r.body.text
      break
  }
  // Body credentials need a JSON body to travel in.
  const contentType = bodyFields ? 'application/json' : r.contentType
  if (payload !== undefined && contentType !== null) headers['content-type'] = contentType
  return { headers, payload }
}

/** The request acts as a valid identity only if its credentials actually travel. */
export function effectiveIdentity(r: FuzzRequest): UpstreamIdentity | null {
  return expectedIdentity(r.presented)
}

/** The upstream paths the gateway may ever call. */
const UPSTREAM_PATH = /^\/api\/ipdrcustomers(?:_mapping)?(?:\/([^/?#]+))?$/
const USER_ID = /^[A-Za-z0-9._@:+-]{1,64}$/u

/** Why an upstream request is not one the gateway may make, or null. */
export function upstreamRequestProblem(r: RecordedRequest): string | null {
  const m = UPSTREAM_PATH.exec(r.url)
  if (!m) return `upstream path ${JSON.stringify(r.url)}`
  const seg = m[1]
  if (seg !== undefined) {
    let decoded: string
    try {
      decoded = decodeURIComponent(seg)
    } catch {
      return `undecodable segment ${seg}`
    }
    if (decoded === '.' || decoded === '..' || !USER_ID.test(decoded))
      return `segment ${JSON.stringify(decoded)}`
    if (r.method === 'GET' || r.method === 'POST') return `${r.method} with a segment`
  } else if (r.method !== 'GET' && r.method !== 'POST') {
    return `${r.method} without a segment`
  }
  if (!['GET', 'POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method)) return `method ${r.method}`
  for (const h of [
    'authorization',
    'cookie',
    'x-trisul-username',
    'x-trisul-context',
    'x-forwarded-for',
    'forwarded',
  ]) {
    if (r.headers[h] !== undefined) return `forwarded header ${h}`
  }
  if (r.headers['content-type'] !== 'application/json') return `content-type ${r.headers['content-type']}`
  return null
}

const WRITE_OPERATION: Record<string, string> = {
  POST: 'create',
  PUT: 'replace',
  PATCH: 'update',
  DELETE: 'delete',
}

/**
 * Whether FUZZ_POLICY lets the consumer of `username` (matched by its upstream
 * username, whether it came with a gateway key or its own token) make this
 * upstream call. Listings serve reads too, so a GET is always a `list`.
 */
export function operationAllowed(username: string, r: RecordedRequest): boolean {
  const consumer = username === 'fzcrmuser' ? 'crm' : username === 'fzopsuser' ? 'ops' : 'default'
  const ops = (FUZZ_POLICY.consumers?.[consumer]?.operations ?? {}) as Record<string, string[]>
  const resource = r.url.startsWith('/api/ipdrcustomers_mapping') ? 'mappings' : 'customers'
  const operation = r.method === 'GET' ? 'list' : WRITE_OPERATION[r.method]
  return operation !== undefined && (ops[resource] ?? []).includes(operation)
}

/** Every `tag` value anywhere in a JSON value. */
export function tagsIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const v of value) tagsIn(v, out)
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'tag' && typeof v === 'string') out.push(v)
      else tagsIn(v, out)
    }
  }
  return out
}
