/**
 * The cached-listing hit answered below Fastify (src/http/listing/hit-handler.ts),
 * on real sockets (`inject` never reaches the server's listener): the same
 * request sequences against a gateway with it and one without any fast path
 * give the same status, the same headers in the same order and the same bytes.
 */
import { Agent } from 'node:http'
import { Writable } from 'node:stream'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { LOG_REDACT_PATHS } from '../../../src/logging.js'
import { logCapture, makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../../helpers/gateway.js'
import {
  type Action,
  action,
  CREDENTIALS,
  CUSTOMERS,
  gatewayPair,
  requestHeaders,
  VOLATILE,
} from '../../helpers/listing-fast-path-fixtures.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'
import { fastifyRequests, send, type Wire } from '../../helpers/wire.js'

/** A CRM polling the plain listing with good credentials: what the handler is for. */
const plainPoll: fc.Arbitrary<Action> = fc.record({
  kind: fc.constant('get' as const),
  credentials: fc.constantFrom('alice', 'bob', 'redacted', 'limited'),
  path: fc.constantFrom('/api/ipdrcustomers', '/api/ipdrcustomers_mapping'),
  acceptEncoding: fc.constantFrom(null, 'gzip', 'br'),
  ifNoneMatch: fc.constant(null),
  origin: fc.constant(null),
  repeat: fc.integer({ min: 1, max: 3 }),
})
const actions = fc.array(fc.oneof(action, plainPoll), { minLength: 1, maxLength: 24 })

for (const corsOrigins of [['https://crm.example'], []]) {
  t.test(
    `on the wire, what the hit handler answers is what the route answers (CORS origins: ${corsOrigins.length})`,
    async (t: Test) => {
      let belowFastify = 0
      let runs = 0
      await fc.assert(
        fc.asyncProperty(actions, async (sequence) => {
          const counted = fastifyRequests()
          const pair = await gatewayPair(t, { listen: true, prepare: counted.prepare, corsOrigins })
          const agents = [new Agent({ keepAlive: true }), new Agent({ keepAlive: true })] as const
          t.teardown(() => {
            for (const a of agents) a.destroy()
          })
          const both = async (
            method: string,
            path: string,
            headers: Record<string, string>,
            payload?: string,
          ) => {
            const x = await send(agents[0], pair.fastUrl, method, path, headers, payload)
            const y = await send(agents[1], pair.routeUrl, method, path, headers, payload)
            return [x, y] as const
          }
          let lastEtag = '"none"'
          runs++
          let sent = 0
          for (const a of sequence) {
            if (a.kind === 'advance') {
              pair.clock.advance(a.ms)
              continue
            }
            if (a.kind === 'patch') {
              const [x, y] = await both(
                'PATCH',
                '/api/ipdrcustomers/U1',
                { ...CREDENTIALS.alice, 'content-type': 'application/json' },
                JSON.stringify({ Name: 'Renamed' }),
              )
              sent++
              if (x.status !== y.status) t.equal(x.status, y.status, 'write')
              continue
            }
            const headers = requestHeaders(a, lastEtag)
            for (let i = 0; i < a.repeat; i++) {
              const [x, y] = await both('GET', a.path, headers)
              sent++
              const wire = (w: Wire) => ({ status: w.status, headers: w.headers, body: w.body })
              if (JSON.stringify(wire(x)) !== JSON.stringify(wire(y))) {
                t.same(wire(x), wire(y), `${a.path} as ${a.credentials}`)
                return false
              }
              const etag = y.raw.headers.etag
              if (typeof etag === 'string') lastEtag = etag
            }
          }
          t.equal(counted.of(pair.route), sent, 'every request reached the route gateway through Fastify')
          belowFastify += sent - counted.of(pair.fast)
          return true
        }),
        { numRuns: 25 },
      )
      // Guards the generator: sequences the handler never answered would prove nothing about it.
      t.ok(belowFastify > runs, `${belowFastify} requests answered below Fastify in ${runs} runs`)
    },
  )
}

t.test('a plain cached hit never reaches Fastify; anything else does', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: CUSTOMERS }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const counted = fastifyRequests()
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, prepare: counted.prepare })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const get = (path: string, extra: Record<string, string> = {}) =>
    send(agent, gw.url, 'GET', path, { ...(CREDENTIALS.alice as Record<string, string>), ...extra })

  const miss = await get('/api/ipdrcustomers')
  t.equal(miss.raw.headers['x-cache'], 'MISS')
  t.equal(counted.of(gw.app), 1, 'a miss is Fastify’s')
  const hit = await get('/api/ipdrcustomers', { 'x-request-id': 'crm-42' })
  t.equal(hit.raw.headers['x-cache'], 'HIT')
  t.equal(hit.raw.headers['x-request-id'], 'crm-42', 'the client’s request id, as Fastify keeps it')
  t.same(JSON.parse(Buffer.from(hit.body, 'base64').toString()), CUSTOMERS)
  t.equal(counted.of(gw.app), 1, 'the hit was answered below Fastify')
  const metricsText = await (await fetch(`${gw.url}/metrics`)).text()
  t.match(
    metricsText,
    /ipdr_gateway_http_requests_total\{method="GET",route="\/api\/ipdrcustomers",status_code="200",consumer="default"\} 2/,
    'counted in the request metrics as the route counts them',
  )
  t.match(metricsText, /ipdr_gateway_cache_lookups_total\{resource="customers",result="hit"\} 1/)
  const before = counted.of(gw.app)
  await get('/api/ipdrcustomers?limit=1')
  await get('/api/ipdrcustomers', { origin: 'https://crm.example' })
  await get('/api/ipdrcustomers', { 'if-none-match': String(hit.raw.headers.etag) })
  await get('/api/ipdrcustomers', { 'accept-encoding': 'gzip' })
  t.equal(
    counted.of(gw.app),
    before + 4,
    'a filter, an Origin, a revalidation, a variant not made: Fastify’s',
  )
  t.equal(upstream.requests.length, 1)
})

t.test('a request the handler charged and then sent on to Fastify is counted once', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: CUSTOMERS }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    consumers: { default: { ...PERMISSIVE_DEFAULT, rateLimit: { max: 3, timeWindow: '1 minute' } } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const get = () =>
    send(agent, gw.url, 'GET', '/api/ipdrcustomers', CREDENTIALS.alice as Record<string, string>)
  t.equal((await get()).raw.headers['ratelimit-remaining'], '2', 'the miss: charged once')
  t.equal((await get()).raw.headers['ratelimit-remaining'], '1', 'the hit below Fastify: charged once')
  t.equal((await get()).raw.headers['ratelimit-remaining'], '0')
  // Charged below Fastify, over budget: Fastify's route answers the 429 (the plugin counts it again, as before).
  const over = await get()
  t.equal(over.status, 429, 'over budget: the route answers')
  t.equal(JSON.parse(Buffer.from(over.body, 'base64').toString()).code, 'IPDR_GW_RATE_LIMITED')
})

t.test('a hit answered below Fastify writes the access line Fastify would', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: CUSTOMERS }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const logs = logCapture()
  const counted = fastifyRequests()
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    prepare: counted.prepare,
    logger: { level: 'info', redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' }, stream: logs.stream },
  })
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const get = (id: string) =>
    send(agent, gw.url, 'GET', '/api/ipdrcustomers', {
      ...(CREDENTIALS.alice as Record<string, string>),
      'x-request-id': id,
    })
  await get('through-fastify')
  await get('below-fastify')
  t.equal(counted.of(gw.app), 1, 'the second was answered below Fastify')
  const access = logs.lines
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e.msg === 'request')
  const [viaFastify, below] = access
  t.equal(access.length, 2, 'one access line each')
  t.same(Object.keys(below ?? {}), Object.keys(viaFastify ?? {}), 'the same fields in the same order')
  const stable = (e: Record<string, unknown> | undefined) => ({
    ...e,
    time: 0,
    ms: 0,
    reqId: '',
    traceId: '',
  })
  t.same(stable(below), stable(viaFastify), 'the same values but time, duration, request and trace ids')
  t.match(below?.traceId, /^[0-9a-f]{32}$/, 'a trace id (SPEC 18) on the line below Fastify too')
  t.equal(below?.reqId, 'below-fastify')
  t.type(below?.ms, 'number')
})

t.test(
  'a hit whose access line cannot be written is still answered, and the gateway serves on',
  async (t) => {
    const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: CUSTOMERS }))
    t.teardown(() => upstream.close())
    const policy = await makePolicy(t)
    let refused = 0
    const failingLog = new Writable({
      write(_chunk: Buffer, _encoding, done) {
        done()
      },
    })
    // pino writes each line with write(); a destination that throws on the access lines (a full disk, say).
    failingLog.write = ((chunk: string) => {
      if (chunk.includes('"msg":"request"')) {
        refused++
        throw new Error('no space left on device')
      }
      return true
    }) as Writable['write']
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown) => unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    t.teardown(() => {
      process.off('unhandledRejection', onUnhandled)
    })
    const gw = await startGateway(t, {
      policy,
      upstreamUrl: upstream.url,
      logger: { level: 'info', stream: failingLog },
    })
    const agent = new Agent({ keepAlive: true })
    t.teardown(() => agent.destroy())
    const get = () =>
      send(agent, gw.url, 'GET', '/api/ipdrcustomers', CREDENTIALS.alice as Record<string, string>)
    await get()
    const hit = await get()
    t.equal(hit.status, 200)
    t.equal(hit.raw.headers['x-cache'], 'HIT', 'answered below Fastify')
    const again = await get()
    t.equal(again.status, 200, 'and the next one too')
    await new Promise((resolve) => setImmediate(resolve))
    t.ok(refused >= 2, `the access lines were refused (${refused})`)
    t.same(unhandled, [], 'no unhandled rejection')
  },
)
