/**
 * Each consumer rule of shared/SPEC.md 4 through the whole gateway, over real
 * sockets, with a recording upstream: denied requests never reach it.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { sha256Hex } from '../../src/credentials.js'
import { ALL_OPERATIONS, makePolicy, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

const KEY = 'gw-key-for-crm-0123456789abcdef'
const RECORD = {
  id: 1,
  UserID: 'U1',
  Name: 'A',
  Address: 'x',
  Email: 'a@b.in',
  PhoneNumber: '9845012345',
  AltPhoneNumber: '9845012346',
}

async function setup(
  t: Test,
  consumers: Record<string, Record<string, unknown>>,
  gateway: Record<string, unknown> = {},
) {
  const upstream = await startRecordingUpstream((req) =>
    req.method === 'GET' ? { kind: 'json', body: [RECORD] } : { kind: 'json', body: RECORD },
  )
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, { gateway, consumers, env: { CRM_TOKEN: 'crm-token' } })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'GET',
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.body.text()
    return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) }
  }
  return { upstream, gw, call }
}

const crm = {
  usernames: ['crm'],
  keys: [sha256Hex(KEY)],
  upstream: { username: 'crm', tokenEnv: 'CRM_TOKEN', context: 'default' },
  operations: { customers: ['list', 'read', 'update'] },
  redact: ['PhoneNumber', 'AltPhoneNumber'],
}

t.test('operations, redaction and gateway keys', async (t) => {
  const { upstream, call } = await setup(t, { crm })
  const byKey = { authorization: `Bearer ${KEY}` }
  const list = await call('GET', '/api/ipdrcustomers', byKey)
  t.equal(list.status, 200)
  t.same(list.json(), [{ ...RECORD, PhoneNumber: '***', AltPhoneNumber: '***' }], 'listing redacted')
  t.notMatch(list.text, /9845012345/)
  const one = await call('GET', '/api/ipdrcustomers/U1', byKey)
  t.same(one.json(), { ...RECORD, PhoneNumber: '***', AltPhoneNumber: '***' }, 'single read redacted')
  const filtered = await call('GET', '/api/ipdrcustomers?q=a', byKey)
  t.equal(filtered.json()[0].PhoneNumber, '***', 'filtered listing redacted')
  const patched = await call('PATCH', '/api/ipdrcustomers/U1', byKey, { Name: 'B' })
  t.equal(patched.status, 200)
  t.equal(patched.json().PhoneNumber, '***', 'write response redacted')
  t.equal(upstream.requests.at(-1)?.body?.api_token, 'crm-token', "the consumer's own upstream token")
  const before = upstream.requests.length
  const denied = await call('POST', '/api/ipdrcustomers', byKey, { UserID: 'U2', Name: 'B' })
  t.equal(denied.status, 403)
  t.equal(denied.json().code, 'IPDR_GW_OPERATION_FORBIDDEN')
  t.equal((await call('DELETE', '/api/ipdrcustomers/U1', byKey)).status, 403)
  t.equal(
    (await call('GET', '/api/ipdrcustomers_mapping', byKey)).status,
    403,
    'no mapping operations at all',
  )
  // Username matching (form 2) gives the same consumer and rules.
  t.equal(
    (
      await call(
        'POST',
        '/api/ipdrcustomers',
        { authorization: 'Bearer t', 'x-trisul-username': 'crm' },
        { UserID: 'U2', Name: 'B' },
      )
    ).status,
    403,
  )
  // No default consumer: an unknown username is refused.
  const stranger = await call('GET', '/api/ipdrcustomers', {
    authorization: 'Bearer t',
    'x-trisul-username': 'stranger',
  })
  t.equal(stranger.status, 403)
  t.equal(stranger.json().code, 'IPDR_GW_NO_CONSUMER')
  t.equal(upstream.requests.length, before, 'no denied request reached the upstream')
  const metrics = await call('GET', '/metrics', {})
  t.match(metrics.text, /ipdr_gateway_policy_denials_total\{consumer="crm",operation="create"\} 2/)
  t.match(metrics.text, /ipdr_gateway_policy_denials_total\{consumer="unknown",operation="list"\} 1/)
})

t.test('allowIPs', async (t) => {
  const { upstream, call } = await setup(t, {
    crm: { ...crm, allowIPs: ['10.0.0.0/8'] },
    default: { operations: ALL_OPERATIONS, allowIPs: ['127.0.0.1/32'] },
  })
  const denied = await call('GET', '/api/ipdrcustomers', { authorization: `Bearer ${KEY}` })
  t.equal(denied.status, 403)
  t.equal(denied.json().code, 'IPDR_GW_ADDRESS_FORBIDDEN')
  t.equal(upstream.requests.length, 0)
  const allowed = await call('GET', '/api/ipdrcustomers', {
    authorization: 'Bearer t',
    'x-trisul-username': 'someone',
  })
  t.equal(allowed.status, 200)
})

t.test(
  'rate limits: headers, 429 with Retry-After, budgets per consumer and per default username',
  async (t) => {
    const { upstream, call } = await setup(
      t,
      {
        crm: { ...crm, rateLimit: { max: 3, timeWindow: '1 minute' } },
        default: { operations: ALL_OPERATIONS },
      },
      { rateLimit: { max: 2, timeWindow: '1 minute' } },
    )
    const byKey = { authorization: `Bearer ${KEY}` }
    const byName = { authorization: 'Bearer t', 'x-trisul-username': 'crm' }
    const first = await call('GET', '/api/ipdrcustomers', byKey)
    t.equal(first.headers['ratelimit-limit'], '3')
    t.equal(first.headers['ratelimit-remaining'], '2')
    t.ok(first.headers['ratelimit-reset'])
    t.equal(
      (await call('GET', '/api/ipdrcustomers', byName)).status,
      200,
      'a credential of the same consumer',
    )
    t.equal((await call('GET', '/api/ipdrcustomers/U1', byKey)).status, 200)
    const before = upstream.requests.length
    const limited = await call('GET', '/api/ipdrcustomers', byName)
    t.equal(limited.status, 429, 'the budget is shared by all credentials of the consumer')
    t.equal(limited.json().code, 'IPDR_GW_RATE_LIMITED')
    t.ok(Number(limited.headers['retry-after']) > 0)
    t.equal(upstream.requests.length, before)
    // The default consumer is counted per upstream username.
    for (const user of ['u1', 'u2']) {
      const h = { authorization: 'Bearer t', 'x-trisul-username': user }
      t.equal((await call('GET', '/api/ipdrcustomers', h)).status, 200)
      t.equal((await call('GET', '/api/ipdrcustomers', h)).status, 200)
      t.equal((await call('GET', '/api/ipdrcustomers', h)).status, 429, `${user} has its own budget`)
    }
    const metrics = await call('GET', '/metrics', {})
    t.match(metrics.text, /ipdr_gateway_rate_limited_total\{consumer="crm"\} 1/)
    t.match(metrics.text, /ipdr_gateway_rate_limited_total\{consumer="default"\} 2/)
  },
)

t.test('failed authentication is limited per address', async (t) => {
  const { call } = await setup(
    t,
    { default: { operations: ALL_OPERATIONS } },
    { auth: { failureLimit: { max: 3, timeWindow: '1 minute' } } },
  )
  for (let i = 0; i < 3; i++)
    t.equal((await call('GET', '/api/ipdrcustomers', { authorization: 'Basic nope' })).status, 401)
  const blocked = await call('GET', '/api/ipdrcustomers', {
    authorization: 'Bearer t',
    'x-trisul-username': 'good',
  })
  t.equal(blocked.status, 429, 'even good credentials wait: a guess cannot be confirmed')
  t.equal(blocked.json().code, 'IPDR_GW_AUTH_RATE_LIMITED')
  t.ok(blocked.headers['retry-after'])
})

t.test('body credentials can be turned off', async (t) => {
  const { upstream, call } = await setup(
    t,
    { default: { operations: ALL_OPERATIONS } },
    { auth: { bodyCredentials: false } },
  )
  const res = await call(
    'POST',
    '/api/ipdrcustomers',
    {},
    { api_token: 't', username: 'u', UserID: 'U1', Name: 'A' },
  )
  t.equal(res.status, 401)
  t.equal(res.json().code, 'IPDR_GW_BODY_CREDENTIALS_DISABLED')
  t.equal(res.headers['www-authenticate'], 'Bearer realm="ipdr-gateway"')
  t.equal(upstream.requests.length, 0)
})

t.test('CORS for listed origins only', async (t) => {
  const { call } = await setup(
    t,
    { default: { operations: ALL_OPERATIONS } },
    { cors: { origins: ['https://crm.example.in'] } },
  )
  const pre = await call('OPTIONS', '/api/ipdrcustomers', {
    origin: 'https://crm.example.in',
    'access-control-request-method': 'GET',
    'access-control-request-headers': 'authorization,x-trisul-username',
  })
  t.equal(pre.status, 204)
  t.equal(pre.headers['access-control-allow-origin'], 'https://crm.example.in')
  t.match(String(pre.headers['access-control-allow-headers']), /Authorization/i)
  const get = await call('GET', '/api/ipdrcustomers', {
    origin: 'https://crm.example.in',
    authorization: 'Bearer t',
    'x-trisul-username': 'u',
  })
  t.match(String(get.headers['access-control-expose-headers']), /X-Cache/i)
  t.match(String(get.headers.vary), /Origin/, 'the listing keeps CORS in Vary')
  t.match(String(get.headers.vary), /Accept-Encoding/)
  const other = await call('GET', '/api/ipdrcustomers', {
    origin: 'https://evil.example',
    authorization: 'Bearer t',
    'x-trisul-username': 'u',
  })
  t.equal(other.headers['access-control-allow-origin'], undefined)
})
