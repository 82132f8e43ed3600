/**
 * Every status of shared/SPEC.md 3.3, against a recording upstream that
 * answers or misbehaves as told; and the paths that must never reach it.
 */

import t, { type Test } from 'tap'
import { request } from 'undici'
import { makePolicy, startGateway } from '../helpers/gateway.js'
import { rawHttp } from '../helpers/raw-http.js'
import { type Behaviour, closedPort, startRecordingUpstream } from '../helpers/recording-upstream.js'

const AUTH = { authorization: 'Bearer tok', 'x-trisul-username': 'alice' }

async function gatewayWith(t: Test, behaviour: Behaviour, gateway: Record<string, unknown> = {}) {
  const upstream = await startRecordingUpstream(() => behaviour)
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: {
      upstream: { timeoutMs: 400, connectTimeoutMs: 400, ...((gateway.upstream as object) ?? {}) },
      ...gateway,
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  return { upstream, gw }
}

const envelopes: [string, number, number][] = [
  ['Invalid API token', 200, 401],
  ['The user (alice) is not allowed to access the context ipdr', 200, 403],
  ['Invalid Context name - ipdrr', 200, 400],
  ['IPDR Customer not found', 422, 404],
  ['Duplicate Mapping for UserID : U1001', 422, 409],
  ['Missing field : Name', 200, 422],
]

for (const [message, upstreamStatus, status] of envelopes) {
  t.test(`envelope "${message}" → ${status}, on listings and writes`, async (t) => {
    const { gw } = await gatewayWith(t, {
      kind: 'json',
      status: upstreamStatus,
      body: { status: 'Error', message },
    })
    for (const [method, url, body] of [
      ['GET', '/api/ipdrcustomers', undefined],
      ['POST', '/api/ipdrcustomers', { UserID: 'U1', Name: 'A' }],
    ] as const) {
      const res = await request(`${gw.url}${url}`, {
        method,
        headers: { ...AUTH, 'content-type': 'application/json' },
        body: body ? JSON.stringify(body) : undefined,
      })
      const json = (await res.body.json()) as Record<string, unknown>
      t.equal(res.statusCode, status, `${method}: ${JSON.stringify(json)}`)
      t.equal(json.message, message, 'the upstream message is kept')
      t.match(json.code, /^IPDR_GW_UPSTREAM_/)
      if (status === 401) t.equal(res.headers['www-authenticate'], 'Bearer realm="ipdr-gateway"')
    }
  })
}

t.test('normalizeErrors: false passes envelopes through untouched', async (t) => {
  const envelope = { status: 'ERROR', message: 'Invalid API token' }
  const { gw } = await gatewayWith(
    t,
    { kind: 'json', status: 200, body: envelope },
    { upstream: { normalizeErrors: false } },
  )
  const list = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
  t.equal(list.statusCode, 200)
  t.same(await list.body.json(), envelope)
  const write = await request(`${gw.url}/api/ipdrcustomers`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ UserID: 'U1', Name: 'A' }),
  })
  t.equal(write.statusCode, 200)
  t.same(await write.body.json(), envelope)
})

const faults: [string, Behaviour, number, string][] = [
  [
    'upstream 500',
    { kind: 'raw', status: 500, body: 'boom', contentType: 'text/plain' },
    502,
    'IPDR_GW_UPSTREAM_UNAVAILABLE',
  ],
  [
    'upstream 503',
    { kind: 'json', status: 503, body: { status: 'Error', message: 'x' } },
    502,
    'IPDR_GW_UPSTREAM_UNAVAILABLE',
  ],
  ['invalid JSON', { kind: 'raw', body: '[{"id":1,' }, 502, 'IPDR_GW_UPSTREAM_BAD_RESPONSE'],
  ['listing that is an object', { kind: 'json', body: { id: 1 } }, 502, 'IPDR_GW_UPSTREAM_BAD_RESPONSE'],
  ['listing of non-objects', { kind: 'json', body: [1, 2] }, 502, 'IPDR_GW_UPSTREAM_BAD_RESPONSE'],
  ['hang', { kind: 'hang' }, 504, 'IPDR_GW_UPSTREAM_TIMEOUT'],
  ['slow past the timeout', { kind: 'json', body: [], delayMs: 1500 }, 504, 'IPDR_GW_UPSTREAM_TIMEOUT'],
  ['reset before headers', { kind: 'reset' }, 502, 'IPDR_GW_UPSTREAM_UNAVAILABLE'],
  ['reset mid-body', { kind: 'reset-mid-body', partial: '[{"id":1' }, 502, 'IPDR_GW_UPSTREAM_BAD_RESPONSE'],
]

for (const [name, behaviour, status, code] of faults) {
  t.test(`${name} → ${status}`, async (t) => {
    const { gw, upstream } = await gatewayWith(t, behaviour)
    const res = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
    const json = (await res.body.json()) as Record<string, unknown>
    t.equal(res.statusCode, status)
    t.equal(json.code, code)
    t.notMatch(JSON.stringify(json), /at .*\.(js|ts)|stack/i, 'no stack trace')
    // Nothing invalid was cached: the next request asks the upstream again.
    const before = upstream.requests.length
    await (await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })).body.dump()
    t.ok(upstream.requests.length > before)
  })
}

t.test(
  'refused connections → 502, retried once for a listing; the circuit opens, then recovers',
  async (t) => {
    const port = await closedPort()
    const policy = await makePolicy(t, {
      gateway: { upstream: { connectTimeoutMs: 400, circuit: { failures: 2, resetSeconds: 1 } } },
    })
    let now = 0
    const gw = await startGateway(t, { policy, upstreamUrl: `http://127.0.0.1:${port}`, now: () => now })
    const first = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
    t.equal(first.statusCode, 502)
    t.equal(((await first.body.json()) as { code: string }).code, 'IPDR_GW_UPSTREAM_UNAVAILABLE')
    // The listing's own retry was the second consecutive failure: the circuit is open.
    const open = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
    t.equal(open.statusCode, 503)
    t.equal(((await open.body.json()) as { code: string }).code, 'IPDR_GW_CIRCUIT_OPEN')
    t.ok(Number(open.headers['retry-after']) >= 1)
    const metrics = await (await request(`${gw.url}/metrics`)).body.text()
    t.match(
      metrics,
      /ipdr_gateway_upstream_requests_total\{method="GET",resource="customers",outcome="connect_error"\} 2/,
    )
    now += 1000
    // Half-open: one trial, still refused, opens again.
    const trial = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
    t.equal(trial.statusCode, 502)
    const again = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
    t.equal(again.statusCode, 503)
    await again.body.dump()
    await trial.body.dump()
  },
)

t.test('a write is never retried and never reported as a success it was not', async (t) => {
  const { gw, upstream } = await gatewayWith(t, { kind: 'reset' })
  const res = await request(`${gw.url}/api/ipdrcustomers`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ UserID: 'U1', Name: 'A' }),
  })
  t.equal(res.statusCode, 502)
  await res.body.dump()
  t.equal(upstream.requests.length, 1, 'exactly one attempt')
})

t.test('client errors, none of which reaches the upstream', async (t) => {
  const { gw, upstream } = await gatewayWith(t, { kind: 'json', body: [] }, { limits: { bodyBytes: 1024 } })
  const cases: [string, string, Record<string, string>, string | undefined, number, string][] = [
    ['GET', '/api/ipdrcustomers', {}, undefined, 401, 'IPDR_GW_MISSING_CREDENTIALS'],
    [
      'GET',
      '/api/ipdrcustomers',
      { authorization: 'Basic %%%' },
      undefined,
      401,
      'IPDR_GW_MALFORMED_CREDENTIALS',
    ],
    [
      'POST',
      '/api/ipdrcustomers',
      { ...AUTH, 'content-type': 'application/json' },
      '{"UserID":',
      400,
      'IPDR_GW_INVALID_JSON',
    ],
    [
      'POST',
      '/api/ipdrcustomers',
      { ...AUTH, 'content-type': 'application/json' },
      '{"__proto__":{"x":1},"UserID":"U1","Name":"A"}',
      400,
      'IPDR_GW_INVALID_JSON',
    ],
    [
      'POST',
      '/api/ipdrcustomers',
      { ...AUTH, 'content-type': 'text/plain' },
      'hello',
      415,
      'IPDR_GW_UNSUPPORTED_MEDIA_TYPE',
    ],
    [
      'POST',
      '/api/ipdrcustomers',
      { ...AUTH, 'content-type': 'application/json' },
      JSON.stringify({ UserID: 'U1', Name: 'x'.repeat(2000) }),
      413,
      'IPDR_GW_BODY_TOO_LARGE',
    ],
    [
      'POST',
      '/api/ipdrcustomers',
      { ...AUTH, 'content-type': 'application/json' },
      '{"Name":"A"}',
      400,
      'IPDR_GW_VALIDATION',
    ],
    [
      'POST',
      '/api/ipdrcustomers',
      { ...AUTH, 'content-type': 'application/json' },
      '{"UserID":"U1","Name":"A","Evil":1}',
      400,
      'IPDR_GW_VALIDATION',
    ],
    [
      'PUT',
      '/api/ipdrcustomers/U1',
      { ...AUTH, 'content-type': 'application/json' },
      JSON.stringify({
        UserID: 'U2',
        Name: 'A',
        Address: '',
        Email: '',
        PhoneNumber: '',
        AltPhoneNumber: '',
      }),
      400,
      'IPDR_GW_USER_ID_MISMATCH',
    ],
    [
      'POST',
      '/api/ipdrcustomers_mapping',
      { ...AUTH, 'content-type': 'application/json' },
      '{"UserID":"U1","ipsubnet":"10.0.0.1","starttime":"10","endtime":"5"}',
      400,
      'IPDR_GW_VALIDATION',
    ],
    // Dot segments are resolved before routing (404), or refused by the UserID rules (400).
    ['DELETE', '/api/ipdrcustomers/..', AUTH, undefined, 404, 'IPDR_GW_NOT_FOUND'],
    ['DELETE', '/api/ipdrcustomers/%2e%2e', AUTH, undefined, 404, 'IPDR_GW_NOT_FOUND'],
    ['DELETE', '/api/ipdrcustomers/%2e', AUTH, undefined, 400, 'IPDR_GW_INVALID_USER_ID'],
    ['DELETE', '/api/ipdrcustomers/a%2Fb', AUTH, undefined, 400, 'IPDR_GW_INVALID_USER_ID'],
    ['DELETE', '/api/ipdrcustomers/a%0D%0Ab', AUTH, undefined, 400, 'IPDR_GW_INVALID_USER_ID'],
    ['DELETE', '/api/ipdrcustomers/a%00', AUTH, undefined, 400, 'IPDR_GW_INVALID_USER_ID'],
    ['GET', `/api/ipdrcustomers/${'x'.repeat(65)}`, AUTH, undefined, 400, 'IPDR_GW_INVALID_USER_ID'],
    ['GET', '/api/ipdrcustomers?limit=0', AUTH, undefined, 400, 'IPDR_GW_INVALID_QUERY'],
    ['GET', '/api/ipdrcustomers?bogus=1', AUTH, undefined, 400, 'IPDR_GW_INVALID_QUERY'],
    ['GET', '/api/ipdrcustomers_mapping?ip=999.1.1.1', AUTH, undefined, 400, 'IPDR_GW_INVALID_QUERY'],
    ['GET', '/api/other', AUTH, undefined, 404, 'IPDR_GW_NOT_FOUND'],
    ['GET', '/api/ipdrcustomers/a/b', AUTH, undefined, 404, 'IPDR_GW_NOT_FOUND'],
    ['GET', '//evil.example/api/ipdrcustomers', AUTH, undefined, 404, 'IPDR_GW_NOT_FOUND'],
    [
      'POST',
      '/api/ipdrcustomers/U1',
      { ...AUTH, 'content-type': 'application/json' },
      '{}',
      404,
      'IPDR_GW_NOT_FOUND',
    ],
    ['GET', '/', {}, undefined, 404, 'IPDR_GW_NOT_FOUND'],
  ]
  for (const [method, path, headers, body, status, code] of cases) {
    const res = await gw.app.inject({
      method: method as 'GET',
      url: path,
      headers,
      ...(body !== undefined ? { payload: body } : {}),
    })
    t.equal(res.statusCode, status, `${method} ${path} ${body ?? ''}: ${res.body}`)
    t.equal(res.json().code, code)
  }
  t.equal(upstream.requests.length, 0, 'the upstream saw none of them')
})

t.test('an absolute-form request target never reaches another upstream path', async (t) => {
  const { gw, upstream } = await gatewayWith(t, { kind: 'json', body: [] })
  const reply = await rawHttp(
    Number(new URL(gw.url).port),
    'GET http://evil.example/admin HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer tok\r\nX-Trisul-Username: a\r\nConnection: close\r\n\r\n',
  )
  t.match(reply, /^HTTP\/1\.1 404/)
  t.equal(upstream.requests.length, 0)
})

t.test('duplicated Authorization headers over a real socket → 401', async (t) => {
  const { gw, upstream } = await gatewayWith(t, { kind: 'json', body: [] })
  const reply = await rawHttp(
    Number(new URL(gw.url).port),
    'GET /api/ipdrcustomers HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\nX-Trisul-Username: u\r\nConnection: close\r\n\r\n',
  )
  t.match(reply, /^HTTP\/1\.1 401/)
  t.match(reply, /www-authenticate: Bearer realm="ipdr-gateway"/i)
  t.equal(upstream.requests.length, 0)
})

t.test('GET with body credentials (legacy clients)', async (t) => {
  const { gw, upstream } = await gatewayWith(t, { kind: 'json', body: [{ id: 1, UserID: 'U1' }] })
  const res = await request(`${gw.url}/api/ipdrcustomers`, {
    method: 'GET',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ api_token: 'tok', username: 'legacy', contextname: 'default' }),
  })
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), [{ id: 1, UserID: 'U1' }])
  t.same(upstream.requests[0]?.body, { api_token: 'tok', username: 'legacy', contextname: 'default' })
  const bad = await request(`${gw.url}/api/ipdrcustomers`, {
    method: 'GET',
    headers: { 'content-type': 'application/json' },
    body: '{"api_token":',
  })
  t.equal(bad.statusCode, 400)
  await bad.body.dump()
})

t.test('a listing over upstream.maxListingBytes is a 502 of its own, declared or streamed', async (t) => {
  const records = Array.from({ length: 40 }, (_, i) => ({ id: i, UserID: `U${i}`, Name: 'x'.repeat(40) }))
  const body = JSON.stringify(records)
  t.ok(body.length > 2048, 'the listing is over the limit')
  for (const behaviour of [
    { kind: 'raw', body, contentType: 'application/json' },
    // No Content-Length: the limit is found while reading.
    { kind: 'trickle', chunks: [body.slice(0, 1500), body.slice(1500)], intervalMs: 5 },
  ] as Behaviour[]) {
    const { gw } = await gatewayWith(t, behaviour, { upstream: { maxListingBytes: 2048 } })
    const res = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
    const json = (await res.body.json()) as { code: string; message: string }
    t.equal(res.statusCode, 502)
    t.equal(json.code, 'IPDR_GW_UPSTREAM_TOO_LARGE')
    t.match(json.message, /2048 bytes/, 'the message names the limit')
    const metrics = await gw.app.gatewayMetrics.registry.getSingleMetricAsString(
      'ipdr_gateway_upstream_requests_total',
    )
    t.match(
      metrics,
      /method="GET",resource="customers",outcome="invalid_response"} 1/,
      'counted as an invalid response',
    )
  }
  // Within the limit, the same listing is served.
  const { gw } = await gatewayWith(
    t,
    { kind: 'raw', body, contentType: 'application/json' },
    {
      upstream: { maxListingBytes: 1_000_000 },
    },
  )
  const ok = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
  t.equal(ok.statusCode, 200)
  t.equal(await ok.body.text(), body)
  const fills = await gw.app.gatewayMetrics.registry.getSingleMetricAsString(
    'ipdr_gateway_cache_fill_duration_seconds',
  )
  t.match(
    fills,
    /ipdr_gateway_cache_fill_duration_seconds_count\{resource="customers"\} 1/,
    'the fill is timed',
  )
})
