/**
 * One fill for all when the bulk connection cannot take the bytes (not connected yet: a Redis
 * Cluster still finding its slots, found by `npm run bench` row 15): the waiters are told to fetch
 * for themselves at once, rather than waiting out the filler's lock (the upstream timeout).
 */
import type { Redis } from 'ioredis'
import t from 'tap'
import { closeRedis, openRedis, urlEndpoint } from '../../src/store/redis-client.js'
import { RedisFills } from '../../src/store/shared-fill.js'
import { StoreHealth } from '../../src/store/store-health.js'
import { findRedisServer, REDIS_MISSING, startRedis } from '../helpers/redis-server.js'

if (!findRedisServer()) t.fail(REDIS_MISSING)

t.test('a filler whose bytes Redis did not take releases its waiters at once', async (t) => {
  const redis = await startRedis(t)
  const commands = openRedis({ endpoint: urlEndpoint(redis.url), timeoutMs: 200, name: 'fill-cmd' }) as Redis
  // A bulk connection that never connects: every command fails at once (no offline queue).
  const bulk = openRedis({ endpoint: urlEndpoint('redis://127.0.0.1:1'), timeoutMs: 200, name: 'fill-bulk' })
  t.teardown(() => {
    closeRedis(commands)
    closeRedis(bulk)
  })
  for (let i = 0; i < 200 && commands.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 10))
  const errors: string[] = []
  const health = new StoreHealth({ onError: (op) => errors.push(op) })
  health.succeeded()
  const fills = (id: string) =>
    new RedisFills({
      redis: commands,
      bulk,
      keyPrefix: 'f:',
      health,
      shareMaxBytes: 1 << 20,
      timeoutMs: 200,
      upstreamTimeoutMs: 10_000,
      bodyTtlMs: 5000,
      instanceId: id,
    })
  const a = fills('a')
  const b = fills('b')
  const produced: string[] = []
  const produce = (who: string) => async () => {
    produced.push(who)
    await new Promise((r) => setTimeout(r, 50))
    return { raw: Buffer.from(`[${who}]`), value: who }
  }
  const first = a.fill('k', 'ctx', produce('a'), (raw) => `adopted ${raw.toString()}`)
  await new Promise((r) => setTimeout(r, 10))
  const started = performance.now()
  const second = b.fill('k', 'ctx', produce('b'), (raw) => `adopted ${raw.toString()}`)
  t.equal(await first, 'a', 'the filler answers its own client')
  t.equal(await second, 'b', 'the waiter fetched for itself')
  const waited = performance.now() - started
  t.ok(waited < 3000, `released in ${Math.round(waited)} ms, not after the upstream timeout (10 s)`)
  t.same(produced, ['a', 'b'])
  t.ok(errors.includes('fill'), 'the failure was reported')
})
