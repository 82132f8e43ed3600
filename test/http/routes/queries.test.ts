/**
 * The IPDR Query API through the gateway and the real emulator (SPEC 12):
 * the workflow with each time form, `wait`, CSV, cancel, another user's
 * query, the policy's `queries` resource, validation before the upstream,
 * the result cache and the audit lines.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { type RunningEmulator, startEmulator } from '../../../src/emulator/index.js'
import { parseTrisulTime } from '../../../src/shared/trisul-time.js'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway, tempDir } from '../../helpers/gateway.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

const LEA_TOKEN = 'lea-token-not-secret'
const OTHER_TOKEN = 'other-token-not-secret'
const CRM_TOKEN = 'crm-token-not-secret'
const ZONE = 'Asia/Kolkata'
const QUERIES = ['list', 'create', 'read', 'cancel']

const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`
const LEA = basic('lea', LEA_TOKEN)
const OTHER = basic('other', OTHER_TOKEN)
const CRM = basic('crm', CRM_TOKEN)

interface Reply {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  // biome-ignore lint/suspicious/noExplicitAny: tests read arbitrary JSON shapes
  json: any
}

async function call(
  url: string,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  auth: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const res = await request(`${url}${path}`, {
    method,
    headers: {
      authorization: auth,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const text = await res.body.text()
  let json: unknown = null
  try {
    json = JSON.parse(text)
  } catch {
    json = null
  }
  return { status: res.statusCode, headers: res.headers, text, json }
}

/** An emulator with three users, one customer U7 holding 10.0.0.7 from 2024-01-01, and a gateway with an audit trail. */
async function setup(t: Test, querySeconds: number) {
  const emu: RunningEmulator = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [
      { name: 'lea', token: LEA_TOKEN, contexts: null },
      { name: 'other', token: OTHER_TOKEN, contexts: null },
      { name: 'crm', token: CRM_TOKEN, contexts: null },
      { name: 'masked', token: OTHER_TOKEN, contexts: null },
    ],
    querySeconds,
    timeZone: ZONE,
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  const cred = { api_token: CRM_TOKEN, username: 'crm' }
  const put = async (path: string, body: object) => {
    const res = await request(`${emu.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...cred, ...body }),
    })
    t.equal(res.statusCode, 200, `seeded ${path}`)
    await res.body.text()
  }
  await put('/api/ipdrcustomers', { contextname: 'default', UserID: 'U7', Name: 'Asha Rao' })
  await put('/api/ipdrcustomers_mapping', {
    context: 'default',
    UserID: 'U7',
    ipsubnet: '10.0.0.0/29',
    starttime: '1704067200',
    terminalid: 'T0007',
  })
  const auditFile = join(tempDir(t), 'audit.jsonl')
  const policy = await makePolicy(t, {
    gateway: { audit: { file: auditFile }, upstream: { timeoutMs: 5000 } },
    consumers: {
      default: PERMISSIVE_DEFAULT,
      lea: { usernames: ['lea'], operations: { queries: QUERIES } },
      other: { usernames: ['other'], operations: { queries: QUERIES } },
      masked: { usernames: ['masked'], operations: { queries: QUERIES }, redact: ['UserID'] },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const audit = () =>
    readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
  return { url: gw.url, app: gw.app, audit }
}

t.test('the workflow: create with each time form, poll, result with and without headers, CSV', async (t) => {
  const { url, audit } = await setup(t, 0)
  const forms: [string, unknown, unknown][] = [
    ['Trisul', '01-03-2024 00:00:00', '02-03-2024 00:00:00'],
    ['ISO 8601', '2024-02-29T18:30:00Z', '2024-03-01T18:30:00Z'],
    ['Unix seconds', 1709231400, '1709317800'],
  ]
  const ids: number[] = []
  for (const [form, from_time, to_time] of forms) {
    const created = await call(url, 'POST', '/api/ipdr_query/new', LEA, {
      ip: '10.0.0.7',
      from_time,
      to_time,
    })
    t.equal(created.status, 200, `${form}: created`)
    t.equal(created.json.status, 'SUCCESS')
    ids.push(created.json.query_id)
    const status = await call(url, 'GET', `/api/ipdr_query/status?query_id=${created.json.query_id}`, LEA)
    t.equal(status.status, 200)
    // Every form reaches Trisul as the same wall-clock window in upstream.timeZone.
    t.same(
      [status.json.from_time, status.json.to_time],
      ['01-03-2024 00:00:00', '02-03-2024 00:00:00'],
      `${form}: sent in Trisul's format, in ${ZONE}`,
    )
    t.equal(status.json.CurrentStatus, 'COMPLETED')
  }
  const all = await call(url, 'GET', `/api/ipdr_query/result?query_id=${ids[0]}`, LEA)
  t.equal(all.status, 200)
  t.equal(all.headers['x-cache'], 'MISS')
  t.equal(all.headers['cache-control'], 'no-store')
  t.ok(all.json.rows.length > 0, 'the IP was held: rows')
  // SPEC 12's 13 columns written out, not QUERY_COLUMNS: the row is checked against the contract.
  t.same(Object.keys(all.json.rows[0]), [
    'Protocol',
    'SrcIP',
    'SrcPort',
    'DestIP',
    'DestPort',
    'StartTime',
    'EndTime',
    'Duration',
    'UserID',
    'SubscriberID',
    'NatIP',
    'NatPort',
    'DeviceIP',
  ])
  t.ok(
    all.json.rows.every((r: Record<string, string>) => r.UserID === 'U7' && r.SubscriberID === 'T0007'),
    'who had 10.0.0.7: U7',
  )
  const some = await call(
    url,
    'GET',
    `/api/ipdr_query/result?query_id=${ids[0]}&headers=UserID,StartTime`,
    LEA,
  )
  t.equal(some.status, 200)
  t.equal(some.headers['x-cache'], 'HIT', 'a completed result is served from the cache')
  t.same(
    some.json.rows,
    all.json.rows.map((r: Record<string, string>) => ({ UserID: r.UserID, StartTime: r.StartTime })),
  )
  const csv = await call(
    url,
    'GET',
    `/api/ipdr_query/result?query_id=${ids[0]}&headers=UserID,DestIP`,
    LEA,
    undefined,
    {
      accept: 'text/csv',
    },
  )
  t.equal(csv.status, 200)
  t.match(csv.headers['content-type'], /^text\/csv/)
  const lines = csv.text.trimEnd().split('\r\n')
  t.equal(lines[0], 'UserID,DestIP', 'a header line')
  t.same(
    lines.slice(1),
    all.json.rows.map((r: Record<string, string>) => `${r.UserID},${r.DestIP}`),
  )
  // Legacy clients may send the parameters in a GET body.
  const legacy = await call(url, 'GET', '/api/ipdr_query/status', LEA, { query_id: ids[1] })
  t.equal(legacy.status, 200)
  const list = await call(url, 'GET', '/api/ipdr_query/list?count=2', LEA)
  t.equal(list.status, 200)
  t.same(
    list.json.ipdr_controls.map((q: { id: number }) => q.id),
    [ids[2], ids[1]],
    'newest first, count honoured',
  )
  // Audit: create and result read, each with the IP and window; never a credential.
  const lines2 = audit()
  const creates = lines2.filter(
    (l) => l.resource === 'queries' && l.operation === 'create' && l.phase === 'intent',
  )
  t.equal(creates.length, 3)
  t.same(creates[0].fields, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
  })
  const reads = lines2.filter((l) => l.operation === 'read' && l.phase === 'outcome')
  t.equal(reads.length, 3, 'every result read is audited, cached or not')
  t.same(reads[0].query, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
    CurrentStatus: 'COMPLETED',
  })
  t.notOk(JSON.stringify(lines2).includes(LEA_TOKEN), 'no token in the audit trail')
  t.equal(
    lines2.filter((l) => l.fields?.query_id === ids[1] && l.operation === 'read').length,
    0,
    'status reads are not audited',
  )
})

t.test('wait returns once the query completes; past the bound 409 with Retry-After', async (t) => {
  const { url } = await setup(t, 2)
  const created = await call(url, 'POST', '/api/ipdr_query/new', LEA, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
  })
  const id = created.json.query_id
  const early = await call(url, 'GET', `/api/ipdr_query/result?query_id=${id}`, LEA)
  t.equal(early.status, 409, 'not completed yet')
  t.equal(early.json.code, 'IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED')
  t.equal(early.headers['retry-after'], '1')
  const began = performance.now()
  const waited = await call(url, 'GET', `/api/ipdr_query/result?query_id=${id}&wait=30`, LEA)
  const ms = performance.now() - began
  t.equal(waited.status, 200, 'held until the query completed')
  t.equal(waited.json.CurrentStatus, 'COMPLETED')
  t.ok(ms < 25_000, `answered when the query completed, long before the bound (${Math.round(ms)} ms)`)

  const slow = await setup(t, 3600)
  const pending = await call(slow.url, 'POST', '/api/ipdr_query/new', LEA, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
  })
  const t0 = performance.now()
  const timedOut = await call(
    slow.url,
    'GET',
    `/api/ipdr_query/result?query_id=${pending.json.query_id}&wait=1`,
    LEA,
  )
  t.equal(timedOut.status, 409, 'the bound passed: 409')
  t.equal(timedOut.headers['retry-after'], '1')
  t.ok(performance.now() - t0 >= 900, 'it did wait for the bound')
  const tooLong = await call(
    slow.url,
    'GET',
    `/api/ipdr_query/result?query_id=${pending.json.query_id}&wait=61`,
    LEA,
  )
  t.equal(tooLong.status, 400, 'wait is at most 60')
})

t.test('a waiting result read is released when the client goes away', async (t) => {
  const { url, audit } = await setup(t, 3600)
  const created = await call(url, 'POST', '/api/ipdr_query/new', LEA, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
  })
  const controller = new AbortController()
  const pending = request(`${url}/api/ipdr_query/result?query_id=${created.json.query_id}&wait=60`, {
    headers: { authorization: LEA },
    signal: controller.signal,
  }).catch((err: Error) => err)
  await new Promise((r) => setTimeout(r, 300))
  controller.abort()
  t.ok((await pending) instanceof Error, 'the client gave up')
  // The gateway stops polling and records the read as abandoned, within a poll interval or two.
  let outcome: { status?: number; code?: string } | undefined
  const aborted = performance.now()
  for (let i = 0; i < 50 && !outcome; i++) {
    await new Promise((r) => setTimeout(r, 100))
    outcome = audit().find((l) => l.operation === 'read' && l.phase === 'outcome')
  }
  t.comment(`outcome recorded ${Math.round(performance.now() - aborted)} ms after the client left`)
  t.equal(outcome?.status, 499, 'the outcome line says the client closed')
  t.equal(outcome?.code, 'CLIENT_CLOSED')
})

t.test('cancel; cancel of a completed query is 409; another user’s query is 403', async (t) => {
  const slow = await setup(t, 3600)
  const body = { ip: '2001:db8::7', from_time: '01-03-2024 00:00:00', to_time: '02-03-2024 00:00:00' }
  const created = await call(slow.url, 'POST', '/api/ipdr_query/new', LEA, body)
  const id = created.json.query_id
  const foreign = await call(slow.url, 'GET', `/api/ipdr_query/status?query_id=${id}`, OTHER)
  t.equal(foreign.status, 403)
  t.equal(foreign.json.code, 'IPDR_GW_UPSTREAM_QUERY_FORBIDDEN')
  const missing = await call(slow.url, 'GET', '/api/ipdr_query/status?query_id=99999', LEA)
  t.equal(missing.status, 404)
  const cancelled = await call(slow.url, 'PUT', '/api/ipdr_query/cancel', LEA, { query_id: id })
  t.equal(cancelled.status, 200)
  t.equal(cancelled.json.status, 'SUCCESS')
  const again = await call(slow.url, 'PUT', '/api/ipdr_query/cancel', LEA, { query_id: id })
  t.equal(again.status, 409, 'a cancelled query cannot be cancelled again')
  t.equal(again.json.code, 'IPDR_GW_UPSTREAM_QUERY_NOT_CANCELABLE')
  const cancelLines = slow.audit().filter((l) => l.operation === 'cancel' && l.phase === 'outcome')
  t.same(
    cancelLines.map((l) => [l.status, l.query?.ip]),
    [
      [200, '2001:db8::7'],
      [409, undefined],
    ],
    'both cancels audited, the first with the IP',
  )

  const fast = await setup(t, 0)
  const done = await call(fast.url, 'POST', '/api/ipdr_query/new', LEA, body)
  const late = await call(fast.url, 'PUT', '/api/ipdr_query/cancel', LEA, { query_id: done.json.query_id })
  t.equal(late.status, 409, 'a completed query cannot be cancelled')
})

t.test('the policy: the default consumer gets 403 and Trisul is never asked', async (t) => {
  const upstream = await startRecordingUpstream()
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    consumers: {
      default: PERMISSIVE_DEFAULT,
      reader: { usernames: ['reader'], operations: { queries: ['list', 'read'] } },
    },
  })
  const { url } = await startGateway(t, { policy, upstreamUrl: upstream.url })
  for (const [method, path] of [
    ['GET', '/api/ipdr_query/list'],
    ['POST', '/api/ipdr_query/new'],
    ['GET', '/api/ipdr_query/status?query_id=1'],
    ['GET', '/api/ipdr_query/result?query_id=1'],
    ['PUT', '/api/ipdr_query/cancel'],
  ] as const) {
    const res = await call(url, method, path, CRM, method === 'GET' ? undefined : { query_id: 1 })
    t.equal(res.status, 403, `${method} ${path}: 403 for the default consumer`)
    t.equal(res.json.code, 'IPDR_GW_OPERATION_FORBIDDEN')
  }
  const reader = basic('reader', 'x')
  t.equal(
    (await call(url, 'PUT', '/api/ipdr_query/cancel', reader, { query_id: 1 })).status,
    403,
    'read-only desk',
  )
  t.equal((await call(url, 'GET', '/api/ipdr_query/list', '')).status, 401, 'no credentials: 401')
  t.equal(upstream.requests.length, 0, 'nothing reached the upstream')
})

t.test('bad input never reaches the upstream', async (t) => {
  const upstream = await startRecordingUpstream()
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    consumers: { lea: { usernames: ['lea'], operations: { queries: QUERIES } } },
  })
  const { url } = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const window = { from_time: '01-03-2024 00:00:00', to_time: '02-03-2024 00:00:00' }
  const bad: [string, 'GET' | 'POST' | 'PUT', string, unknown][] = [
    ['a malformed IP', 'POST', '/api/ipdr_query/new', { ...window, ip: '10.0.0.300' }],
    ['a subnet, not an address', 'POST', '/api/ipdr_query/new', { ...window, ip: '10.0.0.0/24' }],
    ['no ip', 'POST', '/api/ipdr_query/new', window],
    [
      'a window that ends before it starts',
      'POST',
      '/api/ipdr_query/new',
      { ip: '10.0.0.7', from_time: '02-03-2024 00:00:00', to_time: '01-03-2024 00:00:00' },
    ],
    ['an empty window', 'POST', '/api/ipdr_query/new', { ip: '10.0.0.7', from_time: 5, to_time: 5 }],
    [
      'a day that does not exist',
      'POST',
      '/api/ipdr_query/new',
      { ip: '10.0.0.7', from_time: '31-02-2024 00:00:00', to_time: 9e9 },
    ],
    [
      'an ISO time without offset',
      'POST',
      '/api/ipdr_query/new',
      { ip: '10.0.0.7', from_time: '2024-03-01T00:00:00', to_time: 9e9 },
    ],
    ['an unknown field', 'POST', '/api/ipdr_query/new', { ...window, ip: '10.0.0.7', port: 80 }],
    ['a body that is not an object', 'POST', '/api/ipdr_query/new', [1]],
    ['no query_id', 'GET', '/api/ipdr_query/status', undefined],
    ['a query_id that is not a number', 'GET', '/api/ipdr_query/status?query_id=1;DROP', undefined],
    ['query_id twice', 'GET', '/api/ipdr_query/status?query_id=1&query_id=2', undefined],
    ['an unknown column', 'GET', '/api/ipdr_query/result?query_id=1&headers=SrcIP,Password', undefined],
    ['a count of 0', 'GET', '/api/ipdr_query/list?count=0', undefined],
    ['wait not a number', 'GET', '/api/ipdr_query/result?query_id=1&wait=soon', undefined],
  ]
  for (const [what, method, path, body] of bad) {
    const res = await call(url, method, path, LEA, body)
    t.equal(res.status, 400, `${what}: 400`)
    t.match(res.json?.code, /^IPDR_GW_(VALIDATION|INVALID_QUERY)$/, what)
  }
  t.equal(upstream.requests.length, 0, 'nothing reached the upstream')
})

t.test('the upstream’s envelopes and real statuses become the documented statuses', async (t) => {
  const cases: [string, number, number, string][] = [
    ['Query is not completed', 200, 409, 'IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED'],
    ['Query is not in NEW or INPROGRESS state', 409, 409, 'IPDR_GW_UPSTREAM_QUERY_NOT_CANCELABLE'],
    ['Query ID not found', 404, 404, 'IPDR_GW_UPSTREAM_NOT_FOUND'],
    ['You are not authorized to access this query', 403, 403, 'IPDR_GW_UPSTREAM_QUERY_FORBIDDEN'],
    ['You and not allowed to acess the context ipdr', 200, 403, 'IPDR_GW_UPSTREAM_CONTEXT_FORBIDDEN'],
    ['Context ipdr not found', 200, 404, 'IPDR_GW_UPSTREAM_NOT_FOUND'],
    ['Invalid API token', 401, 401, 'IPDR_GW_UPSTREAM_INVALID_TOKEN'],
    ['Invalid IP address', 400, 422, 'IPDR_GW_UPSTREAM_REJECTED'],
    ['Invalid from time. Please use the format DD-MM-YYYY HH:MM:SS', 200, 422, 'IPDR_GW_UPSTREAM_REJECTED'],
    ['Headers should be an array', 200, 422, 'IPDR_GW_UPSTREAM_REJECTED'],
    ['Invalid headers: Foo', 200, 422, 'IPDR_GW_UPSTREAM_REJECTED'],
  ]
  let next = cases[0] as (typeof cases)[number]
  const upstream = await startRecordingUpstream(() => ({
    kind: 'json',
    status: next[1],
    body: { status: 'Error', message: next[0] },
  }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    consumers: { lea: { usernames: ['lea'], operations: { queries: QUERIES } } },
  })
  const { url } = await startGateway(t, { policy, upstreamUrl: upstream.url })
  for (const c of cases) {
    next = c
    const res = await call(url, 'GET', '/api/ipdr_query/status?query_id=3', LEA)
    t.equal(res.status, c[2], `${c[0]} (HTTP ${c[1]}) → ${c[2]}`)
    t.equal(res.json.code, c[3])
    t.equal(res.json.message, c[0], 'the upstream message is kept')
  }
  const sent = upstream.requests.at(-1)
  t.same(
    sent?.body,
    { query_id: 3, api_token: LEA_TOKEN, username: 'lea', contextname: 'default' },
    'credentials in the body of the GET, built by the gateway',
  )
  t.equal(sent?.method, 'GET')
  t.equal(sent?.url, '/api/ipdr_query/status')
})

t.test('metrics count the Query API under resource="queries"', async (t) => {
  const { url, app } = await setup(t, 0)
  const created = await call(url, 'POST', '/api/ipdr_query/new', LEA, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
  })
  await call(url, 'GET', `/api/ipdr_query/result?query_id=${created.json.query_id}`, LEA)
  await call(url, 'GET', `/api/ipdr_query/result?query_id=${created.json.query_id}`, LEA)
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(text, /ipdr_gateway_upstream_requests_total\{method="POST",resource="queries",outcome="ok"\} 1/)
  t.match(text, /ipdr_gateway_upstream_requests_total\{method="GET",resource="queries",outcome="ok"\} 1/)
  t.match(text, /ipdr_gateway_cache_lookups_total\{resource="queries",result="hit"\} 1/)
  t.match(text, /ipdr_gateway_cache_lookups_total\{resource="queries",result="miss"\} 1/)
  t.match(text, /ipdr_gateway_cache_entries\{resource="queries"\} 1/)
  t.match(
    text,
    /ipdr_gateway_http_requests_total\{method="GET",route="\/api\/ipdr_query\/result",status_code="200",consumer="lea"\} 2/,
  )
  t.ok(
    parseTrisulTime('01-03-2024 00:00:00', ZONE) === 1709231400,
    'the window used above is 2024-02-29T18:30:00Z',
  )
})

t.test("a consumer's redact masks the result rows too, in JSON and CSV", async (t) => {
  const { url } = await setup(t, 0)
  const MASKED = basic('masked', OTHER_TOKEN)
  const created = await call(url, 'POST', '/api/ipdr_query/new', MASKED, {
    ip: '10.0.0.7',
    from_time: '01-03-2024 00:00:00',
    to_time: '02-03-2024 00:00:00',
  })
  const id = created.json.query_id
  const json = await call(
    url,
    'GET',
    `/api/ipdr_query/result?query_id=${id}&headers=UserID,SubscriberID`,
    MASKED,
  )
  t.ok(json.json.rows.length > 0)
  t.ok(
    json.json.rows.every((r: Record<string, string>) => r.UserID === '***' && r.SubscriberID === 'T0007'),
    'UserID masked, the rest kept',
  )
  const csv = await call(
    url,
    'GET',
    `/api/ipdr_query/result?query_id=${id}&headers=UserID,SubscriberID`,
    MASKED,
    undefined,
    {
      accept: 'text/csv',
    },
  )
  t.ok(
    csv.text
      .trimEnd()
      .split('\r\n')
      .slice(1)
      .every((l) => l === '***,T0007'),
    'masked in CSV',
  )
})

t.test(
  'request_id (SPEC 17): passed through, and Idempotency-Key makes a retried create never a second lookup',
  async (t) => {
    const { url } = await setup(t, 0)
    const window = { ip: '10.0.0.7', from_time: '01-03-2024 00:00:00', to_time: '02-03-2024 00:00:00' }
    const first = await call(url, 'POST', '/api/ipdr_query/new', LEA, window, {
      'idempotency-key': 'crm-case-42',
    })
    t.equal(first.status, 200)
    const retried = await call(url, 'POST', '/api/ipdr_query/new', LEA, window, {
      'idempotency-key': 'crm-case-42',
    })
    t.equal(retried.status, 409, 'the retry is refused by Trisul, not run again')
    t.match(retried.json, {
      code: 'IPDR_GW_UPSTREAM_CONFLICT',
      message: /Duplicate request_id : crm-case-42/,
    })
    const listed = await call(url, 'GET', '/api/ipdr_query/list?count=10', LEA)
    t.equal(listed.json.ipdr_controls.length, 1, 'one query in Trisul')
    const inBody = await call(url, 'POST', '/api/ipdr_query/new', LEA, {
      ...window,
      request_id: 'crm-case-43',
    })
    t.equal(inBody.status, 200, 'request_id in the body is passed through')
    const status = await call(url, 'GET', '/api/ipdr_query/status?request_id=crm-case-42', LEA)
    t.equal(status.status, 200, 'status by request_id, from the query string')
    t.equal(status.json.CurrentStatus, 'COMPLETED')
    const result = await call(url, 'GET', '/api/ipdr_query/result?request_id=crm-case-43', LEA)
    t.equal(result.status, 200, 'result by request_id')
    t.ok(Array.isArray(result.json.rows))
    const other = await call(url, 'GET', '/api/ipdr_query/status?request_id=crm-case-42', OTHER)
    t.equal(other.status, 404, "another user's request_id names no query of theirs")
    const differ = await call(
      url,
      'POST',
      '/api/ipdr_query/new',
      LEA,
      { ...window, request_id: 'a' },
      {
        'idempotency-key': 'b',
      },
    )
    t.equal(differ.status, 400, 'an Idempotency-Key that differs from request_id')
    const bad = await call(url, 'POST', '/api/ipdr_query/new', LEA, window, {
      'idempotency-key': 'no spaces please',
    })
    t.equal(bad.status, 400)
    t.equal(
      (await call(url, 'GET', '/api/ipdr_query/status', LEA)).status,
      400,
      'query_id or request_id is required',
    )
  },
)
