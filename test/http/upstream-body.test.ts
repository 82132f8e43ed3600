/**
 * What exactly reaches the upstream, for every credential form, method,
 * resource and dialect; which headers never do; and that credentials full of
 * quotes and braces cannot add or change a body field.
 */
import t, { type Test } from 'tap'
import { sha256Hex } from '../../src/credentials.js'
import { ALL_OPERATIONS, makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

const KEY = 'gwkey-0123456789abcdef0123456789'
const b64 = (s: string) => Buffer.from(s).toString('base64')

async function setup(t: Test, dialect: 'v1' | 'v2') {
  const upstream = await startRecordingUpstream((req) =>
    req.method === 'GET'
      ? { kind: 'json', body: [] }
      : { kind: 'json', body: { id: 1, UserID: 'U1', Name: 'A' } },
  )
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { upstream: { dialect, defaultContext: 'ctxdef' }, cache: { ttlSeconds: 0 } },
    consumers: {
      default: PERMISSIVE_DEFAULT,
      crm: {
        keys: [sha256Hex(KEY)],
        upstream: { username: 'crm-up', tokenEnv: 'CRM_TOKEN', context: 'crmctx' },
        operations: ALL_OPERATIONS,
      },
    },
    env: { CRM_TOKEN: 'crm-secret-token' },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, listen: false })
  return { upstream, gw }
}

const forms: {
  name: string
  headers: Record<string, string>
  body?: Record<string, unknown>
  user: string
  token: string
  ctx?: string
}[] = [
  {
    name: 'gateway key',
    headers: { authorization: `Bearer ${KEY}` },
    user: 'crm-up',
    token: 'crm-secret-token',
    ctx: 'crmctx',
  },
  {
    name: 'bearer + username',
    headers: { authorization: 'Bearer tok2', 'x-trisul-username': 'alice' },
    user: 'alice',
    token: 'tok2',
  },
  { name: 'basic', headers: { authorization: `Basic ${b64('bob:tok3')}` }, user: 'bob', token: 'tok3' },
  { name: 'body', headers: {}, body: { api_token: 'tok4', username: 'carol' }, user: 'carol', token: 'tok4' },
]

for (const dialect of ['v1', 'v2'] as const) {
  t.test(`${dialect}: the exact upstream body for every form, method and resource`, async (t) => {
    const { upstream, gw } = await setup(t, dialect)
    for (const form of forms) {
      for (const [resource, contextField, path] of [
        ['customers', 'contextname', '/api/ipdrcustomers'],
        ['mappings', 'context', '/api/ipdrcustomers_mapping'],
      ] as const) {
        const fields =
          resource === 'customers'
            ? { UserID: 'U1', Name: 'A' }
            : { UserID: 'U1', ipsubnet: '10.0.0.1', starttime: '0' }
        const calls = [
          { method: 'GET', url: path, fields: {} },
          { method: 'POST', url: path, fields },
          {
            method: 'PATCH',
            url: `${path}/U1`,
            fields: resource === 'customers' ? { Name: 'B' } : { ipsubnet: '10.0.0.1', terminalid: 'T' },
          },
          {
            method: 'DELETE',
            url: `${path}/U1`,
            fields: resource === 'customers' ? {} : { ipsubnet: '10.0.0.1' },
          },
        ] as const
        for (const call of calls) {
          const before = upstream.requests.length
          const res = await gw.app.inject({
            method: call.method,
            url: call.url,
            headers: {
              ...form.headers,
              'content-type': 'application/json',
              cookie: 'session=abc',
              'x-trisul-extra': 'no',
            },
            payload: JSON.stringify({ ...call.fields, ...(form.body ?? {}) }),
          })
          t.equal(res.statusCode, 200, `${form.name} ${call.method} ${call.url}: ${res.body}`)
          const got = upstream.requests[before]
          t.ok(got, 'reached the upstream')
          if (!got) continue
          t.equal(got.method, call.method)
          t.equal(got.url, call.url)
          const expected: Record<string, unknown> = {
            ...call.fields,
            api_token: form.token,
            username: form.user,
          }
          if (dialect === 'v2') expected[contextField] = form.ctx ?? 'ctxdef'
          t.same(got.body, expected, `${form.name} ${call.method} ${resource} body`)
          t.equal(got.headers.authorization, undefined)
          t.equal(got.headers.cookie, undefined)
          t.equal(got.headers['x-trisul-extra'], undefined)
          t.equal(got.headers['x-trisul-username'], undefined)
          t.equal(got.headers['content-type'], 'application/json')
        }
      }
    }
  })
}

t.test('X-Trisul-Context picks the context; in v2 it reaches the upstream', async (t) => {
  const { upstream, gw } = await setup(t, 'v2')
  await gw.app.inject({
    method: 'GET',
    url: '/api/ipdrcustomers',
    headers: { authorization: 'Bearer tok', 'x-trisul-username': 'alice', 'x-trisul-context': 'other' },
  })
  t.equal(upstream.requests[0]?.body?.contextname, 'other')
})

t.test('credentials full of quotes and braces cannot add or change a field', async (t) => {
  const { upstream, gw } = await setup(t, 'v2')
  const nasty = 'x","contextname":"evil","Name":"pwned'
  const res = await gw.app.inject({
    method: 'POST',
    url: '/api/ipdrcustomers',
    headers: { authorization: `Basic ${b64(`u"}{:${nasty}`)}`, 'content-type': 'application/json' },
    payload: { UserID: 'U1', Name: 'A', api_token: 'client-override', username: 'client-override' },
  })
  t.equal(res.statusCode, 200)
  t.same(upstream.requests[0]?.body, {
    UserID: 'U1',
    Name: 'A',
    api_token: nasty,
    username: 'u"}{',
    contextname: 'ctxdef',
  })
})

t.test('the request id travels to the upstream and back', async (t) => {
  const { upstream, gw } = await setup(t, 'v2')
  const res = await gw.app.inject({
    method: 'GET',
    url: '/api/ipdrcustomers',
    headers: { authorization: 'Bearer tok', 'x-trisul-username': 'alice', 'x-request-id': 'abc-123' },
  })
  t.equal(res.headers['x-request-id'], 'abc-123')
  t.equal(upstream.requests[0]?.headers['x-request-id'], 'abc-123')
  const insane = await gw.app.inject({
    method: 'GET',
    url: '/healthz',
    headers: { 'x-request-id': 'bad id\twith spaces' },
  })
  t.match(insane.headers['x-request-id'], /^[0-9a-f-]{36}$/)
})
