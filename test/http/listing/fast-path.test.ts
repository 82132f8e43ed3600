/**
 * The cached-listing fast path (src/http/listing/fast-path.ts): it answers
 * fresh cached plain listings before the route's hooks, and whatever it
 * answers is what the route would have answered. The property test runs the
 * same request sequences against a gateway with the fast path and one
 * without, and requires the same status, headers and bytes every time.
 */
import fc from 'fast-check'
import t from 'tap'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../../helpers/gateway.js'
import {
  action,
  CREDENTIALS,
  CUSTOMERS,
  FAST_PATH_CANDIDATES,
  gatewayPair,
  requestHeaders,
  VOLATILE,
} from '../../helpers/listing-fast-path-fixtures.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

function comparable(res: { statusCode: number; headers: Record<string, unknown>; rawPayload: Buffer }) {
  const headers = Object.fromEntries(Object.entries(res.headers).filter(([k]) => !VOLATILE.has(k)))
  return { status: res.statusCode, headers, body: res.rawPayload.toString('base64') }
}

const PLAIN_GET = {
  kind: 'get' as const,
  credentials: 'alice',
  path: '/api/ipdrcustomers',
  acceptEncoding: null,
  ifNoneMatch: null,
  origin: null,
  repeat: 1,
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
        const headers = requestHeaders(a, lastEtag)
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
    {
      numRuns: 40,
      // Beside the random sequences, one that surely blocks the address (failureLimit 6) before a
      // good plain listing, so the blocked case is compared in every run, not when the dice allow.
      examples: [
        [
          [
            ...Array.from({ length: 7 }, () => ({ ...PLAIN_GET, credentials: 'malformed' })),
            { ...PLAIN_GET, credentials: 'alice' },
            { ...PLAIN_GET, credentials: 'bob', path: '/api/ipdrcustomers_mapping' },
          ],
        ],
      ],
    },
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
  const { buildApp } = await import('../../../src/app.js')
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
