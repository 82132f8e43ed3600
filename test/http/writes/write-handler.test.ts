/**
 * The write answered below Fastify (src/http/writes/write-handler.ts), on real
 * sockets (`inject` never reaches the server's listener): the same sequences of
 * writes, good and bad, against a gateway with it and one without any path below
 * Fastify give the same status, the same headers in the same order and the same
 * bytes, and the upstream sees the same requests.
 */
import { Agent, request } from 'node:http'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { LOG_REDACT_PATHS } from '../../../src/logging.js'
import { logCapture, makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../../helpers/gateway.js'
import { CREDENTIALS } from '../../helpers/listing-fast-path-fixtures.js'
import { type RecordedRequest, startRecordingUpstream } from '../../helpers/recording-upstream.js'
import { fastifyRequests, send, type Wire } from '../../helpers/wire.js'

const wire = (w: Wire) => ({ status: w.status, headers: w.headers, body: w.body })
const json = (w: Wire) => JSON.parse(Buffer.from(w.body, 'base64').toString('utf8'))

/** A PATCH of customer U1 as alice, its length declared (Node frames no body of its own here). */
function patchU1(agent: Agent, base: string, fields: unknown, extra: Record<string, string> = {}) {
  const body = JSON.stringify(fields)
  const headers = {
    ...(CREDENTIALS.alice as Record<string, string>),
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
    ...extra,
  }
  return send(agent, base, 'PATCH', '/api/ipdrcustomers/U1', headers, body)
}

/** Trisul's answers, from what the write asks: a record, an envelope, a 500, a refused token. */
function trisul(req: RecordedRequest) {
  const body = (req.body ?? {}) as Record<string, unknown>
  if (body.api_token === 'revoked')
    return { kind: 'json' as const, body: { status: 'ERROR', message: 'Invalid API token' } }
  if (body.Name === 'Envelope')
    return { kind: 'json' as const, body: { status: 'ERROR', message: 'Customer not found' } }
  if (body.Name === 'Boom') return { kind: 'json' as const, status: 500, body: { error: 'internal' } }
  if (body.Name === 'NotJson') return { kind: 'raw' as const, body: 'oops' }
  const { api_token: _t, username: _u, contextname: _c, ...fields } = body
  return {
    kind: 'json' as const,
    body: { id: 7, UserID: 'U1', Name: 'Asha Rao', PhoneNumber: '9800000001', ...fields },
  }
}

async function writePair(t: Test, prepare: (app: FastifyInstance) => void) {
  const upstream = await startRecordingUpstream(trisul)
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: {
      cors: { origins: ['https://crm.example'] },
      auth: { failureLimit: { max: 6, timeWindow: '1 minute' } },
      limits: { bodyBytes: 2048 },
    },
    consumers: {
      default: PERMISSIVE_DEFAULT,
      redacted: { usernames: ['carol'], operations: PERMISSIVE_DEFAULT.operations, redact: ['PhoneNumber'] },
      limited: {
        usernames: ['lim'],
        operations: PERMISSIVE_DEFAULT.operations,
        rateLimit: { max: 3, timeWindow: '1 minute' },
      },
      'no-list': { usernames: ['nol'], operations: { customers: ['read'], mappings: [] } },
    },
  })
  const fast = await startGateway(t, { policy, upstreamUrl: upstream.url, prepare })
  const route = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    prepare,
    listingFastPath: false,
    writeFastPath: false,
  })
  return { upstream, fast, route }
}

const CUSTOMER = {
  UserID: 'U1',
  Name: 'Asha Rao',
  Address: 'Pune',
  Email: 'asha@example.in',
  PhoneNumber: '9800000001',
}

/** Bodies a CRM, a careless client and an attacker send. */
const bodies = fc.constantFrom(
  JSON.stringify(CUSTOMER),
  JSON.stringify({ Name: 'Renamed' }),
  JSON.stringify({ ...CUSTOMER, UserID: 'U2' }),
  JSON.stringify({ Name: 'Envelope' }),
  JSON.stringify({ Name: 'Boom' }),
  JSON.stringify({ Name: 'NotJson' }),
  JSON.stringify({ Name: 'Renamed', api_token: 'forged', username: 'mallory' }),
  JSON.stringify({ Name: 'x'.repeat(3000) }),
  JSON.stringify({ Name: 123 }),
  JSON.stringify([1, 2]),
  JSON.stringify({
    ipsubnet: '10.0.0.0/24',
    ipdr_customer_id: 1,
    starttime: '1700000000',
    endtime: '1600000000',
  }),
  '{"__proto__":{"x":1}}',
  '{"Name":',
  '   ',
  '',
)

const anyWrite = fc.record({
  method: fc.constantFrom('POST', 'PUT', 'PATCH', 'DELETE'),
  path: fc.constantFrom('/api/ipdrcustomers', '/api/ipdrcustomers_mapping'),
  userId: fc.constantFrom('U1', 'U2', '..', 'bad%2Fid', 'a'.repeat(300), 'U1?x=1'),
  credentials: fc.constantFrom('alice', 'bob', 'redacted', 'limited', 'noList', 'revoked', 'none'),
  contentType: fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'APPLICATION/JSON',
    'text/plain',
    null,
  ),
  origin: fc.constantFrom(null, null, 'https://crm.example'),
  body: bodies,
})
/** What a CRM sends all day: plain writes with good credentials, the ones the handler is for. */
const plainWrite = fc
  .record({
    kind: fc.constantFrom('create', 'replace', 'update', 'envelope', 'delete'),
    userId: fc.constantFrom('U1', 'U2'),
    credentials: fc.constantFrom('alice', 'alice', 'bob', 'redacted', 'limited'),
  })
  .map(({ kind, userId, credentials }) => ({
    method: { create: 'POST', replace: 'PUT', update: 'PATCH', envelope: 'PATCH', delete: 'DELETE' }[kind],
    path: '/api/ipdrcustomers',
    userId,
    credentials,
    contentType: 'application/json' as string | null,
    origin: null as string | null,
    body:
      kind === 'create' || kind === 'replace'
        ? JSON.stringify({ ...CUSTOMER, UserID: userId })
        : kind === 'update'
          ? JSON.stringify({ Name: 'Renamed' })
          : kind === 'envelope'
            ? JSON.stringify({ Name: 'Envelope' })
            : '',
  }))
const writes = fc.oneof({ arbitrary: plainWrite, weight: 3 }, { arbitrary: anyWrite, weight: 2 })

t.test('on the wire, what the write handler answers is what the route answers', async (t) => {
  let belowFastify = 0
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.array(writes, { minLength: 6, maxLength: 24 }), async (sequence) => {
      const counted = fastifyRequests()
      const pair = await writePair(t, counted.prepare)
      const agents = [new Agent({ keepAlive: true }), new Agent({ keepAlive: true })] as const
      t.teardown(() => {
        for (const a of agents) a.destroy()
      })
      runs++
      let i = 0
      for (const w of sequence) {
        const path = w.method === 'POST' ? w.path : `${w.path}/${w.userId}`
        const headers: Record<string, string> = {
          ...(CREDENTIALS[w.credentials] as Record<string, string>),
          'x-request-id': `w-${i++}`,
          ...(w.contentType === null ? {} : { 'content-type': w.contentType }),
          ...(w.origin === null ? {} : { origin: w.origin }),
        }
        const payload = w.body === '' ? undefined : w.body
        // Node's client frames no body of its own on a DELETE: the length is declared, as a CRM would.
        if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload))
        const seen = pair.upstream.requests.length
        const x = await send(agents[0], pair.fast.url, w.method, path, headers, payload)
        const fromFast = pair.upstream.requests
          .slice(seen)
          .map((r) => JSON.stringify([r.method, r.url, r.body]))
        const y = await send(agents[1], pair.route.url, w.method, path, headers, payload)
        const fromRoute = pair.upstream.requests
          .slice(seen + fromFast.length)
          .map((r) => JSON.stringify([r.method, r.url, r.body]))
        if (
          JSON.stringify(wire(x)) !== JSON.stringify(wire(y)) ||
          JSON.stringify(fromFast) !== JSON.stringify(fromRoute)
        ) {
          t.same(wire(x), wire(y), `${w.method} ${path} as ${w.credentials}`)
          t.same(fromFast, fromRoute, 'the same upstream requests')
          return false
        }
      }
      // A path the router refuses (a UserID over 256 characters) never reaches a hook in either.
      belowFastify += counted.of(pair.route.app) - counted.of(pair.fast.app)
      return true
    }),
    { numRuns: 30 },
  )
  // Guards the generator: sequences the handler never answered would prove nothing about it.
  t.ok(belowFastify > runs, `${belowFastify} writes answered below Fastify in ${runs} runs`)
})

t.test(
  'a plain write is answered below Fastify, charged once, and logged as the route logs it',
  async (t) => {
    const counted = fastifyRequests()
    const logs = logCapture()
    const upstream = await startRecordingUpstream(trisul)
    t.teardown(() => upstream.close())
    const policy = await makePolicy(t, {
      consumers: { default: { ...PERMISSIVE_DEFAULT, rateLimit: { max: 3, timeWindow: '1 minute' } } },
    })
    const gw = await startGateway(t, {
      policy,
      upstreamUrl: upstream.url,
      prepare: counted.prepare,
      logger: {
        level: 'info',
        redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' },
        stream: logs.stream,
      },
    })
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const patch = (id: string, body: unknown) => patchU1(agent, gw.url, body, { 'x-request-id': id })
    const first = await patch('through-fastify', { Name: 'One' })
    t.equal(first.status, 200)
    t.equal(counted.of(gw.app), 1, 'unproven credentials: the route’s (it charges them first)')
    const second = await patch('below-fastify', { Name: 'Two' })
    t.equal(second.status, 200)
    t.equal(counted.of(gw.app), 1, 'proven since Trisul accepted them: answered below Fastify')
    t.match(second.headers, ['vary: Origin', 'ratelimit-limit: 3', 'ratelimit-remaining: 1'])
    t.equal(json(second).Name, 'Two')
    const invalid = await patch('invalid', { Name: 42 })
    t.equal(invalid.status, 400, 'a body the schema refuses: the route’s, with the body it read')
    t.equal(counted.of(gw.app), 2)
    t.match(invalid.headers, ['vary: Origin'])
    t.match(json(invalid), { code: 'IPDR_GW_VALIDATION' })
    t.equal((await patch('third', { Name: 'Three' })).status, 200)
    const over = await patch('over', { Name: 'Four' })
    t.equal(over.status, 429, 'over budget: charged below Fastify, answered by the route, counted once')
    t.equal(counted.of(gw.app), 3)
    t.equal(upstream.requests.length, 3, 'only the admitted writes reached Trisul')

    const access = logs.lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.msg === 'request')
    const viaFastify = access.find((e) => e.reqId === 'through-fastify')
    const below = access.find((e) => e.reqId === 'below-fastify')
    t.same(Object.keys(below ?? {}), Object.keys(viaFastify ?? {}), 'the same fields in the same order')
    const stable = (e: Record<string, unknown> | undefined) => ({
      ...e,
      time: 0,
      ms: 0,
      reqId: '',
      traceId: '',
    })
    t.same(stable(below), stable(viaFastify), 'the same values but time, duration, request and trace ids')
    t.match(below?.traceId, /^[0-9a-f]{32}$/)
    const metricsText = await (await fetch(`${gw.url}/metrics`)).text()
    t.match(
      metricsText,
      /ipdr_gateway_http_requests_total\{method="PATCH",route="\/api\/ipdrcustomers\/:UserID",status_code="200",consumer="default"\} 3/,
    )
    t.match(
      metricsText,
      /ipdr_gateway_upstream_requests_total\{method="PATCH",resource="customers",outcome="ok"\} 3/,
    )
  },
)

t.test(
  'a client whose body never arrives gets the route’s 408, and the budget of bodies is given back',
  async (t) => {
    const upstream = await startRecordingUpstream(trisul)
    t.teardown(() => upstream.close())
    const policy = await makePolicy(t, {
      gateway: { server: { requestTimeoutMs: 300 }, limits: { inFlightBodyBytes: 200 } },
    })
    const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const headers = { ...(CREDENTIALS.alice as Record<string, string>), 'content-type': 'application/json' }
    const body = JSON.stringify({ Name: 'x'.repeat(100) })
    t.equal(
      (await send(agent, gw.url, 'PATCH', '/api/ipdrcustomers/U1', headers, body)).status,
      200,
      'proven',
    )
    const url = new URL(gw.url)
    const stalled = await new Promise<{ status: number; connection: string | undefined }>(
      (resolve, reject) => {
        const req = request(
          {
            host: url.hostname,
            port: url.port,
            method: 'PATCH',
            path: '/api/ipdrcustomers/U1',
            headers: { ...headers, 'content-length': String(body.length) },
          },
          (res) => {
            res.resume()
            res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }))
          },
        )
        req.on('error', reject)
        req.write(body.slice(0, 10))
      },
    )
    t.equal(stalled.status, 408)
    t.equal(stalled.connection, 'close')
    // Twice what the budget holds at once: each reservation was given back.
    for (let i = 0; i < 4; i++) {
      const r = await send(agent, gw.url, 'PATCH', '/api/ipdrcustomers/U1', headers, body)
      t.equal(r.status, 200, `write ${i} after the stalled one`)
    }
  },
)

t.test('a proven token Trisul stops accepting: refused below Fastify, then unproven again', async (t) => {
  let revoked = false
  const upstream = await startRecordingUpstream((req) =>
    revoked ? { kind: 'json', body: { status: 'ERROR', message: 'Invalid API token' } } : trisul(req),
  )
  t.teardown(() => upstream.close())
  const counted = fastifyRequests()
  const policy = await makePolicy(t)
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, prepare: counted.prepare })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const patch = () => patchU1(agent, gw.url, { Name: 'Renamed' })
  t.equal((await patch()).status, 200)
  t.equal((await patch()).status, 200)
  t.equal(counted.of(gw.app), 1, 'proven after the first: the second answered below Fastify')
  revoked = true
  const refused = await patch()
  t.equal(refused.status, 401)
  t.match(json(refused), { code: 'IPDR_GW_UPSTREAM_INVALID_TOKEN' })
  t.equal(counted.of(gw.app), 1, 'the refusal was answered below Fastify, as the route answers it')
  await patch()
  t.equal(
    counted.of(gw.app),
    2,
    'no longer proven: the next write is the route’s, charged to the address first',
  )
})
