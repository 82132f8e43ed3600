import { createHash } from 'node:crypto'
import t from 'tap'
import { DIGEST_MEMO_SIZE, headerValues, resolveCredentials, sha256Hex } from '../src/credentials.js'

const GATEWAY_KEY = 'gw_live_0123456789abcdef'
const keyHashes = new Set([sha256Hex(GATEWAY_KEY)])
const isGatewayKey = (h: string) => keyHashes.has(h)
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64')

interface Row {
  name: string
  headers?: Record<string, string[]>
  body?: unknown
  bodyCredentials?: boolean
  expect: Record<string, unknown>
}

const rows: Row[] = [
  {
    name: 'form 1: gateway key',
    headers: { authorization: [`Bearer ${GATEWAY_KEY}`] },
    expect: { ok: true, form: 'key', keyHash: sha256Hex(GATEWAY_KEY), context: null },
  },
  {
    name: 'form 1 wins over X-Trisul-Username',
    headers: { authorization: [`Bearer ${GATEWAY_KEY}`], 'x-trisul-username': ['crm'] },
    expect: { ok: true, form: 'key' },
  },
  {
    name: 'form 2: bearer token + username',
    headers: { authorization: ['Bearer tok123'], 'x-trisul-username': ['crm'] },
    expect: { ok: true, form: 'bearer', username: 'crm', token: 'tok123', context: null },
  },
  {
    name: 'scheme is case-insensitive',
    headers: { authorization: ['bEaReR tok123'], 'x-trisul-username': ['crm'] },
    expect: { ok: true, form: 'bearer', token: 'tok123' },
  },
  {
    name: 'form 2 with context header',
    headers: { authorization: ['Bearer tok'], 'x-trisul-username': ['crm'], 'x-trisul-context': ['ctx_a'] },
    expect: { ok: true, form: 'bearer', context: 'ctx_a' },
  },
  {
    name: 'form 3: basic',
    headers: { authorization: [`Basic ${b64('crm:tok:with:colons')}`] },
    expect: { ok: true, form: 'basic', username: 'crm', token: 'tok:with:colons' },
  },
  {
    name: 'form 3: token full of quotes and braces is kept verbatim',
    headers: { authorization: [`Basic ${b64('crm:"},"username":"admin')}`] },
    expect: { ok: true, form: 'basic', username: 'crm', token: '"},"username":"admin' },
  },
  {
    name: 'form 4: body credentials',
    body: { api_token: 'tok', username: 'crm', contextname: 'ctx' },
    expect: { ok: true, form: 'body', username: 'crm', token: 'tok', context: 'ctx' },
  },
  {
    name: 'form 4: v2 mapping body names the context `context`',
    body: { api_token: 'tok', username: 'crm', context: 'ctx2' },
    expect: { ok: true, form: 'body', context: 'ctx2' },
  },
  {
    name: 'form 4: header context wins over body context',
    headers: { 'x-trisul-context': ['hdr'] },
    body: { api_token: 'tok', username: 'crm', contextname: 'body' },
    expect: { ok: true, form: 'body', context: 'hdr' },
  },
  {
    name: 'header beats body',
    headers: { authorization: [`Basic ${b64('hdr:tok')}`] },
    body: { api_token: 'tok2', username: 'body' },
    expect: { ok: true, form: 'basic', username: 'hdr' },
  },
  { name: 'nothing at all', expect: { ok: false, code: 'IPDR_GW_MISSING_CREDENTIALS' } },
  {
    name: 'body without credentials',
    body: { Name: 'x' },
    expect: { ok: false, code: 'IPDR_GW_MISSING_CREDENTIALS' },
  },
  {
    name: 'body credentials disabled by policy',
    body: { api_token: 'tok', username: 'crm' },
    bodyCredentials: false,
    expect: { ok: false, code: 'IPDR_GW_BODY_CREDENTIALS_DISABLED' },
  },
  {
    name: 'body credentials of the wrong type',
    body: { api_token: 12, username: 'crm' },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'body credentials: empty token',
    body: { api_token: '', username: 'crm' },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'body context of the wrong type',
    body: { api_token: 't', username: 'crm', contextname: { a: 1 } },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'unknown bearer without username',
    headers: { authorization: ['Bearer notakey'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'bearer with empty token',
    headers: { authorization: ['Bearer '], 'x-trisul-username': ['crm'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'bearer with no parameter',
    headers: { authorization: ['Bearer'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'bearer token with non-ASCII',
    headers: { authorization: ['Bearer tök'], 'x-trisul-username': ['crm'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'username with a control character',
    headers: { authorization: ['Bearer tok'], 'x-trisul-username': ['cr\u0001m'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'duplicated Authorization',
    headers: { authorization: ['Bearer a', 'Bearer b'], 'x-trisul-username': ['crm'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'duplicated X-Trisul-Username',
    headers: { authorization: ['Bearer a'], 'x-trisul-username': ['crm', 'admin'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'duplicated X-Trisul-Context',
    headers: { authorization: ['Bearer a'], 'x-trisul-username': ['crm'], 'x-trisul-context': ['a', 'b'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'invalid context header',
    headers: { authorization: ['Bearer a'], 'x-trisul-username': ['crm'], 'x-trisul-context': ['a/b'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'oversized Authorization',
    headers: { authorization: [`Bearer ${'a'.repeat(5000)}`], 'x-trisul-username': ['crm'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'oversized token under the header bound',
    headers: { authorization: [`Bearer ${'a'.repeat(2000)}`], 'x-trisul-username': ['crm'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: bad base64',
    headers: { authorization: ['Basic !!!not-base64'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: empty',
    headers: { authorization: ['Basic '] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: no colon',
    headers: { authorization: [`Basic ${b64('justauser')}`] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: empty token',
    headers: { authorization: [`Basic ${b64('crm:')}`] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: empty username',
    headers: { authorization: [`Basic ${b64(':tok')}`] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: not UTF-8',
    headers: { authorization: [`Basic ${Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString('base64')}`] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'basic: non-ASCII token',
    headers: { authorization: [`Basic ${b64('crm:tøken')}`] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'unsupported scheme',
    headers: { authorization: ['Digest username="x"'] },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
  {
    name: 'a malformed header does not fall through to body credentials',
    headers: { authorization: ['Basic nope'] },
    body: { api_token: 'tok', username: 'crm' },
    expect: { ok: false, code: 'IPDR_GW_MALFORMED_CREDENTIALS' },
  },
]

for (const row of rows) {
  t.test(row.name, async (t) => {
    const got = resolveCredentials({
      headers: row.headers ?? {},
      body: row.body,
      bodyCredentials: row.bodyCredentials ?? true,
      isGatewayKey,
    })
    t.match(got, row.expect)
    if (!got.ok) t.type(got.message, 'string')
  })
}

t.test('headerValues keeps duplicates from rawHeaders', async (t) => {
  const raw = [
    'Host',
    'x',
    'Authorization',
    'Bearer a',
    'authorization',
    'Bearer b',
    'X-Trisul-Username',
    'u',
  ]
  t.same(headerValues(raw, ['authorization', 'x-trisul-username']), {
    authorization: ['Bearer a', 'Bearer b'],
    'x-trisul-username': ['u'],
  })
})

t.test('a Bearer token is hashed once, the same way the cache keys hash tokens', async (t) => {
  const { hashToken } = await import('../src/cache/listing-cache.js')
  const got = resolveCredentials({
    headers: { authorization: ['Bearer tok123'], 'x-trisul-username': ['crm'] },
    body: undefined,
    bodyCredentials: true,
    isGatewayKey,
  })
  t.equal(got.ok && got.form === 'bearer' ? got.tokenHash : null, hashToken('tok123'))
})

t.test('sha256Hex: remembered digests stay right past the memo size', async (t) => {
  const reference = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex')
  const values = Array.from({ length: DIGEST_MEMO_SIZE * 2 + 7 }, (_, i) => `token-${i}-\u00e9`)
  let wrong = 0
  for (let round = 0; round < 2; round++) {
    for (const v of values) if (sha256Hex(v) !== reference(v)) wrong++
  }
  t.equal(wrong, 0, 'every digest, first computed or remembered, is the SHA-256 of its value')
  t.equal(sha256Hex(''), reference(''))
})
