/**
 * The coherence protocol (src/store/coherence.ts) against a real redis-server,
 * renewals driven by hand and the lease on a fake clock: leases run from their
 * sending, a lapse drops the cache and starts a grace, missed events are applied
 * and acknowledged at the next renewal, a gap or lost data drops everything, and
 * a writer facing a Redis that lost its data waits out the old leases.
 */
import { createSocket } from 'node:dgram'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { coherenceKeys, RedisCoherence, SETTLED_CHANNEL } from '../../src/store/coherence.js'
import { closeRedis, openRedis, urlEndpoint } from '../../src/store/redis-client.js'
import { StoreHealth } from '../../src/store/store-health.js'
import { findRedisServer, REDIS_MISSING, startRedis, type TestRedis } from '../helpers/redis-server.js'

if (!findRedisServer()) t.fail(REDIS_MISSING)

interface FakeCache {
  contexts: string[]
  all: number
  invalidateContext(context: string): number
  invalidateAll(): number
}

function fakeCache(): FakeCache {
  const c: FakeCache = {
    contexts: [],
    all: 0,
    invalidateContext(context) {
      c.contexts.push(context)
      return 0
    },
    invalidateAll() {
      c.all++
      return 0
    },
  }
  return c
}

async function ready(r: Redis): Promise<void> {
  const deadline = Date.now() + 5000
  while (r.status !== 'ready') {
    if (Date.now() > deadline) throw new Error('redis connection not ready')
    await new Promise((res) => setTimeout(res, 10))
  }
}

/** Data that has been in Redis for long (an epoch made at time 0): no lease of a lost Redis to wait out. */
const KEYS = coherenceKeys('t:')

async function oldEpoch(t: Test, redis: TestRedis): Promise<Redis> {
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  // An epoch this server made long ago (`random:run id:ms`): no lease it does not list.
  const runId = /run_id:(\w+)/.exec(await admin.info('server'))?.[1]
  await admin.set(KEYS.epoch, `settled:${runId}:0`, 'PX', 3_600_000)
  return admin
}

async function instance(
  t: Test,
  redis: TestRedis,
  id: string,
  leaseMs: number,
  now?: () => number,
  directAcks = false,
) {
  const cmd = openRedis({ endpoint: urlEndpoint(redis.url), timeoutMs: 200, name: `test-${id}` }) as Redis
  const sub = openRedis({ endpoint: urlEndpoint(redis.url), timeoutMs: 200, name: `test-${id}-sub` }) as Redis
  await ready(cmd)
  await ready(sub)
  const cache = fakeCache()
  const health = new StoreHealth()
  const coherence = new RedisCoherence({
    redis: cmd,
    subscriber: sub,
    keyPrefix: 't:',
    cache,
    health,
    leaseMs,
    timeoutMs: 200,
    instanceId: id,
    directAcks,
    ...(now ? { now } : {}),
  })
  t.teardown(async () => {
    await coherence.close()
    closeRedis(cmd)
    closeRedis(sub)
  })
  return { coherence, cache, health, cmd }
}

t.test('a lease runs from its renewal; a lapse drops the cache and starts a grace', async (t) => {
  const redis = await startRedis(t)
  let clock = 0
  const a = await instance(t, redis, 'a', 400, () => clock)
  t.notOk(a.coherence.mayServeCached(), 'no lease before the first renewal')
  await a.coherence.renew()
  t.ok(a.health.up, 'the store answers')
  t.equal(a.cache.all, 1, 'the first lease starts from an empty cache')
  t.notOk(a.coherence.mayServeCached(), 'within the grace (300 ms)')
  clock = 350
  t.ok(a.coherence.mayServeCached(), 'held after the grace')
  clock = 399
  t.ok(a.coherence.mayServeCached())
  clock = 400
  t.notOk(a.coherence.mayServeCached(), 'lapsed at sending + lease, however the answer came')
  await a.coherence.renew()
  t.equal(a.cache.all, 2, 'a renewal after a lapse drops everything')
  t.notOk(a.coherence.mayServeCached(), 'and waits a grace again')
  clock = 750
  t.ok(a.coherence.mayServeCached())
  // A renewal within the lease keeps serving, without dropping anything.
  await a.coherence.renew()
  t.equal(a.cache.all, 2)
  t.ok(a.coherence.mayServeCached())
})

t.test('an event the subscriber missed is applied and acknowledged at the next renewal', async (t) => {
  const redis = await startRedis(t)
  await oldEpoch(t, redis)
  const a = await instance(t, redis, 'a', 3000)
  const b = await instance(t, redis, 'b', 3000)
  a.coherence.start()
  // b renews by hand and never subscribes: it hears of writes only through renewals.
  await b.coherence.renew()
  await a.coherence.renew()
  const started = performance.now()
  const write = a.coherence.invalidate('sales')
  await new Promise((r) => setTimeout(r, 50))
  t.same(b.cache.contexts, [], 'b has not heard yet')
  await b.coherence.renew()
  t.same(b.cache.contexts, ['sales'], 'caught up at its renewal')
  await write
  t.ok(
    performance.now() - started < 2500,
    "the writer was released by b's acknowledgement, not its lease end",
  )
  await b.coherence.renew()
  t.same(b.cache.contexts, ['sales'], 'an event is applied once')
  t.same(a.cache.contexts, ['sales'], 'the writer invalidated its own cache')
})

t.test('a gap longer than the event list drops the whole cache', async (t) => {
  const redis = await startRedis(t)
  const admin = await oldEpoch(t, redis)
  const a = await instance(t, redis, 'a', 3000)
  const b = await instance(t, redis, 'b', 3000)
  await b.coherence.renew()
  await a.coherence.renew()
  await admin.zrem(KEYS.members, 'b') // so the writer does not wait for b
  const allBefore = b.cache.all
  for (const ctx of ['x', 'y', 'z']) await a.coherence.invalidate(ctx)
  await admin.ltrim(KEYS.events, -1, -1) // the list lost the older two
  await b.coherence.renew()
  t.equal(b.cache.all, allBefore + 1, 'everything dropped')
  t.same(b.cache.contexts, [], 'rather than the one event still listed')
})

t.test('after Redis lost its data, a writer waits out the leases the old data listed', async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis, 'a', 800)
  const b = await instance(t, redis, 'b', 800)
  await a.coherence.renew()
  await b.coherence.renew()
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.flushall()
  // a renews with the new, empty data; b (still holding its lease) has not yet.
  await a.coherence.renew()
  const allBefore = a.cache.all
  t.equal(allBefore, 2, 'a dropped its cache on the new epoch')
  const started = performance.now()
  await a.coherence.invalidate('sales')
  const waited = performance.now() - started
  t.ok(waited >= 600, `the write waited for unlisted leases to end (${Math.round(waited)} ms)`)
  // b finds the new epoch at its renewal and drops everything.
  await b.coherence.renew()
  t.ok(b.cache.all >= 2, 'b dropped everything')
})

t.test(
  'an epoch another Redis server made (a replica promoted with the old data) is a new epoch: writers wait a lease, caches drop',
  async (t) => {
    const redis = await startRedis(t)
    const admin = await oldEpoch(t, redis)
    const a = await instance(t, redis, 'a', 800)
    const b = await instance(t, redis, 'b', 800)
    await a.coherence.renew()
    await b.coherence.renew()
    const before = { epoch: b.coherence.epoch, all: b.cache.all }
    // What a promoted replica holds: the keys replicated from the old master, its epoch among them,
    // but maybe not its last writes (asynchronous replication): this server may not list every lease.
    await admin.set(KEYS.epoch, 'settled:0123456789abcdef0123456789abcdef01234567:0', 'PX', 3_600_000)
    const started = performance.now()
    await a.coherence.invalidate('sales')
    const waited = performance.now() - started
    t.ok(waited >= 600, `the write waited out the leases this server may not list (${Math.round(waited)} ms)`)
    await b.coherence.renew()
    t.not(b.coherence.epoch, before.epoch, 'the renewal made a new epoch, of this server')
    const runId = /run_id:(\w+)/.exec(await admin.info('server'))?.[1] ?? 'none'
    t.ok(b.coherence.epoch?.includes(`:${runId}:`), 'made by the server that answers')
    t.ok(b.cache.all > before.all, 'and b dropped everything it cached')
  },
)

t.test(
  'a write Redis could not take waits out every lease, then is announced when Redis is back',
  async (t) => {
    const redis = await startRedis(t)
    const a = await instance(t, redis, 'a', 600)
    const b = await instance(t, redis, 'b', 600)
    await a.coherence.renew()
    await b.coherence.renew()
    await redis.stop()
    await a.coherence.renew() // fails: marks the store down
    t.notOk(a.health.up)
    const started = performance.now()
    await a.coherence.invalidate('sales')
    const waited = performance.now() - started
    t.ok(
      waited >= 300 && waited < 3000,
      `held until the leases Redis granted ran out (${Math.round(waited)} ms)`,
    )
    t.same(b.cache.contexts, [], 'b could not be told')
    await redis.start()
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && !a.health.up) {
      await a.coherence.renew().catch(() => {})
      await new Promise((r) => setTimeout(r, 50))
    }
    t.ok(a.health.up, 'a reaches Redis again')
    await b.coherence.renew().catch(() => {})
    // The new Redis is empty: b drops everything (new epoch), whatever a announced.
    t.ok(b.cache.all >= 2, 'b dropped what it cached before the outage')
  },
)

t.test('for one lease after Redis starts empty, a write waits (old leases may be unlisted)', async (t) => {
  const redis = await startRedis(t)
  const a = await instance(t, redis, 'a', 700)
  await a.coherence.renew()
  const started = performance.now()
  await a.coherence.invalidate('sales')
  t.ok(performance.now() - started >= 500, 'waited out the rest of the first lease')
  const again = performance.now()
  await a.coherence.invalidate('sales')
  t.ok(performance.now() - again < 500, 'later writes do not wait')
})

t.test('with both subscribed, a write is acknowledged over pub/sub at once', async (t) => {
  const redis = await startRedis(t)
  await oldEpoch(t, redis)
  const a = await instance(t, redis, 'a', 3000)
  const b = await instance(t, redis, 'b', 3000)
  a.coherence.start()
  b.coherence.start()
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && !(a.health.up && b.health.up)) await new Promise((r) => setTimeout(r, 10))
  // Both subscribed: the message reaches b at once and b acknowledges it.
  await new Promise((r) => setTimeout(r, 100))
  const started = performance.now()
  await a.coherence.invalidate('ops')
  t.ok(performance.now() - started < 1000, 'acknowledged over pub/sub, well before the lease end')
  t.same(b.cache.contexts, ['ops'])
})

/** Starts each, and resolves when all hold a lease (and have the sockets they asked for). */
async function startAll(...all: Awaited<ReturnType<typeof instance>>[]): Promise<void> {
  for (const x of all) x.coherence.start()
  const deadline = Date.now() + 5000
  while (Date.now() < deadline && !all.every((x) => x.health.up)) await new Promise((r) => setTimeout(r, 10))
  // Subscribed, and each direct socket bound on the address it reaches Redis from.
  await new Promise((r) => setTimeout(r, 100))
}

t.test('a direct acknowledgement releases the writer when the one through Redis is lost', async (t) => {
  const redis = await startRedis(t)
  await oldEpoch(t, redis)
  const a = await instance(t, redis, 'a', 3000, undefined, true)
  const b = await instance(t, redis, 'b', 3000, undefined, true)
  await startAll(a, b)
  t.same(a.coherence.directAckAddress?.host, '127.0.0.1', 'bound where it reaches Redis from')
  // b's acknowledgements through Redis go nowhere: only the datagram can release the writer.
  b.cmd.publish = (() => Promise.resolve(0)) as typeof b.cmd.publish
  const settled: unknown[] = []
  const onSettled = (message: unknown) => settled.push(message)
  subscribe(SETTLED_CHANNEL, onSettled)
  t.teardown(() => unsubscribe(SETTLED_CHANNEL, onSettled))
  const started = performance.now()
  await a.coherence.invalidate('ops')
  t.ok(performance.now() - started < 1500, "released by b's datagram, well before b's lease end (3 s)")
  t.same(b.cache.contexts, ['ops'], 'b dropped the context')
  t.match(settled, [{ seq: Number, leases: 2 }], 'the settlement is published for tracing, once')
})

t.test(
  'with direct acknowledgements on one side only, the one through Redis releases the writer',
  async (t) => {
    const redis = await startRedis(t)
    await oldEpoch(t, redis)
    const a = await instance(t, redis, 'a', 3000, undefined, true)
    const b = await instance(t, redis, 'b', 3000, undefined, false)
    await startAll(a, b)
    t.equal(b.coherence.directAckAddress, null, 'no socket when directAcks is off')
    let started = performance.now()
    await a.coherence.invalidate('ops')
    t.ok(performance.now() - started < 1500, 'a writer asking for datagrams is released through Redis')
    started = performance.now()
    await b.coherence.invalidate('sales')
    t.ok(
      performance.now() - started < 1500,
      'a writer not asking is acknowledged through Redis by one that could',
    )
    t.same(b.cache.contexts, ['ops', 'sales'], "b dropped a's context, then its own")
    t.same(a.cache.contexts, ['ops', 'sales'], "a dropped its own, then b's")
  },
)

t.test('a writer that sends no receipt is acknowledged through Redis as well', async (t) => {
  const redis = await startRedis(t)
  await oldEpoch(t, redis)
  const b = await instance(t, redis, 'b', 3000, undefined, true)
  await startAll(b)
  // Writer z asks for datagrams at an address that takes them and never answers.
  const silent = createSocket('udp4')
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r))
  t.teardown(() => silent.close())
  const datagrams: string[] = []
  silent.on('message', (m) => datagrams.push(m.toString('latin1')))
  const listener = new Redis(redis.url)
  t.teardown(() => listener.disconnect())
  const acks: string[] = []
  listener.on('message', (_channel: string, message: string) => acks.push(message))
  await listener.subscribe('t:acks:z')
  const publisher = new Redis(redis.url)
  t.teardown(() => publisher.disconnect())
  await publisher.publish('t:invalidations', `7\nz ${'S'.repeat(22)} 127.0.0.1 ${silent.address().port}\nops`)
  const deadline = Date.now() + 3000
  while (Date.now() < deadline && acks.length === 0) await new Promise((r) => setTimeout(r, 10))
  t.same(b.cache.contexts, ['ops'], 'b dropped the context the event names')
  t.equal(datagrams.length, 1, 'b acknowledged by datagram first')
  t.same(acks, ['7\nb'], 'and, no receipt coming, through Redis to the writer id alone')
})
