/**
 * SPEC 13, "credentials before bodies", "bounded memory for bodies in flight" and "slow clients",
 * attacked as issue 30 found them: 60 MB uploads without credentials (or without the sync grant)
 * must be refused before their bodies are read, the bodies held at once are bounded, and a body
 * (or headers) sent a byte at a time is cut off with 408.
 */
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'
import { upload } from './hostile-client.js'

const MB = 1024 * 1024

async function gateway(t: Test, gatewayPolicy: Record<string, unknown> = {}) {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: gatewayPolicy,
    consumers: {
      default: PERMISSIVE_DEFAULT,
      syncer: { usernames: ['syncer'], operations: { customers: ['sync', 'create', 'update'] } },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  return { gw, port: Number(new URL(gw.url).port), upstream }
}

/** The largest growth of this process's RSS over a baseline while `work` runs, sampled every 20 ms. */
async function peakRssGrowth<T>(work: () => Promise<T>): Promise<{ growth: number; value: T }> {
  const base = process.memoryUsage().rss
  let peak = base
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 20)
  try {
    const value = await work()
    peak = Math.max(peak, process.memoryUsage().rss)
    return { growth: peak - base, value }
  } finally {
    clearInterval(sampler)
  }
}

t.test(
  '8 parallel 60 MB uploads without credentials or without the sync grant: refused unread',
  async (t) => {
    const { port, upstream } = await gateway(t)
    const bytes = 60 * MB
    const { growth, value: results } = await peakRssGrowth(() =>
      Promise.all([
        ...Array.from({ length: 4 }, () => upload(port, { path: '/sync/customers', bytes })),
        ...Array.from({ length: 4 }, () =>
          upload(port, {
            path: '/sync/customers',
            bytes,
            // A Trisul token for the default consumer, which has no sync grant.
            headers: { Authorization: 'Bearer some-token', 'X-Trisul-Username': 'crm' },
          }),
        ),
      ]),
    )
    t.same(
      results.map((r) => r.status),
      [401, 401, 401, 401, 403, 403, 403, 403],
      'refused on their credentials and their grant',
    )
    for (const r of results) {
      t.ok(r.sent < bytes, `the connection was closed before the whole body was sent (${r.sent} bytes sent)`)
      t.match(r.answer, /\r\nconnection: close\r\n/i, 'and the answer said so')
    }
    t.ok(growth <= 64 * MB, `RSS grew ${Math.round(growth / MB)} MB (bound 64 MB)`)
    t.equal(upstream.requests.length, 0, 'nothing reached Trisul')
  },
)

t.test('a refused request with a small body keeps its connection (the few bytes are drained)', async (t) => {
  const { port } = await gateway(t)
  const socket = connect(port, '127.0.0.1')
  await new Promise((r) => socket.once('connect', r))
  let answer = ''
  socket.on('data', (d) => {
    answer += d.toString()
  })
  const body = '[]'
  socket.write(
    `POST /sync/customers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
  )
  for (let i = 0; i < 100 && !answer.includes('}'); i++) await new Promise((r) => setTimeout(r, 20))
  t.match(answer, /^HTTP\/1\.1 401/)
  t.notMatch(answer, /connection: close/i)
  socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
  for (let i = 0; i < 100 && !answer.includes('HTTP/1.1 200'); i++)
    await new Promise((r) => setTimeout(r, 20))
  t.match(answer, /HTTP\/1\.1 200/, 'the same connection serves the next request')
  socket.destroy()
})

t.test('the sync route takes a large body only once admitted for sync', async (t) => {
  const { port } = await gateway(t)
  const r = await upload(port, {
    path: '/sync/customers',
    bytes: 3 * MB,
    headers: { Authorization: 'Bearer some-token', 'X-Trisul-Username': 'syncer' },
  })
  // The body (3 MB of "A") is read whole under sync.maxBodyBytes, then found not to be CSV rows.
  t.not(r.status, 413, 'past limits.bodyBytes, within sync.maxBodyBytes')
  t.equal(r.sent, 3 * MB, 'the whole body was read')
})

/** Opens a request that declares `length` body bytes and sends `first` of them, holding the rest. */
async function heldUpload(
  port: number,
  length: number,
  first: number,
): Promise<{ socket: Socket; answer: () => string }> {
  const socket = connect(port, '127.0.0.1')
  await new Promise((r) => socket.once('connect', r))
  let answer = ''
  socket.on('data', (d) => {
    answer += d.toString()
  })
  socket.on('error', () => undefined)
  socket.write(
    'POST /api/ipdrcustomers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      `Authorization: Bearer tok\r\nX-Trisul-Username: crm\r\nContent-Length: ${length}\r\n\r\n`,
  )
  socket.write(Buffer.alloc(first, 0x20))
  return { socket, answer: () => answer }
}

async function until(check: () => boolean, ms = 5000): Promise<void> {
  for (let waited = 0; waited < ms && !check(); waited += 20) await new Promise((r) => setTimeout(r, 20))
}

t.test('limits.inFlightBodyBytes: past it a new body gets 503 with Retry-After, unread', async (t) => {
  const { port } = await gateway(t, { limits: { bodyBytes: 1_000_000, inFlightBodyBytes: 2_500_000 } })
  const a = await heldUpload(port, 1_000_000, 10)
  const b = await heldUpload(port, 1_000_000, 10)
  await new Promise((r) => setTimeout(r, 100))
  const c = await heldUpload(port, 1_000_000, 10)
  await until(() => c.answer().includes('}'))
  t.match(c.answer(), /^HTTP\/1\.1 503/, 'the third body would pass the budget')
  t.match(c.answer(), /retry-after: 1/i)
  t.match(c.answer(), /IPDR_GW_BODIES_IN_FLIGHT/)
  t.equal(a.answer(), '', 'the two admitted bodies are still being received')
  a.socket.destroy()
  await new Promise((r) => setTimeout(r, 100))
  const d = await heldUpload(port, 1_000_000, 10)
  await new Promise((r) => setTimeout(r, 200))
  t.notMatch(d.answer(), /503/, 'a closed request gave its reservation back')
  for (const s of [b, c, d]) s.socket.destroy()
})

t.test('slow clients: a body at one byte a time gets 408 and the connection closed', async (t) => {
  const { port, upstream } = await gateway(t, { server: { requestTimeoutMs: 800, headersTimeoutMs: 1000 } })
  const slow = await heldUpload(port, 50, 1)
  const drip = setInterval(() => slow.socket.write(' '), 200)
  t.teardown(() => clearInterval(drip))
  const started = Date.now()
  let closed = false
  slow.socket.on('close', () => {
    closed = true
  })
  await until(() => closed, 10_000)
  clearInterval(drip)
  t.ok(closed, 'the connection was closed')
  t.match(slow.answer(), /^HTTP\/1\.1 408/, 'with a 408')
  t.match(slow.answer(), /IPDR_GW_REQUEST_TIMEOUT/)
  t.ok(Date.now() - started < 5000, `within the timeout (${Date.now() - started} ms)`)
  t.equal(upstream.requests.length, 0)

  // Unauthenticated, the same drip is refused at once: no body is awaited without credentials.
  const socket = connect(port, '127.0.0.1')
  let answer = ''
  socket.on('data', (d) => {
    answer += d.toString()
  })
  socket.write(
    'POST /sync/customers HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 1000\r\n\r\nA',
  )
  await until(() => answer.includes('}'), 2000)
  t.match(answer, /^HTTP\/1\.1 401/, 'unauthenticated: 401 before the body')
  socket.destroy()

  // Headers sent a byte at a time: Node's headers timeout, checked every second.
  const h = connect(port, '127.0.0.1')
  let headersAnswer = ''
  let headersClosed = false
  h.on('data', (d) => {
    headersAnswer += d.toString()
  })
  h.on('close', () => {
    headersClosed = true
  })
  h.on('error', () => undefined)
  h.write('GET /healthz HTTP/1.1\r\nX-Slow: ')
  const drip2 = setInterval(() => h.writable && h.write('a'), 200)
  t.teardown(() => clearInterval(drip2))
  await until(() => headersClosed, 10_000)
  clearInterval(drip2)
  t.ok(headersClosed, 'slow headers: closed')
  t.match(headersAnswer, /^HTTP\/1\.1 408/, 'with a 408')
})

t.test(
  'slow clients: a GET whose legacy body credentials never arrive gets 408, as a write does',
  async (t) => {
    const { port, upstream } = await gateway(t, { server: { requestTimeoutMs: 500 } })
    const socket = connect(port, '127.0.0.1')
    let answer = ''
    let closed = false
    socket.on('data', (d) => {
      answer += d.toString()
    })
    socket.on('close', () => {
      closed = true
    })
    socket.on('error', () => undefined)
    socket.write(
      'GET /api/ipdrcustomers HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"api_token":',
    )
    await until(() => closed, 5000)
    t.match(answer, /^HTTP\/1\.1 408/, 'the listener’s 408, not a 400 for an unreadable body')
    t.match(answer, /IPDR_GW_REQUEST_TIMEOUT/)
    t.equal(upstream.requests.length, 0)
  },
)
