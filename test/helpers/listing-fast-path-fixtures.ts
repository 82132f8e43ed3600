/**
 * The fixtures of the fast-path property tests (test/http/listing/fast-path.test.ts
 * through `inject`, test/http/listing/hit-handler.test.ts on real sockets): a
 * recording upstream, a policy with every consumer kind, and two gateways over
 * them, one with the fast paths and one without.
 */
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import type { AppOptions } from '../../src/app.js'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway } from './gateway.js'
import { startRecordingUpstream } from './recording-upstream.js'

export const CUSTOMERS = [
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
export const MAPPINGS = [
  { id: 1, ipdr_customer_id: 1, ipsubnet: '10.1.0.0/24', starttime: 0, endtime: null, terminalid: 'T1' },
]

const basic = (user: string, token: string) => `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`

/** Credentials the sequences draw from: every consumer kind, and the failures the fast path leaves to the route. */
export const CREDENTIALS: Record<string, Record<string, string>> = {
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
export const FAST_PATH_CANDIDATES = new Set(
  ['alice', 'bob', 'redacted', 'limited'].flatMap((c) => [
    `${c} /api/ipdrcustomers`,
    `${c} /api/ipdrcustomers_mapping`,
  ]),
)

export async function gatewayPair(
  t: Test,
  extra: Omit<Partial<AppOptions>, 'policy'> & {
    listen?: boolean
    prepare?: (app: FastifyInstance) => void
    /** CORS origins of the policy; default one. */
    corsOrigins?: string[]
  } = {},
) {
  const { corsOrigins, ...options } = extra
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
      cors: { origins: corsOrigins ?? ['https://crm.example'] },
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
  const fast = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    now: clock.now,
    listen: false,
    ...options,
  })
  const route = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    now: clock.now,
    listen: false,
    ...options,
    listingFastPath: false,
    writeFastPath: false,
  })
  return { upstream, fast: fast.app, route: route.app, fastUrl: fast.url, routeUrl: route.url, clock }
}

export type Action =
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

export const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: getAction },
  { weight: 1, arbitrary: fc.constant({ kind: 'patch' as const }) },
  { weight: 1, arbitrary: fc.constantFrom(10_000, 31_000).map((ms) => ({ kind: 'advance' as const, ms })) },
)

/** Headers that differ between any two responses by design. */
export const VOLATILE = new Set(['date', 'x-request-id', 'ratelimit-reset', 'retry-after'])

/** The headers of a `get` action; `ETAG_OF_LAST` stands for the last ETag answered. */
export function requestHeaders(
  a: Extract<Action, { kind: 'get' }>,
  lastEtag: string,
): Record<string, string> {
  const headers: Record<string, string> = { ...CREDENTIALS[a.credentials] }
  if (a.acceptEncoding !== null) headers['accept-encoding'] = a.acceptEncoding
  if (a.ifNoneMatch !== null)
    headers['if-none-match'] = a.ifNoneMatch === 'ETAG_OF_LAST' ? lastEtag : a.ifNoneMatch
  if (a.origin !== null) headers.origin = a.origin
  return headers
}
