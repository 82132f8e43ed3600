/**
 * Logs are pino JSON with a request id on every request line, and no token,
 * gateway key, Authorization value or body credential ever appears in them —
 * not at trace level, not when the upstream fails.
 */
import t from 'tap'
import { sha256Hex } from '../src/credentials.js'
import {
  ALL_OPERATIONS,
  logCapture,
  makePolicy,
  PERMISSIVE_DEFAULT,
  startGateway,
} from './helpers/gateway.js'
import { startRecordingUpstream } from './helpers/recording-upstream.js'

const SECRETS = {
  key: 'gwkey-SECRET-aaaaaaaaaaaaaaaaaaaa',
  consumerToken: 'upstream-SECRET-bbbbbbbbbbbb',
  bearer: 'bearer-SECRET-cccccccccccc',
  basic: 'basic-SECRET-dddddddddddd',
  body: 'body-SECRET-eeeeeeeeeeee',
  scrape: 'scrape-SECRET-ffffffffffff',
}

t.test('no credential in any log line', async (t) => {
  let fail = false
  const upstream = await startRecordingUpstream((req) =>
    fail
      ? { kind: 'reset' }
      : req.method === 'GET'
        ? { kind: 'json', body: [] }
        : { kind: 'json', body: { status: 'Error', message: 'Invalid API token' } },
  )
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { metrics: { tokenEnv: 'SCRAPE' }, upstream: { timeoutMs: 300 } },
    consumers: {
      default: PERMISSIVE_DEFAULT,
      crm: {
        keys: [sha256Hex(SECRETS.key)],
        upstream: { username: 'crm', tokenEnv: 'CRM_TOKEN', context: null },
        operations: ALL_OPERATIONS,
      },
    },
    env: { CRM_TOKEN: SECRETS.consumerToken, SCRAPE: SECRETS.scrape },
  })
  const logs = logCapture()
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    listen: false,
    metricsToken: policy.metricsToken,
    logger: { level: 'trace', stream: logs.stream },
  })
  const requests = [
    { headers: { authorization: `Bearer ${SECRETS.key}` } },
    { headers: { authorization: `Bearer ${SECRETS.bearer}`, 'x-trisul-username': 'u' } },
    { headers: { authorization: `Basic ${Buffer.from(`u:${SECRETS.basic}`).toString('base64')}` } },
    {
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ api_token: SECRETS.body, username: 'u' }),
    },
    { headers: { authorization: `Bearer ${SECRETS.bearer}` } },
    { headers: { authorization: `Basic ${Buffer.from(`u:${SECRETS.basic}`).toString('base64')}x` } },
  ]
  for (const phase of [false, true]) {
    fail = phase
    for (const r of requests) {
      for (const [method, url] of [
        ['GET', '/api/ipdrcustomers'],
        ['POST', '/api/ipdrcustomers'],
        ['GET', '/api/ipdrcustomers/U1?x=1'],
      ] as const) {
        const payload =
          method === 'POST' && !r.payload ? JSON.stringify({ UserID: 'U1', Name: 'A' }) : r.payload
        await gw.app.inject({
          method,
          url,
          headers: { ...r.headers, ...(payload ? { 'content-type': 'application/json' } : {}) },
          ...(payload ? { payload } : {}),
        })
      }
    }
  }
  await gw.app.inject({
    method: 'GET',
    url: '/metrics',
    headers: { authorization: `Bearer ${SECRETS.scrape}` },
  })
  await gw.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer wrong' } })
  const text = logs.text()
  t.ok(logs.lines.length > 50, `logged ${logs.lines.length} lines`)
  for (const [name, secret] of Object.entries(SECRETS)) {
    t.notOk(text.includes(secret), `${name} never logged`)
    t.notOk(text.includes(Buffer.from(`u:${secret}`).toString('base64')), `${name} never logged in base64`)
  }
  t.notOk(text.includes(sha256Hex(SECRETS.key)), 'nor the key hash')
  let withRequest = 0
  let access = 0
  for (const line of logs.lines) {
    const entry = JSON.parse(line) as Record<string, unknown>
    t.type(entry.level, 'number')
    if (entry.req || entry.res || entry.code || entry.statusCode) {
      withRequest++
      t.type(entry.reqId, 'string', 'request lines carry the request id')
    }
    if (entry.msg === 'request') {
      access++
      t.match(entry, { method: String, url: String, statusCode: Number, ms: Number, consumer: String })
    }
  }
  t.ok(withRequest > 0)
  // One access line per request answered (nginx-style), not Fastify's two.
  t.equal(access, requests.length * 3 * 2 + 2, 'one access line per request')
  const metrics = (
    await gw.app.inject({
      method: 'GET',
      url: '/metrics',
      headers: { authorization: `Bearer ${SECRETS.scrape}` },
    })
  ).body
  for (const secret of Object.values(SECRETS)) t.notOk(metrics.includes(secret))
})
