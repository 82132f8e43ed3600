/**
 * SPEC 8's single-flight rule, the read-your-writes race of issue 37: with Redis frozen and the
 * leases run out, a read on B starts a listing fetch that Trisul answers with the data as it was
 * on arrival (slowly); a write through A is answered; a read on B after that must not get the
 * answer of the fetch that started before the write. It waits for the next one.
 */
import { createServer, request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startRedis } from '../helpers/redis-server.js'
import { call, startInstances, startTestEmulator, untilShared } from './cluster.js'

/** A proxy in front of `target` that forwards at once but holds each GET's answer for `delayMs`. */
async function slowListingProxy(t: Test, target: string, delayMs: number): Promise<string> {
  const to = new URL(target)
  const server = createServer((req, res) => {
    const up = httpRequest(
      { host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        const chunks: Buffer[] = []
        r.on('data', (c: Buffer) => chunks.push(c))
        r.on('end', () => {
          const send = () => {
            res.writeHead(r.statusCode ?? 502, r.headers)
            res.end(Buffer.concat(chunks))
          }
          if (req.method === 'GET') setTimeout(send, delayMs)
          else send()
        })
      },
    )
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  t.teardown(() => new Promise<void>((r) => server.close(() => r())))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('Redis frozen: a read after a write never joins a fetch that started before it', async (t) => {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 3)
  const upstream = await slowListingProxy(t, emu.url, 1200)
  const [a, b] = await startInstances(t, {
    n: 2,
    redis,
    upstreamUrl: upstream,
    redisOverrides: { leaseMs: 400, timeoutMs: 100 },
  })
  if (!a || !b) throw new Error('two instances')
  await untilShared([a, b])
  redis.freeze()
  t.teardown(() => redis.thaw())
  // Past every lease and A's wait for them: A answers a write at once, B reads through.
  await new Promise((r) => setTimeout(r, 1200))

  const before = call(b.url, 'GET', '/api/ipdrcustomers')
  await new Promise((r) => setTimeout(r, 150))
  const created = await call(a.url, 'POST', '/api/ipdrcustomers', undefined, {
    UserID: 'RACE1',
    Name: 'After',
  })
  t.equal(created.status, 200, 'the write was answered')
  const after = await call(b.url, 'GET', '/api/ipdrcustomers')
  t.equal(after.status, 200)
  const ids = (JSON.parse(after.text) as { UserID: string }[]).map((c) => c.UserID)
  t.ok(ids.includes('RACE1'), 'the read after the write sees it (no stale read)')
  const first = await before
  t.equal(first.status, 200, 'the read that came first got its own answer')
})
