/**
 * SPEC 8 with a real redis-server: three gateway instances over one upstream
 * behave as one gateway — read-your-writes across instances, one budget, one
 * brute-force limit, one upstream fill for a cold burst — and Redis holds no
 * identity in clear, every key with a TTL.
 */
import { Redis } from 'ioredis'
import t from 'tap'
import { listingCacheKey } from '../../src/cache/listing-cache.js'
import { sha256Hex } from '../../src/credentials.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'
import { findRedisServer, REDIS_MISSING, startRedis } from '../helpers/redis-server.js'
import {
  ALICE,
  call,
  sharedOverEmptyUpstream,
  startInstances,
  startTestEmulator,
  untilShared,
} from './cluster.js'

if (!findRedisServer()) t.fail(REDIS_MISSING)

t.test('a write through one instance is seen at once through every other (no stale read)', async (t) => {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 20)
  const gws = await startInstances(t, { n: 3, redis, upstreamUrl: emu.url })
  await untilShared(gws)
  let stale = 0
  let hitsBeforeWrites = 0
  const rounds = 24
  for (let i = 0; i < rounds; i++) {
    const writer = gws[i % 3]!
    const readers = gws.filter((g) => g !== writer)
    // Every instance has the listing cached (and serves it) before the write.
    for (const g of gws) {
      await call(g.url, 'GET', '/api/ipdrcustomers')
      const again = await call(g.url, 'GET', '/api/ipdrcustomers')
      if (again.headers['x-cache'] === 'HIT') hitsBeforeWrites++
    }
    const id = `RYW${i}`
    const created = await call(writer.url, 'POST', '/api/ipdrcustomers', ALICE, {
      UserID: id,
      Name: `Round ${i}`,
    })
    t.equal(created.status, 200, `create ${id}`)
    // Read through the others at once: the single read, the full listing and a filter.
    const reads = await Promise.all(
      readers.flatMap((g) => [
        call(g.url, 'GET', `/api/ipdrcustomers/${id}`),
        call(g.url, 'GET', '/api/ipdrcustomers'),
        call(g.url, 'GET', `/api/ipdrcustomers?UserID=${id}`),
      ]),
    )
    for (const r of reads) {
      if (r.status !== 200 || !r.text.includes(`"${id}"`)) stale++
    }
    // And an update, read back the same way.
    const patched = await call(writer.url, 'PATCH', `/api/ipdrcustomers/${id}`, ALICE, {
      Address: `Street ${i}`,
    })
    t.equal(patched.status, 200)
    const after = await Promise.all(readers.map((g) => call(g.url, 'GET', `/api/ipdrcustomers/${id}`)))
    for (const r of after) if (!r.text.includes(`Street ${i}`)) stale++
  }
  t.equal(stale, 0, 'zero stale reads')
  t.equal(hitsBeforeWrites, rounds * 3, 'the instances did serve from their caches between writes')
})

t.test('a budget of L per window admits exactly L across three instances', async (t) => {
  const redis = await startRedis(t)
  const gws = await sharedOverEmptyUpstream(t, redis, 3, { rateLimit: { max: 7, timeWindow: '1 minute' } })
  const replies = await Promise.all(
    Array.from({ length: 30 }, (_, i) =>
      call(gws[i % 3]!.url, 'GET', i % 2 === 0 ? '/api/ipdrcustomers' : '/api/ipdrcustomers_mapping'),
    ),
  )
  const ok = replies.filter((r) => r.status === 200).length
  const limited = replies.filter((r) => r.status === 429)
  t.equal(ok, 7, 'exactly the budget got through')
  t.equal(limited.length, 23, 'the rest got 429')
  t.ok(
    limited.every((r) => Number(r.headers['retry-after']) >= 1),
    'each 429 says when to retry',
  )
})

t.test('the failed-authentication limit holds across instances', async (t) => {
  const redis = await startRedis(t)
  const gws = await sharedOverEmptyUpstream(t, redis, 3, {
    auth: { failureLimit: { max: 4, timeWindow: '1 minute' } },
  })
  const statuses: number[] = []
  for (let i = 0; i < 12; i++) {
    // Malformed credentials: 401 from the gateway itself.
    const r = await call(gws[i % 3]!.url, 'GET', '/api/ipdrcustomers', { authorization: 'Bearer' })
    statuses.push(r.status)
  }
  t.same(statuses.slice(0, 4), [401, 401, 401, 401], 'four failures are answered')
  t.same(statuses.slice(4), Array(8).fill(429), 'then the address is blocked on every instance')
})

t.test(
  'a blocked address: proven credentials still read (SPEC 13), new ones are refused without drawing on the budget',
  async (t) => {
    const redis = await startRedis(t)
    const gws = await sharedOverEmptyUpstream(t, redis, 3, {
      auth: { failureLimit: { max: 2, timeWindow: '1 minute' } },
    })
    // Cached everywhere, and the credentials proven on every instance: the next reads take the hit path.
    for (const g of gws) await call(g.url, 'GET', '/api/ipdrcustomers')
    for (const g of gws) t.equal((await call(g.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT')
    const admin = new Redis(redis.url)
    t.teardown(() => admin.disconnect())
    const budgetKey = `ipdr-gateway:counter:${sha256Hex('rl:default:alice').slice(0, 40)}`
    const spent = Number(await admin.get(budgetKey))
    t.equal(spent, 6, 'six reads counted on the shared budget')
    for (let i = 0; i < 2; i++)
      await call(gws[i]!.url, 'GET', '/api/ipdrcustomers', { authorization: 'Bearer' })
    for (const g of gws) {
      const r = await call(g.url, 'GET', '/api/ipdrcustomers')
      t.equal(r.status, 200, 'credentials Trisul accepted are not locked out by a guesser on their address')
    }
    t.equal(Number(await admin.get(budgetKey)), spent + 3, 'and drew on their budget as any read')
    for (const g of gws) {
      const r = await call(g.url, 'GET', '/api/ipdrcustomers', {
        authorization: 'Bearer another-token',
        'x-trisul-username': 'alice',
      })
      t.equal(r.status, 429, 'unproven credentials from the blocked address: 429')
      t.equal(JSON.parse(r.text).code, 'IPDR_GW_AUTH_RATE_LIMITED')
      t.ok(Number(r.headers['retry-after']) >= 1, 'with Retry-After')
    }
    t.equal(Number(await admin.get(budgetKey)), spent + 3, 'the refused reads were not counted')
  },
)

t.test('a cold burst on three instances makes one upstream listing request', async (t) => {
  const redis = await startRedis(t)
  const body = Array.from({ length: 50 }, (_, i) => ({ id: i + 1, Name: `N${i}`, UserID: `U${i}` }))
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body, delayMs: 300 }))
  t.teardown(() => upstream.close())
  const gws = await startInstances(t, { n: 3, redis, upstreamUrl: upstream.url })
  await untilShared(gws)
  const replies = await Promise.all(
    Array.from({ length: 30 }, (_, i) => call(gws[i % 3]!.url, 'GET', '/api/ipdrcustomers')),
  )
  t.ok(
    replies.every((r) => r.status === 200),
    'all answered',
  )
  t.equal(new Set(replies.map((r) => r.text)).size, 1, 'the same listing everywhere')
  t.equal(upstream.requests.filter((r) => r.method === 'GET').length, 1, 'one upstream request in all')
  // Later reads are hits everywhere, with no more upstream requests.
  for (const g of gws) t.equal((await call(g.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT')
  t.equal(upstream.requests.length, 1)
  // SPEC 15: a miss is an upstream listing request this instance made; a listing shared through
  // the store is coalesced wherever it was adopted.
  let misses = 0
  let coalesced = 0
  for (const g of gws) {
    const text = (await call(g.url, 'GET', '/metrics')).text
    misses += Number(/cache_lookups_total\{resource="customers",result="miss"\} (\d+)/.exec(text)?.[1] ?? 0)
    coalesced += Number(
      /cache_lookups_total\{resource="customers",result="coalesced"\} (\d+)/.exec(text)?.[1] ?? 0,
    )
  }
  t.equal(misses, 1, 'one miss in all, for the one upstream request')
  t.equal(coalesced, 29, 'every other cold read coalesced')
})

t.test('a filler that died leaves no one waiting past the upstream timeout', async (t) => {
  const redis = await startRedis(t)
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const gws = await startInstances(t, {
    n: 2,
    redis,
    upstreamUrl: upstream.url,
    spec: { gateway: { upstream: { timeoutMs: 800 } } },
  })
  await untilShared(gws)
  // A lock held by an instance that is gone (as a crashed filler leaves it).
  const key = listingCacheKey({
    resource: 'customers',
    username: 'alice',
    tokenHash: sha256Hex('tokA'),
    context: 'default',
  })
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  await admin.set(`ipdr-gateway:fill:${sha256Hex(key).slice(0, 40)}:0:lock`, 'dead-instance', 'PX', 60_000)
  const replies = await Promise.all(gws.map((g) => call(g.url, 'GET', '/api/ipdrcustomers')))
  t.same(
    replies.map((r) => r.status),
    [200, 200],
  )
  t.ok(
    replies.every((r) => r.ms < 5000),
    `answered within a loose bound of the 800 ms upstream timeout (${replies.map((r) => Math.round(r.ms))} ms)`,
  )
  t.ok(upstream.requests.length >= 1 && upstream.requests.length <= 2, 'each waiter fetched at most once')
})

t.test('Redis holds hashes, never a username, token or key in clear, and every key has a TTL', async (t) => {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 20)
  const gws = await startInstances(t, { n: 2, redis, upstreamUrl: emu.url })
  await untilShared(gws)
  await call(gws[0]!.url, 'GET', '/api/ipdrcustomers')
  await call(gws[1]!.url, 'GET', '/api/ipdrcustomers_mapping')
  await call(gws[0]!.url, 'POST', '/api/ipdrcustomers', ALICE, { UserID: 'K1', Name: 'Key Check' })
  await call(gws[1]!.url, 'GET', '/api/ipdrcustomers', {
    authorization: 'Bearer wrong',
    'x-trisul-username': 'mallory',
  })
  const admin = new Redis(redis.url)
  t.teardown(() => admin.disconnect())
  const keys = await admin.keys('*')
  t.ok(keys.length > 0, 'the store is in use')
  for (const k of keys) {
    t.ok(k.startsWith('ipdr-gateway:'), `${k} is under the prefix`)
    for (const secret of ['alice', 'mallory', 'tokA', 'wrong', sha256Hex('tokA'), '127.0.0.1']) {
      t.notOk(k.includes(secret), `${k} does not hold ${secret.slice(0, 8)}`)
    }
    t.ok((await admin.pttl(k)) > 0, `${k} has a TTL`)
  }
  // Values too: counters hold numbers, the member set instance ids, the events contexts.
  const dump = JSON.stringify(
    await Promise.all(
      keys.map((k) =>
        admin.type(k).then(async (type) => {
          if (type === 'string') return admin.getBuffer(k).then((b) => b?.toString('latin1'))
          if (type === 'list') return admin.lrange(k, 0, -1)
          if (type === 'zset') return admin.zrange(k, '0', '-1')
          if (type === 'hash') return admin.hgetall(k)
          return type
        }),
      ),
    ),
  )
  for (const secret of ['tokA', 'wrong', sha256Hex('tokA')])
    t.notOk(dump.includes(secret), `no ${secret.slice(0, 8)} in values`)
})
