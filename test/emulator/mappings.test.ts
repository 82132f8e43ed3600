// The mapping API of shared/SPEC.md section 2: every operation in both dialects, the selection of a
// customer's mapping by ipsubnet, and the overlap table, over a real socket.
import t from 'tap'
import { cred, mcred, startTestEmulator, type TestEmulator, v1cred } from './harness.js'

const PATH = '/api/ipdrcustomers_mapping'

async function customer(emu: TestEmulator, c: object, UserID: string) {
  const r = await emu.call('POST', '/api/ipdrcustomers', { ...c, UserID, Name: `Customer ${UserID}` })
  if (r.status !== 200 || typeof r.json.id !== 'number') throw new Error(`customer ${UserID}: ${r.text}`)
  return r.json.id as number
}

for (const dialect of ['v1', 'v2'] as const) {
  const c = dialect === 'v1' ? v1cred() : cred()
  const m = dialect === 'v1' ? v1cred() : mcred()

  t.test(`mapping CRUD (${dialect})`, async (t) => {
    const emu = await startTestEmulator(t, { dialect })
    const id = await customer(emu, c, 'U1001')

    let r = await emu.call('GET', PATH, m)
    t.equal(r.status, 200)
    t.same(r.json, [])

    // times sent as strings come back as integers; endtime may be open
    r = await emu.call('POST', PATH, {
      ...m,
      UserID: 'U1001',
      ipsubnet: '172.27.19.224',
      starttime: '0',
      endtime: '1735669799',
      terminalid: 'T-01',
    })
    t.equal(r.status, 200)
    t.strictSame(r.json, {
      id: 1,
      ipdr_customer_id: id,
      ipsubnet: '172.27.19.224',
      starttime: 0,
      endtime: 1735669799,
      terminalid: 'T-01',
    })
    t.same(Object.keys(r.json), ['id', 'ipdr_customer_id', 'ipsubnet', 'starttime', 'endtime', 'terminalid'])

    // a customer may hold several mappings; integers are accepted too; absent endtime is open-ended
    r = await emu.call('POST', PATH, {
      ...m,
      UserID: 'U1001',
      ipsubnet: '192.168.1.0/24',
      starttime: 1700000000,
    })
    t.strictSame(r.json, {
      id: 2,
      ipdr_customer_id: id,
      ipsubnet: '192.168.1.0/24',
      starttime: 1700000000,
      endtime: null,
      terminalid: '',
    })

    r = await emu.call('GET', PATH, m)
    t.same(
      r.json.map((x: { id: number }) => x.id),
      [1, 2],
    )

    // PATCH selects the mapping by ipsubnet and updates a subset
    r = await emu.call('PATCH', `${PATH}/U1001`, { ...m, ipsubnet: '192.168.1.0/24', terminalid: 'OLT-7' })
    t.strictSame(r.json, {
      id: 2,
      ipdr_customer_id: id,
      ipsubnet: '192.168.1.0/24',
      starttime: 1700000000,
      endtime: null,
      terminalid: 'OLT-7',
    })
    r = await emu.call('PATCH', `${PATH}/U1001`, { ...m, ipsubnet: '192.168.1.0/24', endtime: '1800000000' })
    t.equal(r.json.endtime, 1800000000)
    t.equal(r.json.terminalid, 'OLT-7')
    r = await emu.call('PATCH', `${PATH}/U1001`, { ...m, ipsubnet: '192.168.1.0/24', endtime: null })
    t.equal(r.json.endtime, null)

    // the selector is compared as a range: host bits do not matter
    r = await emu.call('PATCH', `${PATH}/U1001`, {
      ...m,
      ipsubnet: '192.168.1.99/24',
      starttime: '1600000000',
    })
    t.equal(r.json.id, 2)
    t.equal(r.json.starttime, 1600000000)
    t.equal(r.json.ipsubnet, '192.168.1.0/24', 'ipsubnet is kept as first written')

    // PUT replaces starttime, endtime, terminalid: absent endtime is null, absent terminalid ""
    r = await emu.call('PUT', `${PATH}/U1001`, {
      ...m,
      ipsubnet: '172.27.19.224',
      starttime: '100',
      endtime: '200',
      terminalid: 'X',
    })
    t.strictSame(r.json, {
      id: 1,
      ipdr_customer_id: id,
      ipsubnet: '172.27.19.224',
      starttime: 100,
      endtime: 200,
      terminalid: 'X',
    })
    r = await emu.call('PUT', `${PATH}/U1001`, {
      ...m,
      UserID: 'U1001',
      ipsubnet: '172.27.19.224',
      starttime: '5',
    })
    t.strictSame(r.json, {
      id: 1,
      ipdr_customer_id: id,
      ipsubnet: '172.27.19.224',
      starttime: 5,
      endtime: null,
      terminalid: '',
    })

    // DELETE selects by ipsubnet and returns the deleted mapping
    r = await emu.call('DELETE', `${PATH}/U1001`, { ...m, ipsubnet: '172.27.19.224' })
    t.equal(r.status, 200)
    t.equal(r.json.id, 1)
    r = await emu.call('DELETE', `${PATH}/U1001`, { ...m, ipsubnet: '172.27.19.224' })
    t.equal(r.status, 422)
    t.strictSame(r.json, { status: 'Error', message: 'Mapping not found for ipsubnet : 172.27.19.224' })
    r = await emu.call('GET', PATH, m)
    t.same(
      r.json.map((x: { id: number }) => x.id),
      [2],
    )
  })
}

t.test('mapping writes: missing and mismatched fields, unknown customers', async (t) => {
  const emu = await startTestEmulator(t)
  await customer(emu, cred(), 'U1')
  await emu.call('POST', PATH, { ...mcred(), UserID: 'U1', ipsubnet: '10.0.0.1', starttime: '0' })
  const cases: [string, string, object, string][] = [
    ['POST', PATH, { UserID: 'U1', starttime: '0' }, 'Missing field : ipsubnet'],
    ['POST', PATH, { ipsubnet: '10.0.0.2', starttime: '0' }, 'Missing field : UserID'],
    ['POST', PATH, { UserID: 'U1', ipsubnet: '10.0.0.2' }, 'Missing field : starttime'],
    ['POST', PATH, { UserID: 'nobody', ipsubnet: '10.0.0.2', starttime: '0' }, 'IPDR Customer not found'],
    ['PUT', `${PATH}/U1`, { starttime: '0' }, 'Missing field : ipsubnet'],
    ['PUT', `${PATH}/U1`, { ipsubnet: '10.0.0.1' }, 'Missing field : starttime'],
    ['PUT', `${PATH}/nobody`, { ipsubnet: '10.0.0.1', starttime: '0' }, 'IPDR Customer not found'],
    ['PATCH', `${PATH}/U1`, { terminalid: 'x' }, 'Missing field : ipsubnet'],
    ['PATCH', `${PATH}/U1`, { ipsubnet: '10.0.0.1' }, 'Nothing to update'],
    [
      'PATCH',
      `${PATH}/U1`,
      { ipsubnet: '10.0.0.9', terminalid: 'x' },
      'Mapping not found for ipsubnet : 10.0.0.9',
    ],
    ['DELETE', `${PATH}/U1`, {}, 'Missing field : ipsubnet'],
    ['DELETE', `${PATH}/nobody`, { ipsubnet: '10.0.0.1' }, 'IPDR Customer not found'],
    [
      'DELETE',
      `${PATH}/U1`,
      { UserID: 'U2', ipsubnet: '10.0.0.1' },
      'Invalid UserID : the body UserID differs from the path UserID U1',
    ],
    [
      'POST',
      PATH,
      { UserID: 'U1', ipsubnet: '10.0.0.2', starttime: '10', endtime: '10' },
      'Invalid endtime : endtime must be greater than starttime',
    ],
    [
      'PATCH',
      `${PATH}/U1`,
      { ipsubnet: '10.0.0.1', endtime: '0' },
      'Invalid endtime : endtime must be greater than starttime',
    ],
  ]
  for (const [method, path, body, message] of cases) {
    const r = await emu.call(method, path, { ...mcred(), ...body })
    t.equal(r.status, 422, `${method} ${JSON.stringify(body)} status`)
    t.strictSame(r.json, { status: 'Error', message }, `${method} ${JSON.stringify(body)}`)
  }
  const r = await emu.call('GET', PATH, mcred())
  t.equal(r.json.length, 1, 'nothing was written by the refused requests')
  t.strictSame(r.json[0], {
    id: 1,
    ipdr_customer_id: 1,
    ipsubnet: '10.0.0.1',
    starttime: 0,
    endtime: null,
    terminalid: '',
  })
})

t.test('endtime "" means open-ended', async (t) => {
  const emu = await startTestEmulator(t)
  await customer(emu, cred(), 'U1')
  const r = await emu.call('POST', PATH, {
    ...mcred(),
    UserID: 'U1',
    ipsubnet: '10.0.0.1',
    starttime: '5',
    endtime: '',
  })
  t.equal(r.json.endtime, null)
})

// Customer A holds these; each row is a create by customer B (or A), refused or accepted.
const HELD = [
  { ipsubnet: '192.168.1.0/24', starttime: '1000', endtime: '2000' },
  { ipsubnet: '10.9.9.9', starttime: '0', endtime: null },
  { ipsubnet: '2001:db8::/48', starttime: '0', endtime: null },
  { ipsubnet: '2001:db8:ffff::5', starttime: '100', endtime: '200' },
]

const OVERLAP_TABLE: {
  name: string
  who: 'A' | 'B'
  ipsubnet: string
  starttime: string
  endtime?: string
  ok: boolean
}[] = [
  {
    name: 'same subnet, overlapping span',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '1500',
    endtime: '2500',
    ok: false,
  },
  {
    name: 'same subnet, span inside',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '1200',
    endtime: '1300',
    ok: false,
  },
  {
    name: 'same subnet, span around',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '0',
    endtime: '5000',
    ok: false,
  },
  {
    name: 'same subnet, disjoint span after (end is exclusive)',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '2000',
    endtime: '3000',
    ok: true,
  },
  {
    name: 'same subnet, disjoint span before',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '0',
    endtime: '1000',
    ok: true,
  },
  {
    name: 'same subnet, open-ended from its end',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '2000',
    ok: true,
  },
  {
    name: 'same subnet, open-ended from inside',
    who: 'B',
    ipsubnet: '192.168.1.0/24',
    starttime: '1999',
    ok: false,
  },
  {
    name: 'same network written with host bits',
    who: 'B',
    ipsubnet: '192.168.1.23/24',
    starttime: '1500',
    endtime: '1600',
    ok: false,
  },
  {
    name: 'address inside the subnet',
    who: 'B',
    ipsubnet: '192.168.1.77',
    starttime: '1000',
    endtime: '1001',
    ok: false,
  },
  {
    name: 'smaller subnet inside',
    who: 'B',
    ipsubnet: '192.168.1.128/25',
    starttime: '1000',
    endtime: '1001',
    ok: false,
  },
  { name: 'address inside, disjoint span', who: 'B', ipsubnet: '192.168.1.77', starttime: '2000', ok: true },
  { name: 'larger subnet around it', who: 'B', ipsubnet: '192.168.0.0/16', starttime: '1999', ok: false },
  { name: 'everything', who: 'B', ipsubnet: '0.0.0.0/0', starttime: '1500', endtime: '1501', ok: false },
  { name: 'adjacent subnet', who: 'B', ipsubnet: '192.168.2.0/24', starttime: '0', ok: true },
  {
    name: 'subnet around an open-ended address',
    who: 'B',
    ipsubnet: '10.0.0.0/8',
    starttime: '99999999',
    ok: false,
  },
  {
    name: 'IPv4-mapped IPv6 form of a held address',
    who: 'B',
    ipsubnet: '::ffff:10.9.9.9',
    starttime: '5',
    endtime: '6',
    ok: false,
  },
  { name: 'IPv6 subnet inside', who: 'B', ipsubnet: '2001:db8:0:1::/64', starttime: '5', ok: false },
  { name: 'IPv6 address inside', who: 'B', ipsubnet: '2001:db8::1', starttime: '5', endtime: '6', ok: false },
  { name: 'IPv6 subnet around', who: 'B', ipsubnet: '2001::/16', starttime: '5', endtime: '6', ok: false },
  { name: 'IPv6 everything', who: 'B', ipsubnet: '::/0', starttime: '5', endtime: '6', ok: false },
  { name: 'IPv6 neighbour subnet', who: 'B', ipsubnet: '2001:db8:1::/48', starttime: '0', ok: true },
  {
    name: 'IPv6 same address, disjoint span',
    who: 'B',
    ipsubnet: '2001:db8:ffff::5',
    starttime: '200',
    endtime: '300',
    ok: true,
  },
  {
    name: 'IPv6 same address, overlapping span',
    who: 'B',
    ipsubnet: '2001:db8:ffff::5',
    starttime: '199',
    endtime: '300',
    ok: false,
  },
  {
    name: 'the same customer may map an address inside its own subnet',
    who: 'A',
    ipsubnet: '192.168.1.5',
    starttime: '1000',
    ok: true,
  },
  {
    name: 'the same customer may map a subnet around its own',
    who: 'A',
    ipsubnet: '192.168.0.0/16',
    starttime: '0',
    ok: true,
  },
  {
    name: 'the same customer cannot hold one subnet twice (even disjoint in time)',
    who: 'A',
    ipsubnet: '192.168.1.0/24',
    starttime: '5000',
    ok: false,
  },
]

t.test('mapping overlap table', async (t) => {
  const emu = await startTestEmulator(t)
  await customer(emu, cred(), 'A')
  await customer(emu, cred(), 'B')
  for (const held of HELD) {
    const r = await emu.call('POST', PATH, { ...mcred(), UserID: 'A', ...held })
    t.equal(r.status, 200, `A holds ${held.ipsubnet}`)
  }
  for (const row of OVERLAP_TABLE) {
    const { name, who, ok, ...fields } = row
    const r = await emu.call('POST', PATH, { ...mcred(), UserID: who, ...fields })
    if (ok) {
      t.equal(r.status, 200, name)
      t.equal(r.json.ipsubnet, row.ipsubnet, name)
      // undo, so rows stay independent
      const d = await emu.call('DELETE', `${PATH}/${who}`, { ...mcred(), ipsubnet: row.ipsubnet })
      t.equal(d.status, 200, `${name}: undo`)
    } else {
      t.equal(r.status, 422, name)
      t.strictSame(r.json, { status: 'Error', message: `Duplicate Mapping for UserID : ${who}` }, name)
    }
  }
  const r = await emu.call('GET', PATH, mcred())
  t.equal(r.json.length, HELD.length, 'only the held mappings remain')
})

t.test('the overlap rule holds on PUT and PATCH too, and ignores other contexts', async (t) => {
  const emu = await startTestEmulator(t)
  await customer(emu, cred(), 'A')
  await customer(emu, cred(), 'B')
  await emu.call('POST', PATH, {
    ...mcred(),
    UserID: 'A',
    ipsubnet: '192.168.1.0/24',
    starttime: '1000',
    endtime: '2000',
  })
  let r = await emu.call('POST', PATH, {
    ...mcred(),
    UserID: 'B',
    ipsubnet: '192.168.1.7',
    starttime: '2000',
    endtime: '3000',
  })
  t.equal(r.status, 200)

  r = await emu.call('PATCH', `${PATH}/B`, { ...mcred(), ipsubnet: '192.168.1.7', starttime: '1999' })
  t.strictSame(r.json, { status: 'Error', message: 'Duplicate Mapping for UserID : B' })
  r = await emu.call('PUT', `${PATH}/B`, { ...mcred(), ipsubnet: '192.168.1.7', starttime: '0' })
  t.strictSame(r.json, { status: 'Error', message: 'Duplicate Mapping for UserID : B' })
  // A shortening its own span makes room for B
  r = await emu.call('PATCH', `${PATH}/A`, { ...mcred(), ipsubnet: '192.168.1.0/24', endtime: '1500' })
  t.equal(r.json.endtime, 1500)
  r = await emu.call('PATCH', `${PATH}/B`, { ...mcred(), ipsubnet: '192.168.1.7', starttime: '1500' })
  t.equal(r.status, 200)
  t.equal(r.json.starttime, 1500)
  // a PATCH that leaves a span where it was never clashes with itself
  r = await emu.call('PATCH', `${PATH}/B`, { ...mcred(), ipsubnet: '192.168.1.7', terminalid: 'T' })
  t.equal(r.json.terminalid, 'T')

  // another context has its own customers and mappings
  await customer(emu, cred('ipdr'), 'C')
  r = await emu.call('POST', PATH, {
    ...mcred('ipdr'),
    UserID: 'C',
    ipsubnet: '192.168.0.0/16',
    starttime: '0',
  })
  t.equal(r.status, 200)
  r = await emu.call('GET', PATH, mcred('ipdr'))
  t.equal(r.json.length, 1)
  r = await emu.call('GET', PATH, mcred())
  t.equal(r.json.length, 2)
  r = await emu.call('POST', PATH, { ...mcred('ipdr'), UserID: 'A', ipsubnet: '10.0.0.1', starttime: '0' })
  t.strictSame(r.json, { status: 'Error', message: 'IPDR Customer not found' })
})
