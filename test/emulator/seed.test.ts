// --seed N: deterministic, realistic, idempotent, and fast (timing is reported, never asserted).
import { join } from 'node:path'
import t from 'tap'
import { seedCustomer, seedUserId } from '../../src/emulator/seed.js'
import { EmulatorStore } from '../../src/emulator/store.js'
import { cred, startTestEmulator } from './harness.js'

t.test('seeded customers look real', async (t) => {
  const patterns: [keyof ReturnType<typeof seedCustomer>, RegExp][] = [
    ['UserID', /^[A-Z]\d\d[a-z]\d{2}$/],
    ['Name', /^[A-Z][a-z]+ [A-Z][a-z]+$/],
    ['Address', /, [A-Z][A-Za-z ]+ - \d{6}$/], // ends with the state and a 6-digit PIN
    ['Email', /^[a-z]+\.?[a-z]+\d*@[a-z]+(\.[a-z]+)+$/],
    ['PhoneNumber', /^[6-9]\d{9}$/],
    ['AltPhoneNumber', /^([6-9]\d{9})?$/],
  ]
  const misfits: string[] = []
  let withAlt = 0
  for (let i = 1; i <= 2000; i++) {
    const c = seedCustomer(i)
    for (const [field, re] of patterns) if (!re.test(c[field])) misfits.push(`${i} ${field}: ${c[field]}`)
    if (c.AltPhoneNumber !== '') withAlt++
  }
  t.strictSame(misfits, [])
  t.ok(withAlt > 400 && withAlt < 1200, `some customers have an alternate phone (${withAlt}/2000)`)
  t.strictSame(seedCustomer(42), seedCustomer(42), 'customer i depends on i alone')
  t.notSame(seedCustomer(42), seedCustomer(43))
})

t.test('seeded UserIDs are distinct, also past the short form', async (t) => {
  const seen = new Set<string>()
  const ranges: [number, number][] = [
    [1, 150_000],
    [6_759_000, 6_761_000],
    [9_999_000, 10_000_000],
  ]
  for (const [from, to] of ranges) for (let i = from; i <= to; i++) seen.add(seedUserId(i))
  const total = ranges.reduce((n, [from, to]) => n + to - from + 1, 0)
  t.equal(seen.size, total)
  t.match(seedUserId(6_760_001), /^[A-Z]\d\d[a-z]\d{3,}$/, 'beyond the short space the tail grows')
})

t.test('seeding is deterministic and only adds what is missing', async (t) => {
  const a = new EmulatorStore(':memory:')
  const b = new EmulatorStore(':memory:')
  t.teardown(() => {
    a.close()
    b.close()
  })
  t.equal(a.seed('default', 100), 100)
  t.equal(b.seed('default', 100), 100)
  t.strictSame(a.listCustomers('default'), b.listCustomers('default'), 'same rows, same ids')

  t.equal(a.seed('default', 100), 0, 'the same N again adds nothing')
  t.equal(a.seed('default', 130), 30, 'a larger N adds the rest')
  t.strictSame(
    a.listCustomers('default').slice(0, 100),
    b.listCustomers('default'),
    'the first 100 are unchanged',
  )
  t.equal(a.seed('default', 50), 0, 'a smaller N removes nothing')

  // a customer deleted since is added back; a UserID taken by a real customer is left alone
  const victim = seedCustomer(7)
  a.deleteCustomer('default', victim.UserID)
  a.updateCustomer('default', seedCustomer(8).UserID, { Name: 'Edited By Hand' })
  t.equal(a.seed('default', 130), 1)
  t.equal(a.countCustomers('default'), 130)
  t.equal(a.listCustomers('default').find((c) => c.UserID === seedCustomer(8).UserID)?.Name, 'Edited By Hand')
  t.equal(a.countCustomers('other'), 0, 'only the given context is seeded')
})

t.test(
  'seeding in batches: whole batches and a remainder, a taken UserID skipped inside a batch',
  async (t) => {
    const a = new EmulatorStore(':memory:')
    const one = new EmulatorStore(':memory:')
    t.teardown(() => {
      a.close()
      one.close()
    })
    // 1,000 and then 1,037: batches of many rows, then the rest one at a time.
    t.equal(a.seed('default', 1000), 1000)
    const taken = seedCustomer(1020)
    a.createCustomer('default', { ...taken, Name: 'Got There First' })
    t.equal(a.seed('default', 1037), 36, 'every missing one but the UserID already taken')
    t.equal(a.countCustomers('default'), 1037)
    const rows = a.listCustomers('default')
    t.equal(rows.find((r) => r.UserID === taken.UserID)?.Name, 'Got There First')
    t.strictSame(rows[999], { id: 1000, ...seedCustomer(1000) }, 'ids follow the seed order')
    // The same rows as seeding one at a time would give (one at a time: 1..1037 past a batch each).
    for (let n = 1; n <= 1037; n += 199) one.seed('default', n)
    one.seed('default', 1037)
    t.strictSame(
      one.listCustomers('default').map((r) => r.UserID),
      Array.from({ length: 1037 }, (_, i) => seedCustomer(i + 1).UserID),
    )
    const fields = (store: EmulatorStore) =>
      store.listCustomers('default').map(({ id: _id, ...rest }) => rest)
    t.strictSame(fields(a).slice(0, 1000), fields(one).slice(0, 1000), 'the same records')
    t.strictSame(
      a
        .listCustomers('default')
        .slice(0, 1000)
        .map((r) => r.id),
      Array.from({ length: 1000 }, (_, i) => i + 1),
      'a batch into an empty context takes ids 1..N',
    )
  },
)

t.test('--seed through the emulator fills the default context', async (t) => {
  const one = await startTestEmulator(t, { seed: 25 })
  const two = await startTestEmulator(t, { seed: 25 })
  const rows = (await one.call('GET', '/api/ipdrcustomers', cred())).json
  t.equal(rows.length, 25)
  t.same(
    rows.map((r: { id: number }) => r.id),
    Array.from({ length: 25 }, (_, i) => i + 1),
  )
  t.strictSame((await two.call('GET', '/api/ipdrcustomers', cred())).json, rows)
  t.same((await one.call('GET', '/api/ipdrcustomers', cred('ipdr'))).json, [])
})

t.test('seeding 100,000 customers (timing reported, not asserted)', async (t) => {
  const store = new EmulatorStore(join(t.testdir(), 'seed.sqlite'))
  t.teardown(() => store.close())
  const started = performance.now()
  const added = store.seed('default', 100_000)
  const ms = performance.now() - started
  t.comment(`seeded 100,000 customers into a file in ${Math.round(ms)} ms`)
  t.equal(added, 100_000)
  t.equal(store.countCustomers('default'), 100_000)
  const rows = store.listCustomers('default')
  t.equal(new Set(rows.map((r) => r.UserID)).size, 100_000)
  t.strictSame(rows[99_999], { id: 100_000, ...seedCustomer(100_000) })
})
