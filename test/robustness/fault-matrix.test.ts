/**
 * The fault matrix of the read side: every upstream fault × every read route
 * (plain, filtered and paged listings, single reads, both resources). Each
 * fault maps to its documented status within its time bound, the gateway keeps
 * serving while it lasts, nothing invalid is cached, and when the upstream
 * recovers everything works again. Then the timeout boundary, a 50 MB listing,
 * stale-if-error and the circuit breaker (fake clock) opening, half-opening and
 * closing. The write side is in write-safety.test.ts.
 */
import { createHash } from 'node:crypto'
import t, { type Test } from 'tap'
import { request } from 'undici'
import {
  ANSWER_BOUND_MS,
  type Answer,
  AUTH,
  applyFault,
  CUSTOMERS,
  cacheEntries,
  ENVELOPE_FAULTS,
  type Fault,
  healthy,
  LISTING_SHAPE_FAULTS,
  MAPPINGS_AS_SERVED,
  recover,
  robustGateway,
  STACK_LIKE,
  send,
  settle,
  TIMEOUT_MS,
  TRANSPORT_FAULTS,
  WRITE_CASES,
  type WriteCase,
} from './harness.js'

/** Every read route and the body it gives against the healthy upstream. */
const READ_ROUTES: readonly [string, unknown][] = [
  ['/api/ipdrcustomers', CUSTOMERS],
  ['/api/ipdrcustomers?q=a&limit=1', [CUSTOMERS[0]]],
  ['/api/ipdrcustomers/U1', CUSTOMERS[0]],
  ['/api/ipdrcustomers_mapping', MAPPINGS_AS_SERVED],
  ['/api/ipdrcustomers_mapping?ip=10.0.0.5', MAPPINGS_AS_SERVED],
  ['/api/ipdrcustomers_mapping/U1', MAPPINGS_AS_SERVED],
]

function checkFaultAnswer(t: Test, fault: Fault, route: string, a: Answer): void {
  const where = `${route}: ${a.text.slice(0, 200)}`
  t.equal(a.status, fault.status, `status (${where})`)
  t.equal(a.json?.code, fault.code, `code (${route})`)
  t.equal(a.json?.statusCode, fault.status, 'the JSON error shape')
  if (fault.message !== undefined) t.equal(a.json?.message, fault.message, 'the upstream message is kept')
  t.notMatch(a.text, STACK_LIKE, 'no stack trace or internals')
  t.match(String(a.headers['content-type']), /^application\/json/)
  t.ok(a.ms < ANSWER_BOUND_MS, `answered within ${ANSWER_BOUND_MS} ms (took ${Math.round(a.ms)})`)
  if (fault.timing === 'timeout') {
    // The 504 comes from the timeout, not from an earlier failure.
    t.ok(a.ms >= TIMEOUT_MS * 0.9, `waited for the ${TIMEOUT_MS} ms timeout (took ${Math.round(a.ms)})`)
  }
  if (a.status === 401) t.equal(a.headers['www-authenticate'], 'Bearer realm="ipdr-gateway"')
  t.not(a.headers['x-cache'], 'HIT', 'never a cache hit under a fault')
}

/** `ipdr_gateway_upstream_requests_total` summed over methods and resources for one outcome. */
async function upstreamOutcome(app: Harness['gw']['app'], outcome: string): Promise<number> {
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body
  let n = 0
  for (const m of text.matchAll(
    new RegExp(`^ipdr_gateway_upstream_requests_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)`, 'gm'),
  )) {
    n += Number(m[1])
  }
  return n
}

type Harness = Awaited<ReturnType<typeof robustGateway>>

/** Polls `cond` every 5 ms for at most `ms`; true once it holds. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 5) {
    if (cond()) return true
    await settle(5)
  }
  return cond()
}

const READ_FAULTS: readonly Fault[] = [...TRANSPORT_FAULTS, ...LISTING_SHAPE_FAULTS, ...ENVELOPE_FAULTS]

for (const fault of READ_FAULTS) {
  t.test(`read routes under "${fault.name}" → ${fault.status}, then recovery`, async (t) => {
    const h = await robustGateway(t)
    await applyFault(h.upstream, fault)

    // The gateway keeps serving while a faulty upstream call is in flight.
    const [firstRoute] = READ_ROUTES[0] as [string, unknown]
    const first = send(h.gw, 'GET', firstRoute, { headers: AUTH })
    const health = await send(h.gw, 'GET', '/healthz')
    t.equal(health.status, 200, 'healthz answers during the fault')
    checkFaultAnswer(t, fault, firstRoute, await first)
    // The other routes at once: concurrent callers of a failing fill all get its error.
    const rest = READ_ROUTES.slice(1).map(([route]) => route)
    const answers = await Promise.all(rest.map((route) => send(h.gw, 'GET', route, { headers: AUTH })))
    for (const [i, route] of rest.entries()) checkFaultAnswer(t, fault, route, answers[i] as Answer)
    t.equal(await cacheEntries(h.gw.app), 0, 'nothing was cached')
    t.ok((await upstreamOutcome(h.gw.app, fault.outcome)) > 0, `counted as ${fault.outcome}`)

    // Asking again reaches the upstream again: no failure is remembered as data.
    const seen = h.upstream.requests.length
    checkFaultAnswer(t, fault, firstRoute, await send(h.gw, 'GET', firstRoute, { headers: AUTH }))
    if (fault.behaviour !== 'refuse') t.ok(h.upstream.requests.length > seen, 'the upstream was asked again')

    await recover(h.upstream)
    for (const [route, expected] of READ_ROUTES) {
      const a = await send(h.gw, 'GET', route, { headers: AUTH })
      t.equal(a.status, 200, `${route} works again: ${a.text.slice(0, 200)}`)
      t.same(a.json, expected, `${route} serves the upstream data`)
    }
    const hit = await send(h.gw, 'GET', firstRoute, { headers: AUTH })
    t.equal(hit.headers['x-cache'], 'HIT', 'and caches it again')
    // Writes work again too.
    const write = WRITE_CASES[0]
    if (write) {
      const w = await send(h.gw, write.method, write.path, { headers: AUTH, body: write.body })
      t.equal(w.status, 200, 'a write works again')
    }
  })
}

t.test('the timeout boundary: just under is served, just over is 504', async (t) => {
  // A wider timeout than the matrix so "just under" keeps a margin on a busy machine.
  const timeoutMs = 2000
  const h = await robustGateway(t, { gateway: { upstream: { timeoutMs, connectTimeoutMs: timeoutMs } } })
  const cases: [string, Fault['behaviour'], number][] = [
    ['headers at 65% of the timeout', { kind: 'json', body: CUSTOMERS, delayMs: timeoutMs * 0.65 }, 200],
    ['headers at 135% of the timeout', { kind: 'json', body: CUSTOMERS, delayMs: timeoutMs * 1.35 }, 504],
    [
      'body complete at 60% of the timeout',
      { kind: 'trickle', chunks: ['[', JSON.stringify(CUSTOMERS[0]), ']'], intervalMs: timeoutMs * 0.2 },
      200,
    ],
    [
      'body still arriving at 150% of the timeout',
      { kind: 'trickle', chunks: ['[', JSON.stringify(CUSTOMERS[0]), ']', ' '], intervalMs: timeoutMs * 0.5 },
      504,
    ],
  ]
  let n = 0
  for (const [name, behaviour, status] of cases) {
    if (behaviour === 'refuse') continue
    h.upstream.respond(() => behaviour)
    // A fresh cache key per case: another username.
    const a = await send(h.gw, 'GET', '/api/ipdrcustomers', {
      headers: { ...AUTH, 'x-trisul-username': `edge${n++}` },
    })
    t.equal(a.status, status, `${name} → ${status} (took ${Math.round(a.ms)} ms): ${a.text.slice(0, 120)}`)
    t.ok(a.ms < timeoutMs + ANSWER_BOUND_MS, 'bounded')
    if (status === 504) t.ok(a.ms >= timeoutMs * 0.9, 'not before the timeout')
  }
})

t.test('a 50 MB listing is served byte for byte and cached once', async (t) => {
  const h = await robustGateway(t, { gateway: { upstream: { timeoutMs: 60_000 } } })
  const pad = 'x'.repeat(180)
  const records: Record<string, unknown>[] = []
  let size = 2
  for (let i = 0; size < 50 * 1024 * 1024; i++) {
    const r = {
      id: i,
      Name: `Customer ${i}`,
      Address: pad,
      Email: `c${i}@example.com`,
      PhoneNumber: '9800000000',
      AltPhoneNumber: '',
      UserID: `U${i}`,
    }
    records.push(r)
    size += JSON.stringify(r).length + 1
  }
  const raw = Buffer.from(JSON.stringify(records))
  const digest = createHash('sha256').update(raw).digest('hex')
  t.ok(raw.length >= 50 * 1024 * 1024, `listing is ${raw.length} bytes, ${records.length} records`)
  h.upstream.respond(() => ({ kind: 'raw', body: raw }))

  const fetchAll = async (path: string) => {
    const res = await request(`${h.gw.url}${path}`, { headers: AUTH })
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of res.body) {
      hash.update(chunk as Buffer)
      bytes += (chunk as Buffer).length
    }
    return { status: res.statusCode, cache: res.headers['x-cache'], bytes, digest: hash.digest('hex') }
  }
  const first = await fetchAll('/api/ipdrcustomers')
  t.equal(first.status, 200)
  t.equal(first.cache, 'MISS')
  t.equal(first.bytes, raw.length, 'every byte')
  t.equal(first.digest, digest, 'the same bytes')
  const second = await fetchAll('/api/ipdrcustomers')
  t.equal(second.cache, 'HIT')
  t.equal(second.digest, digest)
  const lastId = `U${records.length - 1}`
  const one = await send(h.gw, 'GET', `/api/ipdrcustomers/${lastId}`, { headers: AUTH })
  t.equal(one.status, 200)
  t.same(one.json, records[records.length - 1], 'a single read from the big listing')
  const page = await send(h.gw, 'GET', '/api/ipdrcustomers?UserID=U12345', { headers: AUTH })
  t.same(page.json, [records[12345]])
  t.equal(page.headers['x-total-count'], '1')
  t.equal(
    h.upstream.requests.filter((r) => r.method === 'GET').length,
    1,
    'the upstream was asked once for all of them',
  )
  t.equal(await cacheEntries(h.gw.app), 1, 'one cache entry')
  const metrics = (await h.gw.app.inject({ method: 'GET', url: '/metrics' })).body
  const bytes = Number(/^ipdr_gateway_cache_bytes\{resource="customers"\} (\d+)/m.exec(metrics)?.[1])
  t.ok(bytes >= raw.length, `the entry accounts its bytes (${bytes})`)
})

t.test('stale-if-error covers upstream failures past the TTL, never an envelope', async (t) => {
  const h = await robustGateway(t, { gateway: { cache: { ttlSeconds: 30, staleIfErrorSeconds: 300 } } })
  const primed = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(primed.headers['x-cache'], 'MISS')
  h.clock.advance(31_000)
  for (const fault of READ_FAULTS) {
    await applyFault(h.upstream, fault)
    const a = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
    if (fault.status >= 500) {
      t.equal(a.status, 200, `${fault.name}: the stale listing stands in`)
      t.equal(a.headers['x-cache'], 'STALE')
      t.same(a.json, CUSTOMERS)
    } else {
      // An answer such as "Invalid API token" is never hidden behind old data.
      t.equal(a.status, fault.status, `${fault.name}: the upstream's answer, not stale data`)
    }
    await recover(h.upstream)
  }
  // Past TTL + stale-if-error, a failure is a failure.
  h.clock.advance(300_000)
  await applyFault(h.upstream, TRANSPORT_FAULTS[0] as Fault)
  const late = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(late.status, 502, 'no stale data past the stale-if-error window')
  await recover(h.upstream)
  const fresh = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(fresh.status, 200)
  t.equal(fresh.headers['x-cache'], 'MISS')
})

t.test('circuit breaker on timeouts: opens, half-opens on the fake clock, closes', async (t) => {
  const h = await robustGateway(t, { gateway: { upstream: { circuit: { failures: 3, resetSeconds: 5 } } } })
  const other = { authorization: 'Bearer tok-robust-bob', 'x-trisul-username': 'bob' }
  // A listing cached before the trouble keeps being served from the cache.
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: other })).status, 200)

  h.upstream.respond(() => ({ kind: 'hang' }))
  for (let i = 0; i < 3; i++) {
    const a = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
    t.equal(a.status, 504, `timeout ${i + 1}`)
  }
  const asked = h.upstream.requests.length
  const open = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(open.status, 503, 'open after circuit.failures timeouts')
  t.equal(open.json?.code, 'IPDR_GW_CIRCUIT_OPEN')
  const retryAfter = Number(open.headers['retry-after'])
  t.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After ${retryAfter}`)
  t.ok(open.ms < ANSWER_BOUND_MS, 'an open circuit answers at once')
  for (const w of WRITE_CASES) {
    const a = await send(h.gw, w.method, w.path, { headers: AUTH, body: w.body })
    t.equal(a.status, 503, `${w.method} ${w.path} refused while open`)
  }
  t.equal(h.upstream.requests.length, asked, 'nothing reached the upstream while open')
  // A write refused by the open circuit sent nothing, so it leaves the cache alone.
  const cached = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: other })
  t.equal(cached.status, 200, 'cached listings are still served after refused writes')
  t.equal(cached.headers['x-cache'], 'HIT')
  t.equal((await send(h.gw, 'GET', '/healthz')).status, 200)

  // Half-open: one trial; it times out too, so the circuit opens again.
  h.clock.advance(5000)
  const trial = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(trial.status, 504, 'the half-open trial reached the upstream')
  t.equal(h.upstream.requests.length, asked + 1, 'exactly one trial')
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })).status, 503, 'open again')

  // The upstream recovers; after the reset time one trial goes through and closes the circuit.
  // The trial is held at the upstream until the others have been answered: one trial at a time.
  await recover(h.upstream)
  h.clock.advance(5000)
  let open_ = () => {}
  const gate = new Promise<void>((resolve) => {
    open_ = resolve
  })
  h.upstream.respond(() => ({ kind: 'when', ready: gate, next: { kind: 'json', body: CUSTOMERS } }))
  const before = h.upstream.requests.length
  const trialOk = send(h.gw, 'GET', '/api/ipdrcustomers', { headers: { ...AUTH, 'x-trisul-username': 'c0' } })
  t.ok(await until(() => h.upstream.requests.length > before), 'the trial reached the upstream')
  const users = ['c1', 'c2', 'c3', 'c4']
  const waiting = await Promise.all(
    users.map((u) =>
      send(h.gw, 'GET', '/api/ipdrcustomers', { headers: { ...AUTH, 'x-trisul-username': u } }),
    ),
  )
  t.same(
    waiting.map((a) => a.status),
    users.map(() => 503),
    'while the trial runs, others are refused at once',
  )
  open_()
  h.upstream.respond(healthy)
  t.equal((await trialOk).status, 200, 'the trial succeeds and closes the circuit')
  const after = await Promise.all(
    users.map((u) =>
      send(h.gw, 'GET', '/api/ipdrcustomers', { headers: { ...AUTH, 'x-trisul-username': u } }),
    ),
  )
  t.same(
    after.map((a) => a.status),
    users.map(() => 200),
    'closed: everyone is served',
  )
  const w = WRITE_CASES[0]
  if (w) t.equal((await send(h.gw, w.method, w.path, { headers: AUTH, body: w.body })).status, 200)
})

t.test('writes refused by an open circuit keep the cache: stale listings still stand in', async (t) => {
  const h = await robustGateway(t, {
    gateway: { upstream: { circuit: { failures: 1, resetSeconds: 600 } }, cache: { ttlSeconds: 30 } },
  })
  const zed = { ...AUTH, 'x-trisul-username': 'zed' }
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })).status, 200)
  await h.upstream.refuseConnections()
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: zed })).status, 502, 'opens the circuit')
  t.equal(await cacheEntries(h.gw.app), 1, "alice's listing is cached")
  for (const w of WRITE_CASES) {
    const a = await send(h.gw, w.method, w.path, { headers: AUTH, body: w.body })
    t.equal(a.status, 503, `${w.method} ${w.path}: refused by the open circuit`)
  }
  t.equal(await cacheEntries(h.gw.app), 1, 'refused writes sent nothing and invalidated nothing')
  h.clock.advance(31_000)
  const stale = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(stale.status, 200, 'past the TTL, the stale listing stands in for the open circuit')
  t.equal(stale.headers['x-cache'], 'STALE')
  t.same(stale.json, CUSTOMERS)

  // Control: a write that may have landed (reset after the upstream read it) does invalidate.
  await recover(h.upstream)
  h.clock.advance(600_000)
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: zed })).status, 200, 'closed again')
  t.equal(await cacheEntries(h.gw.app), 1)
  h.upstream.respond(() => ({ kind: 'reset' }))
  const w0 = WRITE_CASES[0] as WriteCase
  t.equal((await send(h.gw, w0.method, w0.path, { headers: AUTH, body: w0.body })).status, 502)
  t.equal(await cacheEntries(h.gw.app), 0, 'a write that may have landed invalidates')
})

t.test('circuit breaker on refused connections, and recovery when the upstream listens again', async (t) => {
  const h = await robustGateway(t, { gateway: { upstream: { circuit: { failures: 3, resetSeconds: 2 } } } })
  await h.upstream.refuseConnections()
  // A listing is retried once on a connect error: two failures per request.
  const a1 = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(a1.status, 502)
  t.equal(a1.json?.code, 'IPDR_GW_UPSTREAM_UNAVAILABLE')
  const a2 = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(a2.status, 502, 'the third failure opens the circuit; the refused retry reports the real cause')
  const a3 = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(a3.status, 503)
  t.equal(a3.json?.code, 'IPDR_GW_CIRCUIT_OPEN')
  const metrics = (await h.gw.app.inject({ method: 'GET', url: '/metrics' })).body
  t.match(metrics, /outcome="connect_error"\} 3\b/, 'three connect errors counted')

  await recover(h.upstream)
  const stillOpen = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(stillOpen.status, 503, 'still open until the reset time, even though the upstream is back')
  h.clock.advance(2000)
  const trial = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
  t.equal(trial.status, 200, 'the half-open trial succeeds')
  t.same(trial.json, CUSTOMERS)
  for (const [route, expected] of READ_ROUTES) {
    const a = await send(h.gw, 'GET', route, { headers: AUTH })
    t.equal(a.status, 200, `${route} after recovery`)
    t.same(a.json, expected)
  }
})

t.test('envelope and HTTP errors do not open the circuit (the upstream is up)', async (t) => {
  const h = await robustGateway(t, { gateway: { upstream: { circuit: { failures: 2, resetSeconds: 5 } } } })
  const answers = [...ENVELOPE_FAULTS, ...TRANSPORT_FAULTS, ...LISTING_SHAPE_FAULTS].filter(
    (f) => f.outcome !== 'timeout' && f.outcome !== 'connect_error',
  )
  for (const fault of answers) {
    await applyFault(h.upstream, fault)
    const a = await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })
    t.equal(a.status, fault.status, fault.name)
  }
  await recover(h.upstream)
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })).status, 200, 'still closed')
})
