/**
 * The cached-listing fast path (src/http/listing-fast-path.ts): it answers
 * fresh cached plain listings before the route's hooks, and whatever it
 * answers is what the route would have answered. The property test runs the
 * same request sequences against a gateway with the fast path and one
 * without, and requires the same status, headers and bytes every time.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

const CUSTOMERS = [
  {
    id: 1,
    Name: 'Asha Rao',
    Address: 'Pune',
    Email: 'asha@example.in',
    PhoneNumber: '9800000001',
    AltPhoneNumber: '',
    UserID: 'U1',
  },
  {
    id: 2,
    Name: 'Ravi Iyer',
    Address: 'Chennai',
    Email: 'ravi@example.in',
    PhoneNumber: '9800000002',
    AltPhoneNumber: '',
    UserID: 'U2',
  },
]
const MAPPINGS = [
  { id: 1, ipdr_customer_id: 1, ipsubnet: '10.1.0.0/24', starttime: 0, endtime: null, terminalid: 'T1' },
]

const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`

/** Credentials the sequences draw from: every consumer kind, and the failures the fast path leaves to the route. */
const CREDENTIALS: Record<string, Record<string, string>> = {
  alice: { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' },
  bob: { authorization: basic('bob', 'tokB') },
  redacted: { authorization: 'Bearer tokC', 'x-trisul-username': 'carol' },
  limited: { authorization: 'Bearer tokL', 'x-trisul-username': 'lim' },
  noList: { authorization: 'Bearer tokN', 'x-trisul-username': 'nol' },
  revoked: { authorization: 'Bearer revoked', 'x-trisul-username': 'alice' },
  none: {},
  malformed: { authorization: 'Bearer' },
}

/** Plain listings with good credentials: what the fast path charges (with the failed-authentication check). */
const FAST_PATH_CANDIDATES = new Set(
  ['alice', 'bob', 'redacted', 'limited'].flatMap((c) => [
    `${c} /api/ipdrcustomers`,
    `${c} /api/ipdrcustomers_mapping`,
  ]),
)

async function gatewayPair(t: Test) {
  const upstream = await startRecordingUpstream((req) => {
    if (req.body?.api_token === 'revoked')
      return { kind: 'json', body: { status: 'ERROR', message: 'Invalid API token' } }
    if (req.method !== 'GET') return { kind: 'json', body: { ...CUSTOMERS[0], Name: 'Renamed' } }
    return { kind: 'json', body: req.url.startsWith('/api/ipdrcustomers_mapping') ? MAPPINGS : CUSTOMERS }
  })
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: {
      cache: { ttlSeconds: 30, staleIfErrorSeconds: 60 },
      cors: { origins: ['https://crm.example'] },
      // Low enough that sequences reach it: a blocked address with good credentials is the fast path's to refuse.
      auth: { failureLimit: { max: 6, timeWindow: '1 minute' } },
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
  let now = 1_000_000
  const clock = { now: () => now, advance: (ms: number) => (now += ms) }
  const fast = await startGateway(t, { policy, upstreamUrl: upstream.url, now: clock.now, listen: false })
  const route = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    now: clock.now,
    listen: false,
    listingFastPath: false,
  })
  return { upstream, fast: fast.app, route: route.app, clock }
}

type Action =
  | {
      kind: 'get'
      credentials: string
      path: string
      acceptEncoding: string | null
      ifNoneMatch: string | null
      origin: string | null
      /** Sent this many times in a row, as a CRM polls: the later ones can be hits. */
      repeat: number
    }
  | { kind: 'patch' }
  | { kind: 'advance'; ms: number }

const getAction: fc.Arbitrary<Action> = fc.record({
  kind: fc.constant('get' as const),
  credentials: fc.constantFrom(...Object.keys(CREDENTIALS)),
  path: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom('/api/ipdrcustomers', '/api/ipdrcustomers_mapping') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '/api/ipdrcustomers?limit=1',
        '/api/ipdrcustomers?',
        '/api/ipdrcustomers/U1',
      ),
    },
  ),
  acceptEncoding: fc.constantFrom(null, 'gzip', 'br', 'gzip;q=0, identity', 'br;q=0.5, gzip'),
  ifNoneMatch: fc.constantFrom(null, '*', '"nope"', 'ETAG_OF_LAST'),
  origin: fc.constantFrom(null, 'https://crm.example', 'https://evil.example'),
  repeat: fc.integer({ min: 1, max: 3 }),
})

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: getAction },
  { weight: 1, arbitrary: fc.constant({ kind: 'patch' as const }) },
  { weight: 1, arbitrary: fc.constantFrom(10_000, 31_000).map((ms) => ({ kind: 'advance' as const, ms })) },
)

/** Headers that differ between any two responses by design. */
const VOLATILE = new Set(['date', 'x-request-id', 'ratelimit-reset', 'retry-after'])

function comparable(res: { statusCode: number; headers: Record<string, unknown>; rawPayload: Buffer }) {
  const headers = Object.fromEntries(Object.entries(res.headers).filter(([k]) => !VOLATILE.has(k)))
  return { status: res.statusCode, headers, body: res.rawPayload.toString('base64') }
}

t.test('whatever the fast path answers is what the route answers', async (t) => {
  let hits = 0
  let runs = 0
  let blockedListings = 0
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 1, maxLength: 24 }), async (actions) => {
      const pair = await gatewayPair(t)
      let lastEtag = '"none"'
      runs++
      for (const a of actions) {
        if (a.kind === 'advance') {
          pair.clock.advance(a.ms)
          continue
        }
        if (a.kind === 'patch') {
          const req = {
            method: 'PATCH' as const,
            url: '/api/ipdrcustomers/U1',
            headers: { ...CREDENTIALS.alice, 'content-type': 'application/json' },
            payload: { Name: 'Renamed' },
          }
          const [x, y] = [await pair.fast.inject(req), await pair.route.inject(req)]
          t.same(comparable(x), comparable(y), 'write')
          continue
        }
        const headers: Record<string, string> = { ...CREDENTIALS[a.credentials] }
        if (a.acceptEncoding !== null) headers['accept-encoding'] = a.acceptEncoding
        if (a.ifNoneMatch !== null)
          headers['if-none-match'] = a.ifNoneMatch === 'ETAG_OF_LAST' ? lastEtag : a.ifNoneMatch
        if (a.origin !== null) headers.origin = a.origin
        const req = { method: 'GET' as const, url: a.path, headers }
        for (let i = 0; i < a.repeat; i++) {
          const x = await pair.fast.inject(req)
          const y = await pair.route.inject(req)
          const same = JSON.stringify(comparable(x)) === JSON.stringify(comparable(y))
          if (!same) t.same(comparable(x), comparable(y), `${a.path} as ${a.credentials}`)
          if (!same) return false
          if (y.headers['x-cache'] === 'HIT') hits++
          const refused = y.statusCode === 429 && y.json().code === 'IPDR_GW_AUTH_RATE_LIMITED'
          if (refused && FAST_PATH_CANDIDATES.has(`${a.credentials} ${a.path}`)) blockedListings++
          if (typeof y.headers.etag === 'string') lastEtag = y.headers.etag
        }
      }
      return true
    }),
    { numRuns: 40 },
  )
  // Guards the generator: sequences that never hit the cache would prove nothing about the fast path.
  t.ok(hits > runs, `the sequences were served ${hits} cache hits in ${runs} runs`)
  t.ok(
    blockedListings > 0,
    `${blockedListings} plain listings with good credentials refused to a blocked address`,
  )
})

t.test('a fresh cached plain listing is answered before the route hooks', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: CUSTOMERS }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const { buildApp } = await import('../../src/app.js')
  const app = await buildApp({ policy, upstreamUrl: upstream.url, logger: false, probe: false })
  t.teardown(() => app.close())
  const routeSteps: string[] = []
  app.addHook('preValidation', async (request) => {
    routeSteps.push(request.url)
  })
  await app.ready()
  const get = (url: string) => app.inject({ method: 'GET', url, headers: CREDENTIALS.alice })

  const miss = await get('/api/ipdrcustomers')
  t.equal(miss.headers['x-cache'], 'MISS')
  t.same(routeSteps, ['/api/ipdrcustomers'], 'a miss goes through the route')
  const hit = await get('/api/ipdrcustomers')
  t.equal(hit.headers['x-cache'], 'HIT')
  t.same(hit.json(), CUSTOMERS)
  t.same(routeSteps, ['/api/ipdrcustomers'], 'the hit did not reach the route hooks')
  await get('/api/ipdrcustomers?limit=1')
  t.same(routeSteps.at(-1), '/api/ipdrcustomers?limit=1', 'a filtered listing goes through the route')
  t.equal(upstream.requests.length, 1, 'one upstream request for all of them')
  const values = (await app.gatewayMetrics.cacheLookups.get()).values
  const hits = values.find((v) => v.labels.resource === 'customers' && v.labels.result === 'hit')
  t.equal(hits?.value, 2, 'the fast-path hit and the filtered listing are both counted as hits')
})

t.test('a request charged by the fast path and then served by the route is counted once', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: CUSTOMERS }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    consumers: {
      default: { ...PERMISSIVE_DEFAULT, rateLimit: { max: 2, timeWindow: '1 minute' } },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, listen: false })
  const get = () => gw.app.inject({ method: 'GET', url: '/api/ipdrcustomers', headers: CREDENTIALS.alice })
  const first = await get()
  t.equal(first.headers['x-cache'], 'MISS', 'charged by the fast path, then filled by the route')
  t.equal(first.headers['ratelimit-remaining'], '1', 'counted once')
  const second = await get()
  t.equal(second.headers['x-cache'], 'HIT')
  t.equal(second.headers['ratelimit-remaining'], '0')
  const third = await get()
  t.equal(third.statusCode, 429, 'over budget: the route answers 429')
  t.equal(third.json().code, 'IPDR_GW_RATE_LIMITED')
  t.ok(third.headers['retry-after'], 'with Retry-After')
})
