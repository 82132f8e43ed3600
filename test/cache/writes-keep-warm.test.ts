/**
 * SPEC 19 against the real emulator: random sequences of writes (customer creates, replaces,
 * updates, deletes; mapping creates, replaces, updates, expiries and
 * deletes) go through the gateway, and after each one the gateway's cached answers — both listings
 * byte for byte, a filter, a single read and an IP-at-time lookup — equal those of a gateway that
 * caches nothing (a fresh fetch from the emulator), and the next read after a successful write is a
 * hit. Then the same with three instances over one Redis, writes through any of them.
 */
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { startEmulator } from '../../src/emulator/index.js'
import { makePolicy, startGateway, type TestGateway } from '../helpers/gateway.js'
import { type Behaviour, startRecordingUpstream } from '../helpers/recording-upstream.js'
import { findRedisServer, REDIS_MISSING, startRedis } from '../helpers/redis-server.js'
import { call, startInstances, untilShared } from '../store/cluster.js'

const SEEDED = 6
const LIMITS = { rateLimit: { max: 1_000_000, timeWindow: '1 minute' } }

type Command =
  | { kind: 'createCustomer'; n: number }
  | { kind: 'replaceCustomer'; pick: number; n: number }
  | { kind: 'updateCustomer'; pick: number; n: number }
  | { kind: 'deleteCustomer'; pick: number }
  | { kind: 'createMapping'; pick: number; n: number }
  | { kind: 'updateMapping'; pick: number; n: number; replace: boolean; end: boolean }
  | { kind: 'deleteMapping'; pick: number }
  | { kind: 'expireMapping'; pick: number }

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant('createCustomer' as const), n: fc.nat(10_000) }),
  fc.record({ kind: fc.constant('replaceCustomer' as const), pick: fc.nat(), n: fc.nat(10_000) }),
  fc.record({ kind: fc.constant('updateCustomer' as const), pick: fc.nat(), n: fc.nat(10_000) }),
  fc.record({ kind: fc.constant('deleteCustomer' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('createMapping' as const), pick: fc.nat(), n: fc.nat(250) }),
  fc.record({
    kind: fc.constant('updateMapping' as const),
    pick: fc.nat(),
    n: fc.nat(1000),
    replace: fc.boolean(),
    end: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('deleteMapping' as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant('expireMapping' as const), pick: fc.nat() }),
)

interface Listed {
  customers: { UserID: string }[]
  mappings: { UserID: string; ipsubnet: string; starttime: number }[]
}

/** The request a command makes, given what the listings hold now. */
function requestOf(
  c: Command,
  now: Listed,
): { method: string; path: string; body: Record<string, unknown> } | null {
  const customer =
    now.customers.length === 0 ? undefined : now.customers[('pick' in c ? c.pick : 0) % now.customers.length]
  const mapping =
    now.mappings.length === 0 ? undefined : now.mappings[('pick' in c ? c.pick : 0) % now.mappings.length]
  switch (c.kind) {
    case 'createCustomer':
      return {
        method: 'POST',
        path: '/api/ipdrcustomers',
        body: { UserID: `P${c.n}`, Name: `Név ${c.n}`, Email: `p${c.n}@isp.example` },
      }
    case 'replaceCustomer':
      if (!customer) return null
      return {
        method: 'PUT',
        path: `/api/ipdrcustomers/${customer.UserID}`,
        body: {
          UserID: customer.UserID,
          Name: `Replaced ${c.n}`,
          Address: `${c.n} "Quoted" Street`,
          Email: `r${c.n}@isp.example`,
          PhoneNumber: `+91${c.n}`,
          AltPhoneNumber: '',
        },
      }
    case 'updateCustomer':
      if (!customer) return null
      return {
        method: 'PATCH',
        path: `/api/ipdrcustomers/${customer.UserID}`,
        body: { Address: `Lane ${c.n}` },
      }
    case 'deleteCustomer':
      if (!customer) return null
      return { method: 'DELETE', path: `/api/ipdrcustomers/${customer.UserID}`, body: {} }
    case 'createMapping':
      if (!customer) return null
      return {
        method: 'POST',
        path: '/api/ipdrcustomers_mapping',
        body: {
          UserID: customer.UserID,
          ipsubnet: `10.9.${c.n % 4}.${c.n}`,
          starttime: String(1_700_000_000 + c.n),
          terminalid: `T${c.n}`,
        },
      }
    case 'updateMapping':
      if (!mapping) return null
      return {
        method: c.replace ? 'PUT' : 'PATCH',
        path: `/api/ipdrcustomers_mapping/${mapping.UserID}`,
        body: c.replace
          ? {
              ipsubnet: mapping.ipsubnet,
              starttime: String(mapping.starttime),
              endtime: c.end ? String(mapping.starttime + 100 + c.n) : null,
              terminalid: `X${c.n}`,
            }
          : { ipsubnet: mapping.ipsubnet, terminalid: `U${c.n}` },
      }
    case 'deleteMapping':
    case 'expireMapping':
      if (!mapping) return null
      return {
        method: 'DELETE',
        path: `/api/ipdrcustomers_mapping/${mapping.UserID}`,
        body: { ipsubnet: mapping.ipsubnet },
      }
  }
}

/** The reads compared after each write. */
function readsOf(now: Listed): string[] {
  const reads = [
    '/api/ipdrcustomers',
    '/api/ipdrcustomers_mapping',
    '/api/ipdrcustomers?q=isp.example',
    '/api/ipdrcustomers?limit=3&offset=2',
    '/api/ipdrcustomers_mapping?limit=2&offset=1',
  ]
  const customer = now.customers[0]
  if (customer)
    reads.push(`/api/ipdrcustomers/${customer.UserID}`, `/api/ipdrcustomers_mapping/${customer.UserID}`)
  const mapping = now.mappings[0]
  if (mapping) reads.push(`/api/ipdrcustomers_mapping?ip=${mapping.ipsubnet}&at=${mapping.starttime}`)
  return reads
}

async function listed(url: string): Promise<Listed> {
  const [customers, mappings] = await Promise.all([
    call(url, 'GET', '/api/ipdrcustomers'),
    call(url, 'GET', '/api/ipdrcustomers_mapping'),
  ])
  return { customers: JSON.parse(customers.text), mappings: JSON.parse(mappings.text) }
}

async function emulatorWithMappings(t: Test) {
  const emu = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [{ name: 'alice', token: 'tokA', contexts: null }],
    seed: SEEDED,
    seedMappings: true,
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  return emu
}

/**
 * Runs `runs` random sequences: each write through `writers` (round robin), each read compared
 * through every one of `readers` with `reference` (which caches nothing).
 */
async function checkSequences(
  t: Test,
  writers: readonly TestGateway[],
  reference: TestGateway,
  runs: number,
  expire: boolean,
): Promise<{ writes: number; hitsAfter: number }> {
  let writes = 0
  let hitsAfter = 0
  let turn = 0
  await fc.assert(
    fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 10 }), async (commands) => {
      for (const c of commands) {
        if (c.kind === 'expireMapping' && !expire) continue
        if (c.kind === 'deleteMapping' && expire) continue
        const now = await listed(reference.url)
        const req = requestOf(c, now)
        if (req === null) continue
        // Every instance holds both listings before the write.
        for (const g of writers) await listed(g.url)
        const writer = writers[turn++ % writers.length] as TestGateway
        const answer = await call(writer.url, req.method, req.path, undefined, req.body)
        if (answer.status === 200) writes++
        const after = await listed(reference.url)
        for (const g of writers) {
          for (const path of readsOf(after)) {
            const [mine, fresh] = [await call(g.url, 'GET', path), await call(reference.url, 'GET', path)]
            if (mine.status !== fresh.status || mine.text !== fresh.text) {
              throw new Error(
                `${req.method} ${req.path} ${JSON.stringify(req.body)} → ${answer.status}; then GET ${path}:\n  cached ${mine.status} ${mine.text.slice(0, 400)}\n  fresh  ${fresh.status} ${fresh.text.slice(0, 400)}`,
              )
            }
            if (answer.status === 200 && path === '/api/ipdrcustomers' && mine.headers['x-cache'] === 'HIT')
              hitsAfter++
          }
        }
      }
    }),
    { numRuns: runs, endOnFailure: true },
  )
  t.ok(writes > 0, `${writes} writes answered 200`)
  return { writes, hitsAfter }
}

t.test(
  'one instance: every write is applied to the cached listings, which stay what Trisul lists',
  async (t) => {
    const emu = await emulatorWithMappings(t)
    for (const expire of [false, true]) {
      const gateway = {
        cache: { ttlSeconds: 300 },
        mappings: { delete: expire ? 'expire' : 'remove' },
        ...LIMITS,
      }
      const policy = await makePolicy(t, { gateway })
      const fresh = await makePolicy(t, { gateway: { ...gateway, cache: { ttlSeconds: 0 } } })
      const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
      const reference = await startGateway(t, { policy: fresh, upstreamUrl: emu.url })
      const { writes, hitsAfter } = await checkSequences(t, [gw], reference, 12, expire)
      t.equal(hitsAfter, writes, 'the listing read after each successful write was a hit')
      const metrics = await call(gw.url, 'GET', '/metrics')
      t.match(
        metrics.text,
        /ipdr_gateway_cache_invalidations_total\{resource="customers",kind="applied"\} [1-9]/,
      )
    }
  },
)

t.test('three instances over Redis: a write through any is applied on all', async (t) => {
  if (!findRedisServer()) return t.fail(REDIS_MISSING)
  const redis = await startRedis(t)
  const emu = await emulatorWithMappings(t)
  const gws = await startInstances(t, { n: 3, redis, upstreamUrl: emu.url, spec: { gateway: LIMITS } })
  await untilShared(gws)
  const reference = await startGateway(t, {
    policy: await makePolicy(t, { gateway: { cache: { ttlSeconds: 0 }, ...LIMITS } }),
    upstreamUrl: emu.url,
  })
  const { writes, hitsAfter } = await checkSequences(t, gws, reference, 6, false)
  t.equal(hitsAfter, writes * 3, 'on every instance, the listing read after each successful write was a hit')
})

/** Customers listing of two records in the emulator's form. */
const TWO = [
  { id: 1, Name: 'A', Address: '', Email: '', PhoneNumber: '', AltPhoneNumber: '', UserID: 'U1' },
  { id: 2, Name: 'B', Address: '', Email: '', PhoneNumber: '', AltPhoneNumber: '', UserID: 'U2' },
]

/**
 * An upstream listing TWO whose write answers are U2 with the written Name; the write naming `held`
 * is answered only once `release()` is called.
 */
async function holdingUpstream(t: Test, held: string) {
  let release: () => void = () => {}
  const gate = new Promise<void>((r) => {
    release = r
  })
  const upstream = await startRecordingUpstream()
  t.teardown(() => upstream.close())
  upstream.respond((req) => {
    if (req.method === 'GET') return { kind: 'json', body: TWO }
    const name = (req.body as { Name?: string }).Name
    const answer: Behaviour = { kind: 'json', body: { ...(TWO[1] as object), Name: name } }
    return name === held ? { kind: 'when', ready: gate, next: answer } : answer
  })
  return { upstream, release }
}

t.test('what the gateway cannot be sure of is dropped, and the next read refetches', async (t) => {
  const upstream = await startRecordingUpstream()
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { cache: { ttlSeconds: 300 }, upstream: { timeoutMs: 300 }, ...LIMITS },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const cases: { name: string; write: Behaviour; status: number }[] = [
    {
      name: 'an answer that is not a record of the listing',
      write: { kind: 'json', body: { ok: true } },
      status: 200,
    },
    {
      name: 'an answer with other members than the listing has',
      write: { kind: 'json', body: { id: 2, UserID: 'U2', Name: 'B' } },
      status: 200,
    },
    {
      name: 'an answer that is not JSON',
      write: { kind: 'raw', body: '<html>', contentType: 'text/html' },
      status: 502,
    },
    { name: 'a timeout: the outcome is unknown', write: { kind: 'hang' }, status: 504 },
  ]
  for (const c of cases) {
    upstream.respond((req) => (req.method === 'GET' ? { kind: 'json', body: TWO } : c.write))
    await call(gw.url, 'GET', '/api/ipdrcustomers')
    t.equal((await call(gw.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT', `${c.name}: cached`)
    const listings = upstream.requests.filter((r) => r.method === 'GET').length
    const answer = await call(gw.url, 'PATCH', '/api/ipdrcustomers/U2', undefined, { Name: 'C' })
    t.equal(answer.status, c.status, `${c.name}: answered ${c.status}`)
    const next = await call(gw.url, 'GET', '/api/ipdrcustomers')
    t.equal(next.headers['x-cache'], 'MISS', `${c.name}: dropped, refetched`)
    t.equal(upstream.requests.filter((r) => r.method === 'GET').length, listings + 1)
  }
  const metrics = await call(gw.url, 'GET', '/metrics')
  t.match(metrics.text, /ipdr_gateway_cache_invalidations_total\{resource="customers",kind="dropped"\} 4/)
  t.match(metrics.text, /ipdr_gateway_cache_invalidations_total\{resource="customers",kind="applied"\} 0/)
})

t.test(
  'two writes of one customer in flight at once are dropped: their order at Trisul is unknown',
  async (t) => {
    // The first write is held until the second has been answered: Trisul took them in either order.
    const { upstream, release } = await holdingUpstream(t, 'first')
    const policy = await makePolicy(t, { gateway: { cache: { ttlSeconds: 300 }, ...LIMITS } })
    const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
    await call(gw.url, 'GET', '/api/ipdrcustomers')
    const first = call(gw.url, 'PATCH', '/api/ipdrcustomers/U2', undefined, { Name: 'first' })
    while (!upstream.requests.some((r) => r.method === 'PATCH')) await new Promise((r) => setTimeout(r, 5))
    const second = await call(gw.url, 'PATCH', '/api/ipdrcustomers/U2', undefined, { Name: 'second' })
    t.equal(second.status, 200)
    t.equal(
      (await call(gw.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'],
      'MISS',
      'the second is dropped',
    )
    release()
    t.equal((await first).status, 200)
    t.equal(
      (await call(gw.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'],
      'MISS',
      'and so is the first',
    )
    // A write of another customer meanwhile would have been applied: writes cross only on the same customer.
    await call(gw.url, 'PATCH', '/api/ipdrcustomers/U1', undefined, { Name: 'alone' })
    t.equal((await call(gw.url, 'GET', '/api/ipdrcustomers')).headers['x-cache'], 'HIT')
  },
)

t.test('two instances: writes of one customer that crossed are dropped on both', async (t) => {
  if (!findRedisServer()) return t.fail(REDIS_MISSING)
  const redis = await startRedis(t)
  const { upstream, release } = await holdingUpstream(t, 'through A')
  const [a, b] = (await startInstances(t, {
    n: 2,
    redis,
    upstreamUrl: upstream.url,
    spec: { gateway: LIMITS },
  })) as [TestGateway, TestGateway]
  await untilShared([a, b])
  for (const g of [a, b]) await call(g.url, 'GET', '/api/ipdrcustomers')
  const throughA = call(a.url, 'PATCH', '/api/ipdrcustomers/U2', undefined, { Name: 'through A' })
  while (!upstream.requests.some((r) => r.method === 'PATCH')) await new Promise((r) => setTimeout(r, 5))
  t.equal((await call(b.url, 'PATCH', '/api/ipdrcustomers/U2', undefined, { Name: 'through B' })).status, 200)
  release()
  t.equal((await throughA).status, 200)
  const fetched = upstream.requests.filter((r) => r.method === 'GET').length
  for (const g of [a, b]) {
    const read = await call(g.url, 'GET', '/api/ipdrcustomers')
    t.equal(read.headers['x-cache'], 'MISS', 'the later announcement crossed the earlier one: dropped')
  }
  t.equal(
    upstream.requests.filter((r) => r.method === 'GET').length,
    fetched + 1,
    'refetched (once for both)',
  )
})

t.test(
  'a large listing (past the inline scan): the read after a write waits for the patch, sent as bytes',
  async (t) => {
    const emu = await startEmulator({
      db: ':memory:',
      dialect: 'v2',
      users: [{ name: 'alice', token: 'tokA', contexts: null }],
      seed: 6000,
      port: 0,
      host: '127.0.0.1',
      logger: false,
    })
    t.teardown(() => emu.close())
    const policy = await makePolicy(t, { gateway: { cache: { ttlSeconds: 300 }, ...LIMITS } })
    const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
    const reference = await startGateway(t, {
      policy: await makePolicy(t, { gateway: { cache: { ttlSeconds: 0 }, ...LIMITS } }),
      upstreamUrl: emu.url,
    })
    const before = await call(gw.url, 'GET', '/api/ipdrcustomers')
    t.ok(before.text.length > 1024 * 1024, 'large enough for the listing worker')
    const [first] = JSON.parse(before.text) as { UserID: string }[]
    const written = await call(gw.url, 'PATCH', `/api/ipdrcustomers/${first!.UserID}`, undefined, {
      Name: 'Large',
    })
    t.equal(written.status, 200)
    const after = await call(gw.url, 'GET', '/api/ipdrcustomers')
    t.equal(after.headers['x-cache'], 'HIT')
    t.equal(
      after.text,
      (await call(reference.url, 'GET', '/api/ipdrcustomers')).text,
      'the bytes of a fresh listing',
    )
    const one = await call(gw.url, 'GET', `/api/ipdrcustomers/${first!.UserID}`)
    t.match(JSON.parse(one.text), { Name: 'Large' }, 'a single read, through the index the worker built')
  },
)
