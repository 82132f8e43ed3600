/**
 * SPEC 8 under store faults, with a real redis-server: refused (stopped),
 * frozen (SIGSTOP), restarted empty; an instance that stops answering (its
 * lease left in Redis) and one whose subscriber connection is cut. Every
 * request is answered; no instance serves a cached listing past its lease;
 * budgets fall back to per-instance counting; writes stay visible everywhere;
 * shared behaviour is back within 5 s. Latency bounds here are loose (a busy
 * machine must not fail them); `npm run bench` measures them exactly.
 */
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { coherenceKeys } from '../../src/store/coherence.js'
import type { TestGateway } from '../helpers/gateway.js'
import { findRedisServer, REDIS_MISSING, startRedis, type TestRedis } from '../helpers/redis-server.js'
import { ALICE, call, startInstances, startTestEmulator, untilShared } from './cluster.js'

if (!findRedisServer()) t.fail(REDIS_MISSING)

const LEASE_MS = 1000
const LOOSE_MS = 1500

async function setup(t: Test, n = 2, gateway: Record<string, unknown> = {}) {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 10)
  const gws = await startInstances(t, {
    n,
    redis,
    upstreamUrl: emu.url,
    spec: { gateway },
    redisOverrides: { leaseMs: LEASE_MS, timeoutMs: 100 },
  })
  await untilShared(gws)
  for (const g of gws) await call(g.url, 'GET', '/api/ipdrcustomers')
  return { redis, gws }
}

/**
 * Polls every instance for `ms` (bounded count); returns each answer with the time it was sent,
 * relative to `since`.
 */
async function poll(gws: readonly TestGateway[], since: number, ms: number) {
  const out: { at: number; status: number; cache: unknown; ms: number }[] = []
  const end = performance.now() + ms
  for (let i = 0; i < 400 && performance.now() < end; i++) {
    const at = performance.now() - since
    const replies = await Promise.all(gws.map((g) => call(g.url, 'GET', '/api/ipdrcustomers')))
    for (const r of replies) out.push({ at, status: r.status, cache: r.headers['x-cache'], ms: r.ms })
    await new Promise((r) => setTimeout(r, 30))
  }
  return out
}

async function checkOutage(t: Test, gws: readonly TestGateway[], fault: () => void, name: string) {
  const since = performance.now()
  fault()
  const seen = await poll(gws, since, LEASE_MS * 2.5)
  t.ok(seen.length > 10, `${name}: polled`)
  t.ok(
    seen.every((s) => s.status === 200),
    `${name}: every request answered 200`,
  )
  const slowest = Math.max(...seen.map((s) => s.ms))
  t.ok(slowest < LOOSE_MS, `${name}: slowest answer ${Math.round(slowest)} ms`)
  // A lease runs from its renewal's sending, which came before the fault: nothing cached after it.
  const late = seen.filter((s) => s.at > LEASE_MS + 100)
  t.ok(late.length > 0, `${name}: polled past the lease`)
  t.same(
    late.filter((s) => s.cache === 'HIT'),
    [],
    `${name}: no cached listing served past the lease (reads go through)`,
  )
  t.ok(
    late.every((s) => s.cache === 'MISS'),
    `${name}: read through the upstream`,
  )
}

async function checkRecovery(t: Test, gws: readonly TestGateway[], name: string) {
  const started = Date.now()
  await untilShared(gws, 5000)
  t.ok(Date.now() - started <= 5000, `${name}: shared again within 5 s`)
  // Shared behaviour: a write through one is seen through the other, and the others serve hits again.
  const id = `REC${Math.floor(Math.random() * 1e6)}`
  t.equal(
    (await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, { UserID: id, Name: 'Back' })).status,
    200,
  )
  for (const g of gws.slice(1)) t.equal((await call(g.url, 'GET', `/api/ipdrcustomers/${id}`)).status, 200)
  for (const g of gws) await call(g.url, 'GET', '/api/ipdrcustomers')
  for (const g of gws) t.equal((await call(g.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT')
}

t.test('Redis refused: answered, read through, counted locally; back within 5 s', async (t) => {
  const { redis, gws } = await setup(t)
  await checkOutage(t, gws, () => void redis.stop(), 'refused')
  t.same(
    gws.map((g) => g.app.storeState().up),
    [false, false],
    'store_up reads 0',
  )
  await redis.start()
  await checkRecovery(t, gws, 'refused')
})

t.test(
  'Redis frozen (SIGSTOP): answered within a loose bound, read through; back after SIGCONT',
  async (t) => {
    const { redis, gws } = await setup(t)
    await checkOutage(t, gws, () => redis.freeze(), 'frozen')
    redis.thaw()
    await checkRecovery(t, gws, 'frozen')
  },
)

t.test('Redis restarted empty: every instance drops its cache, then shares again', async (t) => {
  const { redis, gws } = await setup(t)
  for (const g of gws) t.equal((await call(g.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT')
  const before = gws.map((g) => g.app.storeState().epoch)
  await redis.stop()
  await redis.start()
  // Each instance notices at its next renewal that the data is gone (a new epoch).
  const deadline = Date.now() + 5000
  while (gws.some((g, i) => g.app.storeState().epoch === before[i]) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20))
  }
  t.ok(
    gws.every((g, i) => g.app.storeState().epoch !== before[i]),
    'every instance saw the new epoch',
  )
  await untilShared(gws, 5000)
  // The data (and any invalidation it held) is gone: nothing cached before may be served.
  for (const g of gws) t.equal((await call(g.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'MISS')
  await checkRecovery(t, gws, 'restarted')
})

t.test('budgets fall back to per-instance counting while Redis is down', async (t) => {
  const { redis, gws } = await setup(t, 2, { rateLimit: { max: 3, timeWindow: '1 minute' } })
  // The setup's two reads used 2 of the shared 3.
  t.equal((await call(gws[0]!.url, 'GET', '/api/ipdrcustomers')).status, 200)
  t.equal((await call(gws[1]!.url, 'GET', '/api/ipdrcustomers')).status, 429, 'shared budget spent')
  await redis.stop()
  for (const g of gws) {
    const statuses = []
    for (let i = 0; i < 4; i++) statuses.push((await call(g.url, 'GET', '/api/ipdrcustomers')).status)
    t.same(statuses, [200, 200, 200, 429], 'each instance counts its own budget')
  }
})

t.test('a write while Redis is down is seen through the other instance', async (t) => {
  const { redis, gws } = await setup(t)
  await redis.stop()
  const created = await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, {
    UserID: 'DOWN1',
    Name: 'Outage',
  })
  t.equal(created.status, 200, 'the write is answered')
  t.ok(created.ms < LEASE_MS * 3, `within the lease and a timeout (${Math.round(created.ms)} ms)`)
  const read = await call(gws[1]!.url, 'GET', '/api/ipdrcustomers/DOWN1')
  t.equal(read.status, 200, 'the other instance sees it')
  // Once Redis is back, the kept invalidation is announced and caching resumes everywhere.
  await redis.start()
  await checkRecovery(t, gws, 'after a write in the outage')
})

async function admin(t: Test, redis: TestRedis): Promise<Redis> {
  const a = new Redis(redis.url)
  t.teardown(() => a.disconnect())
  return a
}

t.test('a write to a Redis that lost its data waits out the leases the old one granted', async (t) => {
  const { redis, gws } = await setup(t)
  for (const g of gws) t.equal((await call(g.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT')
  await redis.stop()
  await redis.start()
  // Written before any instance has renewed with the new Redis: its member set is empty.
  const created = await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, {
    UserID: 'EMPTY1',
    Name: 'Lost',
  })
  t.equal(created.status, 200)
  const read = await call(gws[1]!.url, 'GET', '/api/ipdrcustomers')
  t.ok(read.text.includes('"EMPTY1"'), 'the other instance does not serve its old listing')
})

t.test('a write waits for an instance that stopped answering, at most until its lease ends', async (t) => {
  const { redis, gws } = await setup(t)
  const a = await admin(t, redis)
  // A member that holds a lease but never acknowledges (paused by GC, or killed -9).
  const [sec, micro] = await a.time()
  const redisNow = Number(sec) * 1000 + Math.floor(Number(micro) / 1000)
  await a.zadd(coherenceKeys('ipdr-gateway:').members, redisNow + 700, 'paused-instance')
  const slow = await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, { UserID: 'P1', Name: 'Paused' })
  t.equal(slow.status, 200)
  t.ok(slow.ms >= 500, `waited for the silent lease (${Math.round(slow.ms)} ms)`)
  t.ok(slow.ms < 700 + LOOSE_MS, 'and no longer than it')
  // Its lease has run out: the next write does not wait for it.
  const fast = await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, {
    UserID: 'P2',
    Name: 'Not paused',
  })
  t.equal(fast.status, 200)
  t.ok(fast.ms < 500, `the next write is not held (${Math.round(fast.ms)} ms)`)
  t.equal((await call(gws[1]!.url, 'GET', '/api/ipdrcustomers/P2')).status, 200)
})

t.test(
  'an instance whose subscriber connection is cut catches up before the write is answered',
  async (t) => {
    const { redis, gws } = await setup(t)
    const a = await admin(t, redis)
    let stale = 0
    for (let i = 0; i < 6; i++) {
      await a.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
      await call(gws[1]!.url, 'GET', '/api/ipdrcustomers')
      const id = `SUB${i}`
      t.equal(
        (await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, { UserID: id, Name: 'Cut' })).status,
        200,
      )
      const r = await call(gws[1]!.url, 'GET', '/api/ipdrcustomers')
      if (!r.text.includes(`"${id}"`)) stale++
    }
    t.equal(stale, 0, 'no stale read')
  },
)
