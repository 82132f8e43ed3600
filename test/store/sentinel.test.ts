/**
 * SPEC 15 against real servers: a master, a replica and three sentinels
 * (down-after 1 s), two gateways naming the sentinels, and a bounded loop that
 * writes through one instance and reads through the other while the master is
 * killed, frozen, or failed over by hand. Every request is answered (never a
 * 5xx), no read misses a write whose answer came before it, each instance
 * counts the master change, and budgets are shared again within 5 s of the
 * promotion.
 */
import t, { type Test } from 'tap'
import { startEmulator } from '../../src/emulator/index.js'
import { PERMISSIVE_DEFAULT, type TestGateway } from '../helpers/gateway.js'
import {
  findRedisServer,
  REDIS_MISSING,
  redisCommand,
  startSentinels,
  type TestSentinels,
} from '../helpers/redis-server.js'
import { ALICE, call, startInstances, untilShared } from './cluster.js'

if (!findRedisServer()) t.fail(REDIS_MISSING)

const BOB = { authorization: 'Bearer tokB', 'x-trisul-username': 'bob' }
const BUDGET = 10

async function setup(t: Test, form: 'policy' | 'url') {
  const sentinels = await startSentinels(t)
  const emu = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [
      { name: 'alice', token: 'tokA', contexts: null },
      { name: 'bob', token: 'tokB', contexts: null },
    ],
    seed: 10,
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  const gws = await startInstances(t, {
    n: 2,
    redis: { url: null },
    upstreamUrl: emu.url,
    spec: {
      gateway: { rateLimit: { max: 100_000, timeWindow: '1 minute' } },
      consumers: {
        default: PERMISSIVE_DEFAULT,
        metered: {
          usernames: ['bob'],
          operations: { mappings: ['list'] },
          rateLimit: { max: BUDGET, timeWindow: '1 minute' },
        },
      },
    },
    redisOverrides: {
      ...(form === 'policy'
        ? { sentinels: sentinels.addresses, name: sentinels.name }
        : { url: `redis+sentinel://${sentinels.addresses.join(',')}/${sentinels.name}` }),
      leaseMs: 1000,
      timeoutMs: 100,
    },
  })
  await untilShared(gws)
  return { sentinels, gws }
}

interface LoopResult {
  rounds: number
  answered: number
  errors: string[]
  stale: string[]
}

/** Creates through one instance and reads it back through the other, alternating, until stopped (bounded). */
function readYourWritesLoop(gws: readonly TestGateway[], label: string) {
  const result: LoopResult = { rounds: 0, answered: 0, errors: [], stale: [] }
  let stopped = false
  const done = (async () => {
    for (let i = 0; i < 600 && !stopped; i++) {
      const writer = gws[i % 2] as TestGateway
      const reader = gws[(i + 1) % 2] as TestGateway
      const id = `${label}${i}`
      const created = await call(writer.url, 'POST', '/api/ipdrcustomers', ALICE, {
        UserID: id,
        Name: `R ${i}`,
      })
      result.answered++
      if (created.status !== 200) {
        result.errors.push(`create ${id}: ${created.status} ${created.text.slice(0, 120)}`)
        continue
      }
      const reads = await Promise.all([
        call(reader.url, 'GET', `/api/ipdrcustomers/${id}`),
        call(reader.url, 'GET', '/api/ipdrcustomers'),
      ])
      for (const r of reads) {
        result.answered++
        if (r.status >= 500) result.errors.push(`read ${id}: ${r.status} ${r.text.slice(0, 120)}`)
        else if (!r.text.includes(`"${id}"`))
          result.stale.push(`${id} ${r.status} ${r.headers['x-cache']} ${r.text.slice(0, 80)}`)
      }
      result.rounds++
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  return {
    result,
    async stop() {
      stopped = true
      await done
    },
  }
}

async function failoversSeen(g: TestGateway): Promise<number> {
  const res = await call(g.url, 'GET', '/metrics')
  const m = /^ipdr_gateway_store_failovers_total (\d+)/m.exec(res.text)
  return m ? Number(m[1]) : -1
}

/** Exactly BUDGET of 2 × BUDGET requests admitted, spread over both instances. */
async function budgetAdmitted(gws: readonly TestGateway[]): Promise<number> {
  const replies = await Promise.all(
    Array.from({ length: 2 * BUDGET }, (_, i) =>
      call((gws[i % 2] as TestGateway).url, 'GET', '/api/ipdrcustomers_mapping', BOB),
    ),
  )
  return replies.filter((r) => r.status === 200).length
}

async function failoverUnderLoad(
  t: Test,
  label: string,
  fault: (s: TestSentinels, master: number) => Promise<void>,
  form: 'policy' | 'url' = 'policy',
) {
  const { sentinels, gws } = await setup(t, form)
  const before = await sentinels.masterPort()
  const loop = readYourWritesLoop(gws, label)
  await new Promise((r) => setTimeout(r, 300))
  await fault(sentinels, before)
  const after = await sentinels.promotedFrom(before)
  const promoted = performance.now()
  t.not(after, before, `the sentinels promoted the replica (${before} → ${after})`)
  // Both instances on the new master, serving cached listings again: SPEC 15 asks within 5 s of the
  // promotion, measured unloaded by the bench; here the bound is loose, so a busy machine cannot fail it.
  await untilShared(gws, 15_000)
  const shared = performance.now() - promoted
  // And the loop goes on a little past it.
  await new Promise((r) => setTimeout(r, 500))
  await loop.stop()
  t.ok(loop.result.rounds >= 5, `the loop ran through the failover (${loop.result.rounds} rounds)`)
  t.same(loop.result.errors, [], `every request answered, none with a 5xx (${loop.result.answered} requests)`)
  t.same(loop.result.stale, [], 'zero stale reads across instances')
  t.ok(shared <= 15_000, `shared again ${Math.round(shared)} ms after the promotion`)
  t.equal(await budgetAdmitted(gws), BUDGET, 'the budget is counted across instances on the new master')
  for (const g of gws) t.ok((await failoversSeen(g)) >= 1, 'the instance counted the master change')
  return { sentinels, gws, before, after }
}

t.test(
  'the master killed (SIGKILL): answered, no stale read, budgets shared again on the new master',
  async (t) => {
    await failoverUnderLoad(t, 'K', async (s) => {
      await s.servers[0]?.kill()
    })
  },
)

t.test('the master frozen (SIGSTOP): the instances leave it for the promoted replica', async (t) => {
  const { sentinels, gws } = await failoverUnderLoad(t, 'Z', async (s) => {
    s.servers[0]?.freeze()
  })
  // Thawed, the old master believes itself master until the sentinels demote it (seconds later): the
  // instances left it at the failover (the sentinels' +switch-master), so nothing is read from or
  // written to it, and reads stay fresh meanwhile.
  sentinels.servers[0]?.thaw()
  const loop = readYourWritesLoop(gws, 'T')
  await new Promise((r) => setTimeout(r, 1500))
  await loop.stop()
  t.same(loop.result.errors, [], 'after the thaw: every request answered')
  t.same(loop.result.stale, [], 'after the thaw: zero stale reads')
  t.ok(loop.result.rounds >= 5, `after the thaw: ${loop.result.rounds} rounds`)
  const clients = await redisCommand(sentinels.servers[0]?.port ?? 0, 'CLIENT', 'LIST')
  t.notMatch(clients, /name=ipdr-gateway-commands/, 'no gateway command connection on the old master')
})

t.test(
  'SENTINEL FAILOVER by hand, the store named by a redis+sentinel:// URL: answered, no stale read',
  async (t) => {
    await failoverUnderLoad(
      t,
      'F',
      async (s) => {
        const reply = await redisCommand(s.sentinels[0]?.port ?? 0, 'SENTINEL', 'FAILOVER', s.name)
        if (!reply.startsWith('+OK')) throw new Error(`SENTINEL FAILOVER: ${reply}`)
      },
      'url',
    )
  },
)
