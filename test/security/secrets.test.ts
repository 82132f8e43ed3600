/**
 * SPEC 13, "nothing secret echoed": an upstream that echoes the token in its error message is
 * relayed with the token masked (a gateway-key client never sees its consumer's Trisul token), in
 * normalized and passed-through envelopes alike, and never logged; secret query parameters never
 * reach the access log or an error body; error bodies stay within 4 KiB.
 */
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { logCapture, makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

const KEY = 'gk_secret_test_key_987654321'
const TRISUL_TOKEN = 'trisul-secret-token-abcdef'
const CLIENT_TOKEN = 'client-own-token-xyz123'

async function setup(t: Test, gateway: Record<string, unknown> = {}) {
  // Trisul answering every request with an envelope that echoes the api_token it received.
  const upstream = await startRecordingUpstream((req) => ({
    kind: 'json',
    body: {
      status: 'Error',
      message: `Request rejected for api_token=${String(req.body?.api_token)} (user ${String(req.body?.username)})`,
    },
  }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway,
    consumers: {
      default: PERMISSIVE_DEFAULT,
      crm: {
        keys: [createHash('sha256').update(KEY).digest('hex')],
        upstream: { username: 'crm', tokenEnv: 'CRM_TOKEN' },
        operations: { customers: ['list', 'read', 'create'] },
      },
    },
    env: { CRM_TOKEN: TRISUL_TOKEN },
  })
  const logs = logCapture()
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    logger: { level: 'trace', stream: logs.stream },
  })
  return { gw, logs, upstream }
}

t.test('an upstream message that echoes the token is relayed masked, and never logged', async (t) => {
  const { gw, logs } = await setup(t)
  const viaKey = await fetch(`${gw.url}/api/ipdrcustomers`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ UserID: 'U1', Name: 'N' }),
  })
  const keyText = await viaKey.text()
  t.equal(viaKey.status, 422)
  t.notMatch(keyText, TRISUL_TOKEN, "the consumer's Trisul token is not shown to a gateway-key client")
  t.match(keyText, /api_token=\*\*\*/, 'it is masked where it stood')
  const own = await fetch(`${gw.url}/api/ipdrcustomers`, {
    headers: { authorization: `Bearer ${CLIENT_TOKEN}`, 'x-trisul-username': 'alice' },
  })
  const ownText = await own.text()
  t.notMatch(ownText, CLIENT_TOKEN, "nor a client's own token")
  t.notMatch(logs.text(), TRISUL_TOKEN, 'no log line holds the Trisul token')
  t.notMatch(logs.text(), CLIENT_TOKEN, 'nor the client token')
  t.notMatch(logs.text(), KEY, 'nor the gateway key')
})

t.test('passed-through envelopes (normalizeErrors: false) are masked too', async (t) => {
  const { gw } = await setup(t, { upstream: { normalizeErrors: false } })
  const r = await fetch(`${gw.url}/api/ipdrcustomers`, { headers: { authorization: `Bearer ${KEY}` } })
  const text = await r.text()
  t.equal(r.status, 200, 'the envelope as Trisul sent it')
  t.notMatch(text, TRISUL_TOKEN)
  t.match(JSON.parse(text), { status: 'Error', message: /api_token=\*\*\*/ })
})

t.test('secret query parameters never reach the access log or an error body', async (t) => {
  const { gw, logs } = await setup(t)
  for (const name of ['api_token', 'token', 'key', 'password']) {
    const secret = `qs-secret-${name}-4242`
    const r = await fetch(`${gw.url}/api/ipdrcustomers?${name}=${secret}&limit=1`, {
      headers: { authorization: `Bearer ${KEY}` },
    })
    t.notMatch(await r.text(), secret, `${name}: not in the error body`)
    t.notMatch(logs.text(), secret, `${name}: not in the log`)
  }
  t.match(logs.text(), /"url":"\/api\/ipdrcustomers\?api_token=\*\*\*&limit=1"/, 'the URL is logged masked')
})

t.test('error bodies are at most 4 KiB, however long the upstream message', async (t) => {
  const upstream = await startRecordingUpstream(() => ({
    kind: 'json',
    body: { status: 'Error', message: `Duplicate ${'x'.repeat(20_000)}` },
  }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const r = await fetch(`${gw.url}/api/ipdrcustomers`, {
    method: 'POST',
    headers: { authorization: 'Bearer tok', 'x-trisul-username': 'u', 'content-type': 'application/json' },
    body: JSON.stringify({ UserID: 'U1', Name: 'N' }),
  })
  const body = Buffer.from(await r.arrayBuffer())
  t.equal(r.status, 409)
  t.ok(body.length <= 4096, `${body.length} bytes`)
  t.match(JSON.parse(body.toString()), { code: 'IPDR_GW_UPSTREAM_CONFLICT', message: /^Duplicate x+…$/ })
})
