/**
 * The upstream client's own exchange (src/upstream/client.ts): the deadline is the whole call's,
 * a call still queued for a connection fails at it and is never sent, bodies past the limit are
 * refused whether declared or streamed, and the caller's signal ends a call.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { GatewayError } from '../../src/errors.js'
import { UpstreamClient } from '../../src/upstream/client.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void

async function upstream(t: Test, handler: Handler) {
  const seen: string[] = []
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`)
    handler(req, res)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

function client(t: Test, url: string, opts: { timeoutMs?: number; connections?: number } = {}) {
  const c = new UpstreamClient({
    url,
    timeoutMs: opts.timeoutMs ?? 5000,
    connectTimeoutMs: 1000,
    caFile: null,
    circuit: { failures: 100, resetSeconds: 30 },
    connections: opts.connections ?? 4,
  })
  t.teardown(() => c.close())
  return c
}

const call = (path: string, extra: object = {}) => ({
  method: 'POST' as const,
  path,
  resource: 'customers' as const,
  body: { UserID: 'A1' },
  ...extra,
})

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'resolved'
  } catch (err) {
    return err instanceof GatewayError ? err.code : String(err)
  }
}

t.test('an answer: status, content type and the bytes as sent', async (t) => {
  const up = await upstream(t, (_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json; charset=utf-8' })
    res.end('{"id":1}')
  })
  const res = await client(t, up.url).request(call('/api/ipdrcustomers'))
  t.equal(res.statusCode, 201)
  t.equal(res.contentType, 'application/json; charset=utf-8')
  t.equal(res.body.toString(), '{"id":1}')
  t.ok(res.seconds >= 0)
})

t.test('the deadline is the whole call: a held answer fails at it', async (t) => {
  const held: ServerResponse[] = []
  const up = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{')
    held.push(res)
  })
  t.teardown(() => {
    for (const res of held) res.destroy()
  })
  const started = performance.now()
  t.equal(
    await codeOf(client(t, up.url, { timeoutMs: 300 }).request(call('/api/ipdrcustomers'))),
    'IPDR_GW_UPSTREAM_TIMEOUT',
  )
  const waited = performance.now() - started
  t.ok(waited >= 290 && waited < 2000, `failed at its deadline (${Math.round(waited)} ms)`)
})

t.test(
  'a call queued for a connection and abandoned meanwhile fails at once and is never sent',
  async (t) => {
    const held: ServerResponse[] = []
    const up = await upstream(t, (_req, res) => held.push(res))
    const c = client(t, up.url, { connections: 1 })
    const first = c.request(call('/api/ipdrcustomers/first'))
    await new Promise((r) => setTimeout(r, 50))
    const gone = new AbortController()
    const second = codeOf(c.request(call('/api/ipdrcustomers/second', { signal: gone.signal })))
    await new Promise((r) => setTimeout(r, 20))
    gone.abort(new Error('client gone'))
    t.equal(await second, 'IPDR_GW_UPSTREAM_UNAVAILABLE')
    for (const res of held.splice(0)) res.end('{}')
    t.equal((await first).statusCode, 200)
    await new Promise((r) => setTimeout(r, 100))
    t.same(up.seen, ['POST /api/ipdrcustomers/first'], 'the queued call never reached the upstream')
  },
)

t.test('a body past the limit: declared or streamed, refused as too large', async (t) => {
  const declared = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2000' })
    res.end('x'.repeat(2000))
  })
  t.equal(
    await codeOf(client(t, declared.url).request(call('/api/ipdrcustomers', { maxBytes: 1000 }))),
    'IPDR_GW_UPSTREAM_TOO_LARGE',
  )
  const streamed = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('x'.repeat(800))
    setTimeout(() => res.end('x'.repeat(800)), 20)
  })
  t.equal(
    await codeOf(client(t, streamed.url).request(call('/api/ipdrcustomers', { maxBytes: 1000 }))),
    'IPDR_GW_UPSTREAM_TOO_LARGE',
  )
})

t.test("the caller's signal ends the call, before or after it was sent", async (t) => {
  const held: ServerResponse[] = []
  const up = await upstream(t, (_req, res) => held.push(res))
  t.teardown(() => {
    for (const res of held) res.destroy()
  })
  const c = client(t, up.url)
  const before = new AbortController()
  before.abort(new Error('gone'))
  t.equal(
    await codeOf(c.request(call('/api/ipdrcustomers', { signal: before.signal }))),
    'IPDR_GW_UPSTREAM_UNAVAILABLE',
  )
  const during = new AbortController()
  const pending = codeOf(c.request(call('/api/ipdrcustomers', { signal: during.signal })))
  await new Promise((r) => setTimeout(r, 50))
  during.abort(new Error('gone'))
  t.equal(await pending, 'IPDR_GW_UPSTREAM_UNAVAILABLE')
  t.equal(up.seen.length, 1, 'only the call not aborted before it started was sent')
})
