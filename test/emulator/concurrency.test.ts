// Concurrent writes to one UserID stay consistent: one create wins, the rest are envelopes.
import { join } from 'node:path'
import t from 'tap'
import { cred, mcred, startTestEmulator } from './harness.js'

const N = 20

t.test(`${N} parallel creates of one UserID: exactly one succeeds`, async (t) => {
  const emu = await startTestEmulator(t)
  const replies = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'SAME', Name: `N${i}` }),
    ),
  )
  const ok = replies.filter((r) => r.json.id !== undefined)
  t.equal(ok.length, 1)
  for (const r of replies.filter((r) => r.json.id === undefined)) {
    t.strictSame(r.json, { status: 'Error', message: 'Duplicate UserID : SAME' })
  }
  const list = (await emu.call('GET', '/api/ipdrcustomers', cred())).json
  t.equal(list.length, 1)
  t.strictSame(list[0], ok[0]?.json)
})

t.test(`${N} customers race for one subnet: exactly one mapping is stored`, async (t) => {
  const emu = await startTestEmulator(t)
  for (let i = 0; i < N; i++)
    await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: `C${i}`, Name: 'x' })
  const replies = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      emu.call('POST', '/api/ipdrcustomers_mapping', {
        ...mcred(),
        UserID: `C${i}`,
        // alternate between the /24 and an address inside it: every pair overlaps
        ipsubnet: i % 2 === 0 ? '10.20.30.0/24' : `10.20.30.${i}`,
        starttime: '0',
      }),
    ),
  )
  t.equal(replies.filter((r) => r.status === 200).length, 1)
  t.equal(
    replies.filter((r) => r.status === 422 && /^Duplicate Mapping for UserID : C\d+$/.test(r.json.message))
      .length,
    N - 1,
  )
  t.equal((await emu.call('GET', '/api/ipdrcustomers_mapping', mcred())).json.length, 1)
})

t.test(
  `${N} parallel PATCHes and a DELETE of one customer leave one consistent record or none`,
  async (t) => {
    const emu = await startTestEmulator(t)
    await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'P', Name: 'start' })
    const patches = Array.from({ length: N }, (_, i) =>
      emu.call('PATCH', '/api/ipdrcustomers/P', { ...cred(), Name: `name-${i}`, Email: `e${i}@example.in` }),
    )
    const replies = await Promise.all(patches)
    for (const r of replies) {
      t.equal(r.json.Email, `e${r.json.Name.slice(5)}@example.in`, 'each reply is one whole update')
    }
    const [record] = (await emu.call('GET', '/api/ipdrcustomers', cred())).json
    t.equal(record.Email, `e${record.Name.slice(5)}@example.in`, 'the stored record is one whole update')

    const mixed = await Promise.all([
      emu.call('DELETE', '/api/ipdrcustomers/P', cred()),
      emu.call('DELETE', '/api/ipdrcustomers/P', cred()),
      emu.call('PATCH', '/api/ipdrcustomers/P', { ...cred(), Name: 'late' }),
    ])
    const deletes = mixed.slice(0, 2)
    t.equal(deletes.filter((r) => r.json.UserID === 'P').length, 1, 'one DELETE returns the record')
    t.equal(
      deletes.filter((r) => r.json.message === 'IPDR Customer not found').length,
      1,
      'the other finds nothing',
    )
    t.same((await emu.call('GET', '/api/ipdrcustomers', cred())).json, [])
  },
)

t.test('two emulators on one file racing for one UserID: exactly one succeeds', async (t) => {
  const db = join(t.testdir(), 'emu.sqlite')
  const a = await startTestEmulator(t, { db })
  const b = await startTestEmulator(t, { db })
  const replies = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      (i % 2 === 0 ? a : b).call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'SAME', Name: `N${i}` }),
    ),
  )
  t.equal(replies.filter((r) => r.json.id !== undefined).length, 1)
  t.equal(replies.filter((r) => r.json.message === 'Duplicate UserID : SAME').length, N - 1)
})
