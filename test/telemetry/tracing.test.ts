/**
 * Tracing (SPEC 18), against an OTLP/HTTP receiver on loopback: the spans of
 * a hit (below Fastify), a miss (cache fill, upstream client span), a write
 * (audit writes, coherence wait) and an upstream timeout, with their
 * parent/child links, kinds and attributes, the client's trace continued;
 * `traceparent` sent to Trisul whatever is sampled; the trace id in the
 * access line and the audit lines; parent-based sampling; no export without
 * an endpoint.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { parseTraceparent } from '../../src/telemetry/trace-context.js'
import { logCapture, makePolicy, startGateway, tempDir } from '../helpers/gateway.js'
import { startOtlpReceiver } from '../helpers/otlp-receiver.js'
import { type Behaviour, startRecordingUpstream } from '../helpers/recording-upstream.js'

const AUTH = { authorization: 'Bearer tok-1234', 'x-trisul-username': 'crm' }
const CUSTOMERS = [{ id: 1, UserID: 'U1', Name: 'Asha' }]
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT = '00f067aa0ba902b7'
const sampled = (trace = TRACE) => `00-${trace}-${PARENT}-01`

async function setup(
  t: Test,
  opts: {
    endpoint?: boolean
    sampleRatio?: number
    maxSampledPerSecond?: number
    upstream?: (url: string) => Behaviour
  } = {},
) {
  const receiver = await startOtlpReceiver(t)
  const upstream = await startRecordingUpstream(
    (req) =>
      opts.upstream?.(req.url) ?? {
        kind: 'json',
        body: req.method === 'GET' ? CUSTOMERS : { ...CUSTOMERS[0], Name: 'Renamed' },
      },
  )
  t.teardown(() => upstream.close())
  const dir = tempDir(t)
  const auditFile = join(dir, 'audit.jsonl')
  const policy = await makePolicy(t, {
    gateway: {
      telemetry: {
        sampleRatio: opts.sampleRatio ?? 0,
        ...(opts.maxSampledPerSecond === undefined ? {} : { maxSampledPerSecond: opts.maxSampledPerSecond }),
      },
      audit: { file: auditFile },
      upstream: { timeoutMs: 300 },
    },
  })
  const log = logCapture()
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    otlpEndpoint: opts.endpoint === false ? null : receiver.endpoint,
    spanExportDelayMs: 50,
    logger: { level: 'info', stream: log.stream },
  })
  const send = async (method: string, path: string, headers: Record<string, string> = {}, body?: unknown) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'GET',
      headers: { ...AUTH, ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    await res.body.dump()
    return res
  }
  const auditLines = () =>
    readFileSync(auditFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
  return { receiver, upstream, gw, send, log, auditLines }
}

t.test("a miss and a hit continue the client's trace; Trisul gets traceparent", async (t) => {
  const s = await setup(t)
  const miss = await s.send('GET', '/api/ipdrcustomers', { traceparent: sampled() })
  t.equal(miss.headers['x-cache'], 'MISS')
  await s.receiver.waitFor((spans) => spans.some((x) => x.kind === 'server'))
  const server = s.receiver.spans.find((x) => x.kind === 'server')
  const fill = s.receiver.spans.find((x) => x.name === 'cache fill')
  const client = s.receiver.spans.find((x) => x.kind === 'client')
  t.equal(server?.traceId, TRACE, "the client's trace id")
  t.equal(server?.parentSpanId, PARENT, "the server span's parent is the client's span")
  t.match(server?.attributes, {
    'http.route': '/api/ipdrcustomers',
    'http.response.status_code': 200,
    'ipdr.consumer': 'default',
    'ipdr.cache': 'MISS',
  })
  t.equal(server?.service, 'ipdr-gateway')
  t.equal(fill?.parentSpanId, server?.spanId, 'the fill is a child of the server span')
  t.equal(fill?.kind, 'internal')
  t.equal(client?.parentSpanId, fill?.spanId, 'the upstream request is a child of the fill')
  t.match(client?.attributes, { 'http.request.method': 'GET', 'http.response.status_code': 200 })
  const sent = parseTraceparent(s.upstream.requests[0]?.headers.traceparent)
  t.same(
    sent,
    { traceId: TRACE, parentId: client?.spanId, sampled: true },
    'Trisul sees the client span as parent',
  )

  // The hit, answered below Fastify, makes its own server span in the same trace.
  const before = s.receiver.spans.length
  const hit = await s.send('GET', '/api/ipdrcustomers', { traceparent: sampled() })
  t.equal(hit.headers['x-cache'], 'HIT')
  await s.receiver.waitFor((spans) => spans.length > before)
  const hitSpan = s.receiver.spans.slice(before).find((x) => x.kind === 'server')
  t.equal(hitSpan?.traceId, TRACE)
  t.match(hitSpan?.attributes, { 'ipdr.cache': 'HIT', 'http.response.status_code': 200 })
  t.equal(s.upstream.requests.length, 1, 'the hit asked nobody')
  const lines = s.log.lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request')
  t.same(
    lines.map((l) => l.traceId),
    [TRACE, TRACE],
    'the access lines carry the trace id',
  )
})

t.test('a write: audit writes and the coherence wait, the trace id in the audit lines', async (t) => {
  const s = await setup(t)
  const res = await s.send('PATCH', '/api/ipdrcustomers/U1', { traceparent: sampled() }, { Name: 'Renamed' })
  t.equal(res.statusCode, 200)
  await s.receiver.waitFor((spans) => spans.some((x) => x.kind === 'server'))
  const server = s.receiver.spans.find((x) => x.kind === 'server')
  const children = s.receiver.spans.filter((x) => x.parentSpanId === server?.spanId)
  t.same(
    children
      .map(
        (x) => `${x.name}${x.attributes['ipdr.audit_phase'] ? ` ${x.attributes['ipdr.audit_phase']}` : ''}`,
      )
      .sort(),
    [
      'PATCH /api/ipdrcustomers/U1',
      'audit write intent',
      'audit write outcome',
      'coherence wait',
      'rate limit',
    ].sort(),
  )
  t.equal(children.find((x) => x.kind === 'client')?.name, 'PATCH /api/ipdrcustomers/U1')
  const audit = s.auditLines().filter((l) => l.phase === 'intent' || l.phase === 'outcome')
  t.same(
    audit.map((l) => l.traceId),
    [TRACE, TRACE],
    'intent and outcome name the trace',
  )
})

t.test('an upstream timeout: the client span failed, the server span a 504', async (t) => {
  const s = await setup(t, { upstream: () => ({ kind: 'hang' }) })
  const res = await s.send('GET', '/api/ipdrcustomers', { traceparent: sampled() })
  t.equal(res.statusCode, 504)
  await s.receiver.waitFor((spans) => spans.some((x) => x.kind === 'server'))
  const server = s.receiver.spans.find((x) => x.kind === 'server')
  const client = s.receiver.spans.find((x) => x.kind === 'client')
  t.equal(server?.attributes['http.response.status_code'], 504)
  t.equal(server?.status.code, 2, 'the server span is an error')
  t.match(client?.attributes, { 'ipdr.upstream_outcome': 'timeout' })
  t.equal(client?.status.code, 2)
  t.equal(s.receiver.spans.find((x) => x.name === 'cache fill')?.status.code, 2, 'the fill failed too')
})

t.test('sampling is parent-based at sampleRatio', async (t) => {
  const off = await setup(t, { sampleRatio: 0 })
  await off.send('GET', '/api/ipdrcustomers', { traceparent: `00-${TRACE}-${PARENT}-00` })
  await off.send('GET', '/api/ipdrcustomers?q=a')
  await new Promise((r) => setTimeout(r, 400))
  t.equal(off.receiver.spans.length, 0, 'an unsampled parent, and a new trace at ratio 0: nothing exported')
  const passed = parseTraceparent(off.upstream.requests[0]?.headers.traceparent)
  t.match(passed, { traceId: TRACE, sampled: false }, "Trisul still gets the client's trace, unsampled")

  const all = await setup(t, { sampleRatio: 1 })
  await all.send('GET', '/api/ipdrcustomers')
  await all.receiver.waitFor((spans) => spans.some((x) => x.kind === 'server'))
  const root = all.receiver.spans.find((x) => x.kind === 'server')
  t.match(root?.traceId, /^[0-9a-f]{32}$/, 'a new trace at ratio 1')
  t.equal(root?.parentSpanId, '', 'a root span')
})

t.test('a client that marks every request sampled cannot make the gateway record them all', async (t) => {
  const s = await setup(t, { maxSampledPerSecond: 3 })
  const started = performance.now()
  for (let i = 0; i < 20; i++) await s.send('GET', '/api/ipdrcustomers?q=a', { traceparent: sampled() })
  // Twenty requests may straddle one second boundary: at most two seconds' worth recorded.
  const seconds = Math.floor(performance.now() / 1000) - Math.floor(started / 1000) + 1
  await s.receiver.waitFor((spans) => spans.some((x) => x.kind === 'server'))
  await new Promise((r) => setTimeout(r, 300))
  const servers = s.receiver.spans.filter((x) => x.kind === 'server').length
  t.ok(servers >= 3 && servers <= 3 * seconds, `${servers} of 20 recorded (at most 3 a second)`)
  const lines = s.log.lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request')
  t.equal(lines.filter((l) => l.traceId === TRACE).length, 20, 'every request still in the trace')
})

t.test('no endpoint: no span, but the trace still travels and is logged', async (t) => {
  const s = await setup(t, { endpoint: false, sampleRatio: 1 })
  await s.send('GET', '/api/ipdrcustomers', { traceparent: sampled() })
  await s.send('GET', '/api/ipdrcustomers')
  await new Promise((r) => setTimeout(r, 300))
  t.equal(s.receiver.posts(), 0, 'nothing exported')
  t.same(parseTraceparent(s.upstream.requests[0]?.headers.traceparent), {
    traceId: TRACE,
    parentId: PARENT,
    sampled: true,
  })
  const lines = s.log.lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request')
  t.equal(lines[0]?.traceId, TRACE)
  t.match(lines[1]?.traceId, /^[0-9a-f]{32}$/)
  t.not(lines[1]?.traceId, TRACE, 'a new trace for a request without traceparent')
})

t.test(
  'a write through one of two instances over Redis: its coherence wait covers the other acknowledging',
  async (t) => {
    const { startRedis } = await import('../helpers/redis-server.js')
    const { startInstances, untilShared } = await import('../store/cluster.js')
    const redis = await startRedis(t)
    const receiver = await startOtlpReceiver(t)
    const upstream = await startRecordingUpstream((req) => ({
      kind: 'json',
      body: req.method === 'GET' ? CUSTOMERS : { ...CUSTOMERS[0], Name: 'Renamed' },
    }))
    t.teardown(() => upstream.close())
    const [a, b] = await startInstances(t, {
      n: 2,
      redis,
      upstreamUrl: upstream.url,
      spec: { gateway: { telemetry: { sampleRatio: 0 } } },
      app: { otlpEndpoint: receiver.endpoint, spanExportDelayMs: 50 },
    })
    await untilShared([a!, b!])
    // B holds the listing, so A's write must wait for B to apply it.
    for (let i = 0; i < 2; i++)
      await (await request(`${b!.url}/api/ipdrcustomers`, { headers: AUTH })).body.dump()
    const res = await request(`${a!.url}/api/ipdrcustomers/U1`, {
      method: 'PATCH',
      headers: { ...AUTH, traceparent: sampled(), 'content-type': 'application/json' },
      body: '{"Name":"Renamed"}',
    })
    await res.body.dump()
    t.equal(res.statusCode, 200)
    await receiver.waitFor((spans) =>
      spans.some((x) => x.kind === 'server' && x.attributes['http.request.method'] === 'PATCH'),
    )
    const server = receiver.spans.find(
      (x) => x.kind === 'server' && x.attributes['http.request.method'] === 'PATCH',
    )
    const wait = receiver.spans.find((x) => x.name === 'coherence wait')
    t.equal(wait?.traceId, TRACE)
    t.equal(wait?.parentSpanId, server?.spanId, 'the wait is a child of the write')
    const read = await request(`${b!.url}/api/ipdrcustomers`, { headers: AUTH })
    // SPEC 19: B applied the write before it acknowledged, so its read is a hit that shows it.
    t.equal(read.headers['x-cache'], 'HIT', 'B answers from its cache: the wait was for its acknowledgement')
    t.match(await read.body.text(), /"Renamed"/)
  },
)
