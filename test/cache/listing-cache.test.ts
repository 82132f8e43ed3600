import t from 'tap'
import {
  hashToken,
  ListingCache,
  type ListingCacheOptions,
  type LookupStatus,
  MAX_PENDING_CHANGES,
} from '../../src/cache/listing-cache.js'
import type { ListingEntry } from '../../src/cache/listing-entry.js'
import type { ResourceName } from '../../src/resources.js'
import { deferred, fakeClock, key, taggedEntry, tagOf, turn } from './cache-helpers.js'

const TTL = 1000
const STALE = 5000

function setup(opts: Partial<ListingCacheOptions> = {}) {
  const clock = fakeClock()
  const lookups: [ResourceName, LookupStatus][] = []
  const invalidations: [ResourceName, number][] = []
  const cache = new ListingCache({
    maxBytes: 10_000_000,
    ttlMs: TTL,
    staleIfErrorMs: STALE,
    now: clock.now,
    onLookup: (resource, result) => lookups.push([resource, result]),
    onInvalidate: (resource, count) => invalidations.push([resource, count]),
    ...opts,
  })
  return { cache, clock, lookups, invalidations }
}

t.test('hashToken is sha256 hex and never the token', async (t) => {
  t.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.not(hashToken('abc'), hashToken('abd'))
})

t.test('fresh entries are hits until the TTL; then a healthy upstream is asked again', async (t) => {
  const { cache, clock, lookups } = setup()
  const k = key()
  let fills = 0
  const fill = async () => taggedEntry(k, ++fills)
  const first = await cache.get(k, fill)
  t.equal(first.status, 'miss')
  clock.advance(TTL - 1)
  const second = await cache.get(k, fill)
  t.equal(second.status, 'hit')
  t.equal(second.entry, first.entry)
  clock.advance(1)
  const third = await cache.get(k, fill)
  t.equal(third.status, 'miss', 'past the TTL: refetched')
  t.equal(tagOf(third.entry).tag, 2)
  t.equal(fills, 2)
  t.same(lookups, [
    ['customers', 'miss'],
    ['customers', 'hit'],
    ['customers', 'miss'],
  ])
  const stats = cache.stats()
  t.equal(stats.customers.entries, 1)
  t.equal(stats.customers.bytes, third.entry.bytes)
  t.same(stats.customers.lookups, { hit: 1, miss: 2, stale: 0, coalesced: 0 })
  t.equal(stats.mappings.entries, 0)
})

t.test('ttl 0: every get refetches', async (t) => {
  const { cache } = setup({ ttlMs: 0 })
  const k = key()
  let fills = 0
  const fill = async () => taggedEntry(k, ++fills)
  t.equal((await cache.get(k, fill)).status, 'miss')
  t.equal((await cache.get(k, fill)).status, 'miss')
  t.equal(fills, 2)
})

t.test('500 concurrent gets share one fill; waiters are released when it resolves', async (t) => {
  const { cache, lookups } = setup()
  const k = key()
  const d = deferred<ListingEntry>()
  let fills = 0
  const fill = () => {
    fills++
    return d.promise
  }
  const settled: boolean[] = []
  const gets = Array.from({ length: 500 }, (_, i) =>
    cache.get(k, fill).then((r) => {
      settled[i] = true
      return r
    }),
  )
  await turn()
  t.equal(fills, 1, 'exactly one fill')
  t.equal(settled.filter(Boolean).length, 0, 'nobody answered before the fill resolved')
  const entry = taggedEntry(k)
  d.resolve(entry)
  await turn()
  t.equal(settled.filter(Boolean).length, 500, 'all released in the same turn, no polling')
  const results = await Promise.all(gets)
  t.equal(results[0]?.status, 'miss')
  t.ok(
    results.slice(1).every((r) => r.status === 'coalesced' && r.entry === entry),
    'waiters are coalesced',
  )
  t.equal(lookups.filter(([, s]) => s === 'coalesced').length, 499)
  t.equal((await cache.get(k, fill)).status, 'hit')
  t.equal(fills, 1)
})

t.test('a failed fill is never cached and its error reaches every waiter', async (t) => {
  const { cache, lookups } = setup()
  const k = key()
  const d = deferred<ListingEntry>()
  let fills = 0
  const gets = Array.from({ length: 5 }, () =>
    cache.get(k, () => {
      fills++
      return d.promise
    }),
  )
  const boom = new Error('upstream down')
  d.reject(boom)
  const results = await Promise.allSettled(gets)
  t.ok(results.every((r) => r.status === 'rejected' && r.reason === boom))
  t.equal(fills, 1)
  t.equal(cache.stats().customers.entries, 0)
  t.same(
    lookups.map(([, s]) => s),
    ['miss', 'coalesced', 'coalesced', 'coalesced', 'coalesced'],
    'failed lookups are still counted',
  )
  const fill = async () => taggedEntry(k, 'later')
  t.equal((await cache.get(k, fill)).status, 'miss', 'the next get fills again')
})

t.test('a fill that throws synchronously is a failed fill', async (t) => {
  const { cache } = setup()
  await t.rejects(
    cache.get(key(), () => {
      throw new Error('sync')
    }),
    /sync/,
  )
})

t.test('stale-if-error: served within TTL + window, for every waiter; not after', async (t) => {
  const { cache, clock } = setup()
  const k = key()
  const original = (await cache.get(k, async () => taggedEntry(k, 'original'))).entry
  const failing = () => Promise.reject(new Error('down'))

  clock.set(TTL)
  const [a, b] = await Promise.all([cache.get(k, failing), cache.get(k, failing)])
  t.equal(a.status, 'stale')
  t.equal(b.status, 'stale', 'waiters get stale too')
  t.equal(a.entry, original)
  t.equal(b.entry, original)

  clock.set(TTL + STALE - 1)
  t.equal((await cache.get(k, failing)).status, 'stale', 'last ms of the window')

  clock.set(TTL + STALE)
  await t.rejects(cache.get(k, failing), /down/, 'window over: the error')
  t.equal(cache.stats().customers.entries, 0, 'and the dead entry is gone')
  t.same(cache.stats().customers.lookups, { hit: 0, miss: 2, stale: 3, coalesced: 0 })
})

t.test('stale-if-error: an entry that expires while the fill runs is not served', async (t) => {
  const { cache, clock } = setup()
  const k = key()
  await cache.get(k, async () => taggedEntry(k))
  clock.set(TTL + STALE - 10)
  const d = deferred<ListingEntry>()
  const pending = cache.get(k, () => d.promise)
  clock.set(TTL + STALE)
  d.reject(new Error('down'))
  await t.rejects(pending, /down/)
})

t.test('after a stale answer, a recovered upstream gives a fresh miss', async (t) => {
  const { cache, clock } = setup()
  const k = key()
  await cache.get(k, async () => taggedEntry(k, 1))
  clock.set(2 * TTL)
  t.equal((await cache.get(k, () => Promise.reject(new Error('down')))).status, 'stale')
  const back = await cache.get(k, async () => taggedEntry(k, 2))
  t.equal(back.status, 'miss')
  t.equal(tagOf(back.entry).tag, 2)
  t.equal((await cache.get(k, async () => taggedEntry(k, 3))).status, 'hit')
})

t.test('keys: every part separates entries, whatever characters they hold', async (t) => {
  const { cache } = setup()
  const keys = [
    key(),
    key({ resource: 'mappings' }),
    key({ username: 'ops' }),
    key({ tokenHash: 'h2' }),
    key({ context: 'other' }),
    key({ username: 'a","b', tokenHash: 'c' }),
    key({ username: 'a', tokenHash: '","b","c' }),
    key({ username: 'a\nb', tokenHash: 'c' }),
    key({ username: 'a', tokenHash: 'b\nc' }),
    key({ username: '"a\\nb"', tokenHash: 'c' }),
    key({ username: 'a\\', tokenHash: '\nc' }),
    key({ username: 'a', tokenHash: '\\\nc' }),
    key({ context: '' }),
  ]
  for (const k of keys) t.equal((await cache.get(k, async () => taggedEntry(k))).status, 'miss')
  for (const k of keys) {
    const r = await cache.get(k, async () => taggedEntry(k, 'wrong'))
    t.equal(r.status, 'hit')
    t.equal(tagOf(r.entry).tag, 0)
  }
  const stats = cache.stats()
  t.equal(stats.customers.entries + stats.mappings.entries, keys.length)
  t.equal(stats.mappings.entries, 1)
})

t.test('peekFresh: the fresh entry or nothing, counting nothing; countHit counts a hit', async (t) => {
  const { cache, clock, lookups } = setup()
  t.equal(cache.peekFresh(key()), undefined, 'nothing cached')
  const filled = await cache.get(key(), async () => taggedEntry(key()))
  t.equal(cache.peekFresh(key()), filled.entry)
  t.equal(cache.peekFresh(key({ tokenHash: 'other' })), undefined, 'other credentials')
  t.same(lookups, [['customers', 'miss']], 'peeks are not lookups')
  cache.countHit('customers')
  t.same(lookups.at(-1), ['customers', 'hit'])
  t.equal(cache.stats().customers.lookups.hit, 1)
  clock.advance(TTL)
  t.equal(cache.peekFresh(key()), undefined, 'past the TTL')
  cache.invalidateContext('default')
  t.equal(cache.peekFresh(key()), undefined)
})

t.test('invalidateContext removes both resources of that context only', async (t) => {
  const { cache, invalidations } = setup()
  const keys = [key(), key({ resource: 'mappings' }), key({ username: 'ops' }), key({ context: 'other' })]
  for (const k of keys) await cache.get(k, async () => taggedEntry(k))
  t.equal(cache.invalidateContext('default'), 3)
  t.same(invalidations, [
    ['customers', 2],
    ['mappings', 1],
  ])
  t.equal(
    (await cache.get(keys[3] ?? key(), async () => taggedEntry(key()))).status,
    'hit',
    'other context kept',
  )
  t.equal((await cache.get(key(), async () => taggedEntry(key()))).status, 'miss')
  t.equal(cache.invalidateContext('nothing-here'), 0)
  t.same(invalidations.slice(2), [
    ['customers', 0],
    ['mappings', 0],
  ])
  const stats = cache.stats()
  t.equal(stats.customers.invalidations, 2)
  t.equal(stats.mappings.invalidations, 1)
})

t.test('read-your-writes: an invalidation defeats a fill already in flight', async (t) => {
  const { cache } = setup()
  const k = key()
  const before = deferred<ListingEntry>()
  const after = deferred<ListingEntry>()
  let fills = 0
  const early = cache.get(k, () => {
    fills++
    return before.promise
  })
  const earlyWaiter = cache.get(k, () => {
    fills++
    return before.promise
  })
  // a write through the gateway succeeds while the fill is in flight
  cache.invalidateContext(k.context)
  const late = cache.get(k, () => {
    fills++
    return after.promise
  })
  const lateWaiter = cache.get(k, () => {
    fills++
    return after.promise
  })
  t.equal(fills, 2, 'a caller after the write does not join the pre-write fill')
  const preWrite = taggedEntry(k, 'pre-write')
  const postWrite = taggedEntry(k, 'post-write')
  before.resolve(preWrite)
  t.equal((await early).entry, preWrite, 'callers from before the write may see pre-write data')
  t.equal((await earlyWaiter).status, 'coalesced')
  t.equal(cache.stats().customers.entries, 0, 'the pre-write fill is not stored')
  after.resolve(postWrite)
  t.equal((await late).entry, postWrite)
  t.equal((await late).status, 'miss')
  t.equal((await lateWaiter).entry, postWrite)
  const next = await cache.get(k, async () => taggedEntry(k, 'unused'))
  t.equal(next.status, 'hit')
  t.equal(next.entry, postWrite)
})

t.test('read-your-writes: the pre-write fill resolving last does not overwrite', async (t) => {
  const { cache } = setup()
  const k = key()
  const before = deferred<ListingEntry>()
  const early = cache.get(k, () => before.promise)
  cache.invalidateContext('default')
  const late = await cache.get(k, async () => taggedEntry(k, 'post-write'))
  before.resolve(taggedEntry(k, 'pre-write'))
  await early
  const next = await cache.get(k, async () => taggedEntry(k, 'unused'))
  t.equal(next.status, 'hit')
  t.equal(next.entry, late.entry)
})

t.test('read-your-writes: an invalidated entry is not served stale', async (t) => {
  const { cache, clock } = setup()
  const k = key()
  await cache.get(k, async () => taggedEntry(k))
  clock.set(TTL + 1)
  cache.invalidateContext('default')
  await t.rejects(
    cache.get(k, () => Promise.reject(new Error('down'))),
    /down/,
  )
})

t.test('maxBytes: least recently used entries are evicted', async (t) => {
  const probe = taggedEntry(key())
  const size = probe.bytes
  const { cache } = setup({ maxBytes: size * 2 + size / 2 })
  const a = key({ username: 'a' })
  const b = key({ username: 'b' })
  const c = key({ username: 'c' })
  await cache.get(a, async () => taggedEntry(a))
  await cache.get(b, async () => taggedEntry(b))
  t.equal((await cache.get(a, async () => taggedEntry(a))).status, 'hit', 'a is now the most recent')
  await cache.get(c, async () => taggedEntry(c))
  t.equal(cache.stats().customers.entries, 2)
  t.equal((await cache.get(a, async () => taggedEntry(a))).status, 'hit')
  t.equal((await cache.get(b, async () => taggedEntry(b))).status, 'miss', 'b was evicted')
})

t.test('an entry larger than maxBytes is served but not stored, and replaces nothing', async (t) => {
  const small = taggedEntry(key())
  const tooLarge: [string, number, number][] = []
  const { cache, clock } = setup({
    maxBytes: small.bytes + 100,
    onTooLarge: (resource, bytes, maxBytes) => tooLarge.push([resource, bytes, maxBytes]),
  })
  const k = key()
  await cache.get(k, async () => small)
  clock.set(TTL)
  const big = taggedEntry(k, 'big', 5000)
  const r = await cache.get(k, async () => big)
  t.equal(r.status, 'miss')
  t.equal(r.entry, big)
  t.equal(cache.stats().customers.entries, 0, 'the older, smaller entry is dropped too')
  t.equal((await cache.get(k, async () => big)).status, 'miss')
  t.same(
    tooLarge,
    [
      ['customers', big.bytes, small.bytes + 100],
      ['customers', big.bytes, small.bytes + 100],
    ],
    'each uncached fill is reported, with its size and the budget',
  )
})

t.test('an entry that grows past maxBytes with a variant is reported too', async (t) => {
  const k = key()
  const entry = taggedEntry(k, 'x', 20_000)
  const tooLarge: number[] = []
  const { cache } = setup({ maxBytes: entry.bytes + 10, onTooLarge: (_r, bytes) => tooLarge.push(bytes) })
  await cache.get(k, async () => entry)
  t.same(tooLarge, [], 'it fits at first')
  await entry.encoded('gzip')
  t.same(tooLarge, [entry.bytes], 'then outgrows the budget')
  t.equal(cache.stats().customers.entries, 0)
})

t.test('compressed and redacted variants are accounted when made', async (t) => {
  const { cache } = setup()
  const k = key()
  const entry = taggedEntry(k, 'x', 20_000)
  await cache.get(k, async () => entry)
  const before = cache.stats().customers.bytes
  t.equal(before, entry.bytes)
  const gz = await entry.encoded('gzip')
  t.equal(cache.stats().customers.bytes, before + gz.length)
  const view = entry.redacted(['pad'])
  t.equal(cache.stats().customers.bytes, before + gz.length + view.raw.length)
  t.equal((await cache.get(k, async () => taggedEntry(k))).entry, entry, 'still a hit after resizing')
})

t.test(
  'growth past maxBytes drops the entry; growth evicts others; evicted entries stay quiet',
  async (t) => {
    const probe = taggedEntry(key(), 'x', 20_000)
    const { cache } = setup({ maxBytes: probe.bytes + 2000 })
    const k = key()
    const entry = taggedEntry(k, 'x', 20_000)
    await cache.get(k, async () => entry)
    entry.redacted(['tag']) // a second ~20 kB body
    t.equal(cache.stats().customers.entries, 0, 'grew past the budget: dropped')
    await entry.encoded('gzip') // no longer cached: nothing to account, nothing thrown
    t.equal(cache.stats().customers.bytes, 0)

    const roomy = setup({ maxBytes: 3 * probe.bytes })
    const a = key({ username: 'a' })
    const b = key({ username: 'b' })
    const ea = taggedEntry(a, 'x', 20_000)
    await roomy.cache.get(b, async () => taggedEntry(b, 'x', 20_000))
    await roomy.cache.get(a, async () => ea)
    ea.redacted(['tag'])
    ea.redacted(['UserID'])
    t.equal(roomy.cache.stats().customers.entries, 1, 'a grew and pushed b out')
    t.equal((await roomy.cache.get(a, async () => taggedEntry(a))).entry, ea)
  },
)

t.test('a replaced entry no longer affects the accounting', async (t) => {
  const { cache, clock } = setup()
  const k = key()
  const old = taggedEntry(k, 'old', 10_000)
  await cache.get(k, async () => old)
  clock.set(TTL)
  const fresh = taggedEntry(k, 'new')
  await cache.get(k, async () => fresh)
  await old.encoded('gzip')
  t.equal(cache.stats().customers.bytes, fresh.bytes)
})

t.test('setLimits: new TTLs apply to existing entries; smaller budgets evict', async (t) => {
  const { cache, clock } = setup()
  const a = key({ username: 'a' })
  const b = key({ username: 'b' })
  const ea = taggedEntry(a)
  await cache.get(a, async () => ea)
  await cache.get(b, async () => taggedEntry(b))
  await cache.get(a, async () => ea)
  clock.set(500)
  cache.setLimits({ ttlMs: 400 })
  t.same(cache.limits, { maxBytes: 10_000_000, ttlMs: 400, staleIfErrorMs: STALE })
  t.equal((await cache.get(b, async () => taggedEntry(b))).status, 'miss', 'b is past the new TTL')
  cache.setLimits({ ttlMs: TTL })
  cache.setLimits({ maxBytes: ea.bytes + 10 })
  const stats = cache.stats()
  t.equal(stats.customers.entries, 1, 'only the most recent fits')
  t.equal((await cache.get(b, async () => taggedEntry(b))).status, 'hit', 'b was the most recent')
  cache.setLimits({ maxBytes: 10 })
  t.equal(cache.stats().customers.entries, 0, 'nothing fits')
  cache.setLimits({ staleIfErrorMs: 0, maxBytes: 10 })
  t.equal(cache.limits.staleIfErrorMs, 0)
})

t.test('invalid limits are refused and change nothing', async (t) => {
  const bad: Partial<ListingCacheOptions>[] = [
    { maxBytes: 0 },
    { maxBytes: 1.5 },
    { maxBytes: Number.NaN },
    { ttlMs: -1 },
    { ttlMs: Number.POSITIVE_INFINITY },
    { staleIfErrorMs: -1 },
    { staleIfErrorMs: '5' as unknown as number },
  ]
  for (const opts of bad) {
    t.throws(() => setup(opts), RangeError, JSON.stringify(opts))
    const { cache } = setup()
    t.throws(() => cache.setLimits(opts), RangeError)
    t.same(cache.limits, { maxBytes: 10_000_000, ttlMs: TTL, staleIfErrorMs: STALE })
  }
})

t.test('stats() prunes entries past TTL + stale-if-error; clear() empties', async (t) => {
  const { cache, clock } = setup()
  await cache.get(key(), async () => taggedEntry(key()))
  await cache.get(key({ resource: 'mappings' }), async () => taggedEntry(key({ resource: 'mappings' })))
  clock.set(TTL + STALE - 1)
  t.equal(cache.stats().customers.entries, 1)
  clock.set(TTL + STALE)
  const stats = cache.stats()
  t.equal(stats.customers.entries, 0)
  t.equal(stats.mappings.entries, 0)
  await cache.get(key(), async () => taggedEntry(key()))
  cache.clear()
  t.equal(cache.stats().customers.entries, 0)
  t.equal(cache.prune(), 0)
})

t.test('throwing metric callbacks never break a lookup', async (t) => {
  const cache = new ListingCache({
    maxBytes: 1_000_000,
    ttlMs: TTL,
    staleIfErrorMs: STALE,
    onLookup: () => {
      throw new Error('metrics bug')
    },
    onInvalidate: () => {
      throw new Error('metrics bug')
    },
  })
  const k = key()
  t.equal((await cache.get(k, async () => taggedEntry(k))).status, 'miss')
  t.equal((await cache.get(k, async () => taggedEntry(k))).status, 'hit', 'default clock: still fresh')
  t.equal(cache.invalidateContext('default'), 1)
})

t.test('a refill pre-compresses the codings the previous entry was asked for', async (t) => {
  const { cache, clock } = setup()
  const k = key()
  const first = taggedEntry(k, 1)
  await cache.get(k, async () => first)
  await first.encoded('gzip')
  clock.set(TTL)
  const second = taggedEntry(k, 2)
  const asked: string[] = []
  const encoded = second.encoded.bind(second)
  second.encoded = (encoding) => {
    asked.push(encoding)
    return encoded(encoding)
  }
  await cache.get(k, async () => second)
  t.same(asked, ['gzip'], 'gzip started without a request; br was never asked for')
  await second.encoded('gzip')
  t.equal(cache.stats().customers.bytes, second.bytes)
  clock.set(2 * TTL + STALE)
  const third = taggedEntry(k, 3)
  const thirdAsked: string[] = []
  const thirdEncoded = third.encoded.bind(third)
  third.encoded = (encoding) => {
    thirdAsked.push(encoding)
    return thirdEncoded(encoding)
  }
  await cache.get(k, async () => third)
  t.same(thirdAsked, [], 'no previous entry (expired): nothing pre-compressed')
})

t.test(
  'patchContext: writes wait in the entry and are applied all at once by the read that needs them',
  async (t) => {
    const kinds: string[] = []
    const { cache, clock, lookups } = setup({
      onInvalidate: (r, n, kind) => n > 0 && kinds.push(`${r} ${kind} ${n}`),
    })
    const k = key()
    const other = key({ context: 'other' })
    let fills = 0
    const fill = async () => taggedEntry(k, ++fills)
    await cache.get(k, fill)
    await cache.get(other, async () => taggedEntry(other, 'o'))
    clock.advance(TTL / 2)
    const batches: unknown[][] = []
    const gate = deferred<void>()
    const retag = async (entry: ListingEntry, changes: readonly unknown[]) => {
      batches.push([...changes])
      await gate.promise
      return taggedEntry(k, `${tagOf(entry).tag}+${changes.join('+')}`)
    }
    t.equal(cache.patchContext('default', 'w1', retag), 1)
    t.equal(cache.peekFresh(k), undefined, 'the entry from before the write is served to nobody')
    t.equal(cache.patchContext('default', 'w2', retag), 1)
    t.same(batches, [], 'nothing is patched until a read needs it')
    const first = cache.get(k, fill)
    const joined = cache.get(k, fill)
    cache.patchContext('default', 'w3', retag)
    const later = cache.get(k, fill)
    gate.resolve()
    t.equal(tagOf((await first).entry).tag, '1+w1+w2')
    t.equal(tagOf((await joined).entry).tag, '1+w1+w2', 'a read meanwhile joins the patch being made')
    t.equal(tagOf((await later).entry).tag, '1+w1+w2+w3', 'a read after another write waits for it too')
    t.same(batches, [['w1', 'w2'], ['w3']], 'one patch per read that needed one, each with what came since')
    t.equal((await cache.get(k, fill)).status, 'hit')
    t.ok(cache.peekFresh(k) !== undefined, 'caught up: the fast paths serve it again')
    t.equal(fills, 1, 'no refetch')
    t.equal(tagOf((await cache.get(other, fill)).entry).tag, 'o', 'another context is untouched')
    t.same(kinds, ['customers applied 2', 'customers applied 1'])
    clock.advance(TTL / 2)
    t.equal((await cache.get(k, fill)).status, 'miss', 'the TTL of the fill it came from still runs')
    t.same(lookups.slice(-2), [
      ['customers', 'hit'],
      ['customers', 'miss'],
    ])
  },
)

t.test(
  'patchContext: a refused patch drops the entry and the read fetches; a drop wins over a patch',
  async (t) => {
    const kinds: string[] = []
    const { cache } = setup({ onInvalidate: (r, n, kind) => n > 0 && kinds.push(`${r} ${kind} ${n}`) })
    const k = key()
    let fills = 0
    const fill = async () => taggedEntry(k, ++fills)
    await cache.get(k, fill)
    cache.patchContext('default', 'w', async () => {
      throw new Error('cannot')
    })
    const read = await cache.get(k, fill)
    t.equal(read.status, 'miss')
    t.equal(tagOf(read.entry).tag, 2)
    t.same(kinds, ['customers dropped 1'])
    const gate = deferred<void>()
    cache.patchContext('default', 'late', async (entry) => {
      await gate.promise
      return taggedEntry(k, `${tagOf(entry).tag}+late`)
    })
    const reading = cache.get(k, fill)
    cache.invalidateContext('default')
    gate.resolve()
    t.equal(tagOf((await reading).entry).tag, '2+late', 'the read that asked before the drop gets its patch')
    const after = await cache.get(k, fill)
    t.equal(after.status, 'miss', 'but it is not stored: the drop came after')
    t.equal(tagOf(after.entry).tag, 3)
  },
)

t.test(
  'patchContext: an entry past its TTL is dropped, and one waiting for writes is never stale-served',
  async (t) => {
    const { cache, clock } = setup()
    const k = key()
    let fills = 0
    await cache.get(k, async () => taggedEntry(k, ++fills))
    clock.advance(TTL)
    t.equal(
      cache.patchContext('default', 'w', async (e) => e),
      0,
    )
    t.equal((await cache.get(k, async () => taggedEntry(k, ++fills))).status, 'miss')
    clock.advance(TTL / 2)
    cache.patchContext('default', 'w', async (e) => e)
    clock.advance(TTL / 2)
    await t.rejects(
      cache.get(k, async () => {
        throw new Error('upstream down')
      }),
      /upstream down/,
      'the upstream fails: the entry waiting for a write is not served as STALE',
    )
  },
)

t.test('patchContext: an entry waits for at most MAX_PENDING_CHANGES writes, then is dropped', async (t) => {
  const { cache } = setup()
  const k = key()
  let fills = 0
  const fill = async () => taggedEntry(k, ++fills)
  await cache.get(k, fill)
  const patch = async (e: ListingEntry) => e
  let waited = 0
  for (let i = 0; i < MAX_PENDING_CHANGES; i++) waited += cache.patchContext('default', i, patch)
  t.equal(waited, MAX_PENDING_CHANGES, 'each write waited in the entry')
  t.equal(cache.patchContext('default', 'one too many', patch), 0, 'dropped: nothing waits any more')
  t.equal((await cache.get(k, fill)).status, 'miss')
})
