/**
 * The listing cache as clients see it (shared/SPEC.md 3.4): TTL on a fake
 * clock, stale-if-error for failures only, single flight, and a property test
 * that no request is ever served a listing fetched with other credentials.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { makePolicy, startGateway } from '../helpers/gateway.js'
import { type Behaviour, startRecordingUpstream } from '../helpers/recording-upstream.js'

const A = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }

async function setup(t: Test, cache: Record<string, unknown> = {}) {
  let behaviour: Behaviour = { kind: 'json', body: [{ id: 1, UserID: 'U1', Name: 'One' }] }
  const upstream = await startRecordingUpstream(() => behaviour)
  t.teardown(() => upstream.close())
  let now = 1_000_000
  const policy = await makePolicy(t, {
    gateway: {
      cache: { ttlSeconds: 30, staleIfErrorSeconds: 60, ...cache },
      upstream: { timeoutMs: 500, circuit: { failures: 100, resetSeconds: 1 } },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, now: () => now, listen: false })
  const get = async (headers: Record<string, string> = A, url = '/api/ipdrcustomers') =>
    gw.app.inject({ method: 'GET', url, headers })
  return {
    upstream,
    gw,
    get,
    advance: (ms: number) => {
      now += ms
    },
    set: (b: Behaviour) => {
      behaviour = b
    },
  }
}

t.test('TTL, then stale while the upstream fails, then a fresh MISS once it is back', async (t) => {
  const s = await setup(t)
  t.equal((await s.get()).headers['x-cache'], 'MISS')
  s.advance(29_000)
  t.equal((await s.get()).headers['x-cache'], 'HIT')
  s.advance(2_000)
  s.set({ kind: 'reset' })
  const stale = await s.get()
  t.equal(stale.statusCode, 200)
  t.equal(stale.headers['x-cache'], 'STALE')
  t.same(stale.json(), [{ id: 1, UserID: 'U1', Name: 'One' }])
  const single = await s.get(A, '/api/ipdrcustomers/U1')
  t.equal(single.headers['x-cache'], 'STALE', 'single reads carry the X-Cache of their listing')
  s.set({ kind: 'json', body: [{ id: 2, UserID: 'U2', Name: 'Two' }] })
  const fresh = await s.get()
  t.equal(fresh.headers['x-cache'], 'MISS')
  t.same(fresh.json(), [{ id: 2, UserID: 'U2', Name: 'Two' }])
  // Past TTL + stale-if-error nothing stale is served.
  s.advance(31_000 + 60_000)
  s.set({ kind: 'json', status: 500, body: {} })
  t.equal((await s.get()).statusCode, 502)
})

t.test('an envelope is an answer: never hidden behind a stale entry, never cached', async (t) => {
  const s = await setup(t)
  await s.get()
  s.advance(31_000)
  s.set({ kind: 'json', body: { status: 'ERROR', message: 'Invalid API token' } })
  const revoked = await s.get()
  t.equal(revoked.statusCode, 401, 'a revoked token sees the revocation, not stale data')
  const count = s.upstream.requests.length
  await s.get()
  t.equal(s.upstream.requests.length, count + 1, 'the envelope was not cached')
})

t.test('concurrent cold requests share one upstream fetch', async (t) => {
  const s = await setup(t)
  s.set({ kind: 'json', body: [{ id: 1, UserID: 'U1' }], delayMs: 100 })
  const results = await Promise.all(Array.from({ length: 50 }, () => s.get()))
  t.equal(s.upstream.requests.length, 1, 'exactly one upstream request')
  t.ok(results.every((r) => r.statusCode === 200 && r.headers['x-cache'] === 'MISS'))
  const metrics = (await s.gw.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /ipdr_gateway_cache_lookups_total\{resource="customers",result="coalesced"\} 49/)
  t.match(metrics, /ipdr_gateway_cache_lookups_total\{resource="customers",result="miss"\} 1/)
})

t.test('property: a listing is only ever served to the credentials that fetched it', async (t) => {
  // The upstream tags every listing with the credentials it received.
  const upstream = await startRecordingUpstream((req) => ({
    kind: 'json',
    body: [
      { id: 1, UserID: 'U1', Name: `${req.body?.username}|${req.body?.api_token}|${req.body?.contextname}` },
    ],
  }))
  t.teardown(() => upstream.close())
  let now = 0
  const policy = await makePolicy(t, { gateway: { cache: { ttlSeconds: 10 } } })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, now: () => now, listen: false })
  const users = ['alice', 'bob']
  const tokens = ['t1', 't2']
  const contexts = ['default', 'other']
  const step = fc.record({
    user: fc.constantFrom(...users),
    token: fc.constantFrom(...tokens),
    context: fc.constantFrom(...contexts),
    form: fc.constantFrom('bearer', 'basic', 'body'),
    write: fc.boolean(),
    advance: fc.constantFrom(0, 0, 0, 4_000, 11_000),
  })
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
      for (const s of steps) {
        now += s.advance
        const headers: Record<string, string> =
          s.form === 'bearer'
            ? {
                authorization: `Bearer ${s.token}`,
                'x-trisul-username': s.user,
                'x-trisul-context': s.context,
              }
            : s.form === 'basic'
              ? {
                  authorization: `Basic ${Buffer.from(`${s.user}:${s.token}`).toString('base64')}`,
                  'x-trisul-context': s.context,
                }
              : { 'content-type': 'application/json' }
        const body =
          s.form === 'body'
            ? JSON.stringify({ api_token: s.token, username: s.user, contextname: s.context })
            : undefined
        if (s.write) {
          upstream.respond((req) =>
            req.method === 'GET'
              ? {
                  kind: 'json',
                  body: [
                    {
                      id: 1,
                      UserID: 'U1',
                      Name: `${req.body?.username}|${req.body?.api_token}|${req.body?.contextname}`,
                    },
                  ],
                }
              : { kind: 'json', body: { id: 9, UserID: 'W', Name: 'w' } },
          )
          const res = await gw.app.inject({
            method: 'POST',
            url: '/api/ipdrcustomers',
            headers: { ...headers, 'content-type': 'application/json' },
            payload: body
              ? JSON.stringify({ ...JSON.parse(body), UserID: 'W', Name: 'w' })
              : JSON.stringify({ UserID: 'W', Name: 'w' }),
          })
          if (res.statusCode !== 200) return false
          continue
        }
        const res = await gw.app.inject({
          method: 'GET',
          url: '/api/ipdrcustomers',
          headers,
          ...(body ? { payload: body } : {}),
        })
        if (res.statusCode !== 200) return false
        const name = (res.json() as { Name: string }[])[0]?.Name
        if (name !== `${s.user}|${s.token}|${s.context}`) return false
      }
      return true
    }),
    { numRuns: 60 },
  )
  t.pass('no listing crossed credentials')
})
