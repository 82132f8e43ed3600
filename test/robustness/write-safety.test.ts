/**
 * Write safety: POST, PUT, PATCH and DELETE on both resources, under every
 * upstream fault. The upstream receives each write at most once (never a
 * retry, not even a late one), the client never gets a 2xx the upstream did
 * not give, and every attempt that may have landed invalidates the cached
 * listings before it is answered (read-your-writes holds whatever the client saw).
 */
import t from 'tap'
import { request } from 'undici'
import {
  AUTH,
  applyFault,
  ENVELOPE_FAULTS,
  type Fault,
  recover,
  robustGateway,
  STACK_LIKE,
  send,
  settle,
  TIMEOUT_MS,
  TRANSPORT_FAULTS,
  WRITE_CASES,
  WRITE_SHAPE_FAULTS,
} from './harness.js'

/** The upstream's own successes, which the client must get as they are. */
const SUCCESSES: readonly [string, (fields: Record<string, unknown>) => Fault['behaviour']][] = [
  ['a healthy upstream', (fields) => ({ kind: 'json', body: { id: 7, ...fields } })],
  [
    'an upstream answering well within the timeout',
    (fields) => ({ kind: 'json', body: { id: 7, ...fields }, delayMs: TIMEOUT_MS / 3 }),
  ],
  ['an upstream answering 201', (fields) => ({ kind: 'json', status: 201, body: { id: 7, ...fields } })],
]

const FAULTS: readonly Fault[] = [...TRANSPORT_FAULTS, ...WRITE_SHAPE_FAULTS, ...ENVELOPE_FAULTS]

let writesChecked = 0

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300
}

for (const fault of FAULTS) {
  t.test(`writes under "${fault.name}": at most once, never a false success`, async (t) => {
    const h = await robustGateway(t)
    // Listings cached before the writes: every write attempt must invalidate them.
    for (const path of ['/api/ipdrcustomers', '/api/ipdrcustomers_mapping']) {
      t.equal((await send(h.gw, 'GET', path, { headers: AUTH })).headers['x-cache'], 'MISS')
    }
    await applyFault(h.upstream, fault)
    // All eight at once: concurrency must not make the gateway send any of them twice.
    const answers = await Promise.all(
      WRITE_CASES.map((w) => send(h.gw, w.method, w.path, { headers: AUTH, body: w.body })),
    )
    const receipts = () =>
      WRITE_CASES.map((w) => h.upstream.requests.filter((r) => r.method === w.method && r.url === w.path))
    const expected = fault.behaviour === 'refuse' ? 0 : 1
    const first = receipts()
    for (const [i, w] of WRITE_CASES.entries()) {
      const a = answers[i]
      const got = first[i] ?? []
      const label = `${w.method} ${w.path}`
      t.equal(got.length, expected, `${label}: the upstream received it ${expected} time(s)`)
      if (!a) continue
      t.notOk(isSuccess(a.status), `${label}: no success the upstream did not give (got ${a.status})`)
      t.equal(a.status, fault.status, `${label} → ${fault.status}: ${a.text.slice(0, 160)}`)
      t.equal(a.json?.code, fault.code)
      if (fault.message !== undefined) t.equal(a.json?.message, fault.message)
      t.notMatch(a.text, STACK_LIKE)
      for (const r of got) {
        t.same(
          r.body,
          { ...w.body, api_token: 'tok-robust-alice', username: 'alice', [contextField(w.path)]: 'default' },
          `${label}: the upstream got the validated fields plus the credentials`,
        )
      }
      writesChecked++
    }
    // A late duplicate would show up after the answers: a retry follows its failure at once.
    await settle(200)
    t.same(
      receipts().map((r) => r.length),
      first.map((r) => r.length),
      'no late retry',
    )
    await recover(h.upstream)
    for (const path of ['/api/ipdrcustomers', '/api/ipdrcustomers_mapping']) {
      const a = await send(h.gw, 'GET', path, { headers: AUTH })
      t.equal(a.status, 200)
      t.equal(a.headers['x-cache'], 'MISS', `${path}: invalidated by the attempts (they may have landed)`)
    }
  })
}

for (const [name, answer] of SUCCESSES) {
  t.test(`writes with ${name}: the client gets the upstream's record`, async (t) => {
    // A wide timeout: a success must not turn into a 504 because the machine is busy.
    const h = await robustGateway(t, { gateway: { upstream: { timeoutMs: 5000 } } })
    h.upstream.respond((req) => {
      const { api_token: _t, username: _u, contextname: _c, context: _x, ...fields } = req.body ?? {}
      return answer(fields) as Exclude<Fault['behaviour'], 'refuse'>
    })
    const answers = await Promise.all(
      WRITE_CASES.map((w) => send(h.gw, w.method, w.path, { headers: AUTH, body: w.body })),
    )
    for (const [i, w] of WRITE_CASES.entries()) {
      const a = answers[i]
      const got = h.upstream.requests.filter((r) => r.method === w.method && r.url === w.path)
      t.equal(got.length, 1, `${w.method} ${w.path}: once`)
      t.equal(a?.status, 200, `${w.method} ${w.path}: ${a?.text.slice(0, 160)}`)
      t.same(a?.json, { id: 7, ...w.body }, 'the record the upstream returned')
      t.equal(a?.headers['cache-control'], 'no-store')
      writesChecked++
    }
  })
}

t.test('a client that gives up mid-write: the write is sent once, never again', async (t) => {
  const h = await robustGateway(t)
  h.upstream.respond(() => ({ kind: 'hang' }))
  for (const w of WRITE_CASES) {
    const err = await request(`${h.gw.url}${w.path}`, {
      method: w.method,
      headers: { ...AUTH, ...(w.body ? { 'content-type': 'application/json' } : {}) },
      ...(w.body ? { body: JSON.stringify(w.body) } : {}),
      signal: AbortSignal.timeout(100),
    }).then(
      () => null,
      (e: unknown) => e,
    )
    t.ok(err, `${w.method} ${w.path}: the client aborted`)
  }
  // Past the gateway's own timeout: any retry would have happened by now.
  await settle(TIMEOUT_MS + 500)
  for (const w of WRITE_CASES) {
    const got = h.upstream.requests.filter((r) => r.method === w.method && r.url === w.path)
    t.equal(got.length, 1, `${w.method} ${w.path}: received once`)
    writesChecked++
  }
  await recover(h.upstream)
  t.equal((await send(h.gw, 'GET', '/healthz')).status, 200, 'the gateway is fine')
  t.equal((await send(h.gw, 'GET', '/api/ipdrcustomers', { headers: AUTH })).status, 200)
})

t.test('writes checked', async (t) => {
  t.comment(`writes checked: ${writesChecked}`)
  t.ok(writesChecked >= WRITE_CASES.length * (FAULTS.length + SUCCESSES.length + 1))
})

function contextField(path: string): string {
  return path.startsWith('/api/ipdrcustomers_mapping') ? 'context' : 'contextname'
}
