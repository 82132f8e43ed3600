// The customers API of shared/SPEC.md section 2, every operation, in both dialects, over a real socket.
import { Readable } from 'node:stream'
import t from 'tap'
import { cred, mcred, startTestEmulator, v1cred } from './harness.js'

const DIALECTS = [
  { dialect: 'v1' as const, c: () => v1cred(), m: () => v1cred() },
  { dialect: 'v2' as const, c: () => cred(), m: () => mcred() },
]

for (const { dialect, c, m } of DIALECTS) {
  t.test(`customers CRUD (${dialect})`, async (t) => {
    const emu = await startTestEmulator(t, { dialect })

    // list (GET with a body), empty at first
    let r = await emu.call('GET', '/api/ipdrcustomers', c())
    t.equal(r.status, 200)
    t.same(r.json, [])

    // create: UserID and Name required, the rest default to ""
    r = await emu.call('POST', '/api/ipdrcustomers', {
      ...c(),
      UserID: 'B68t19',
      Name: 'Ravi Kumar',
      Address: '12, MG Road, Bengaluru',
      Email: 'ravi@example.in',
      PhoneNumber: '9876543210',
      AltPhoneNumber: '8765432109',
    })
    t.equal(r.status, 200)
    t.strictSame(r.json, {
      id: 1,
      Name: 'Ravi Kumar',
      Address: '12, MG Road, Bengaluru',
      Email: 'ravi@example.in',
      PhoneNumber: '9876543210',
      AltPhoneNumber: '8765432109',
      UserID: 'B68t19',
    })
    t.same(Object.keys(r.json), ['id', 'Name', 'Address', 'Email', 'PhoneNumber', 'AltPhoneNumber', 'UserID'])

    r = await emu.call('POST', '/api/ipdrcustomers', { ...c(), UserID: 'U1001', Name: 'Meera Nair' })
    t.strictSame(r.json, {
      id: 2,
      Name: 'Meera Nair',
      Address: '',
      Email: '',
      PhoneNumber: '',
      AltPhoneNumber: '',
      UserID: 'U1001',
    })

    // the listing is ordered by id
    r = await emu.call('GET', '/api/ipdrcustomers', c())
    t.same(
      r.json.map((x: { UserID: string }) => x.UserID),
      ['B68t19', 'U1001'],
    )

    // PATCH: a subset
    r = await emu.call('PATCH', '/api/ipdrcustomers/U1001', { ...c(), Email: 'meera@example.in' })
    t.equal(r.status, 200)
    t.equal(r.json.Email, 'meera@example.in')
    t.equal(r.json.Name, 'Meera Nair')
    t.equal(r.json.id, 2)

    // PUT: all six fields replace the record
    r = await emu.call('PUT', '/api/ipdrcustomers/U1001', {
      ...c(),
      UserID: 'U1001',
      Name: 'Meera S Nair',
      Address: 'Kochi',
      Email: 'msn@example.in',
      PhoneNumber: '7000000001',
      AltPhoneNumber: '',
    })
    t.strictSame(r.json, {
      id: 2,
      Name: 'Meera S Nair',
      Address: 'Kochi',
      Email: 'msn@example.in',
      PhoneNumber: '7000000001',
      AltPhoneNumber: '',
      UserID: 'U1001',
    })

    // PUT with only Name: absent fields become "" (a replace, not a merge), UserID from the path
    r = await emu.call('PUT', '/api/ipdrcustomers/U1001', { ...c(), Name: 'Meera' })
    t.strictSame(r.json, {
      id: 2,
      Name: 'Meera',
      Address: '',
      Email: '',
      PhoneNumber: '',
      AltPhoneNumber: '',
      UserID: 'U1001',
    })

    // DELETE returns the deleted record, and deletes the customer's mappings
    r = await emu.call('POST', '/api/ipdrcustomers_mapping', {
      ...m(),
      UserID: 'U1001',
      ipsubnet: '172.27.19.224',
      starttime: '0',
    })
    t.equal(r.status, 200)
    r = await emu.call('DELETE', '/api/ipdrcustomers/U1001', c())
    t.equal(r.status, 200)
    t.equal(r.json.UserID, 'U1001')
    t.equal(r.json.id, 2)
    r = await emu.call('GET', '/api/ipdrcustomers', c())
    t.same(
      r.json.map((x: { UserID: string }) => x.UserID),
      ['B68t19'],
    )
    r = await emu.call('GET', '/api/ipdrcustomers_mapping', m())
    t.same(r.json, [])

    // ids are never reused
    r = await emu.call('POST', '/api/ipdrcustomers', { ...c(), UserID: 'U1002', Name: 'New' })
    t.equal(r.json.id, 3)
  })
}

t.test('PUT with a different body UserID renames the customer; a taken one is a duplicate', async (t) => {
  const emu = await startTestEmulator(t)
  await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'A1', Name: 'One' })
  await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'A2', Name: 'Two' })
  let r = await emu.call('PUT', '/api/ipdrcustomers/A1', { ...cred(), UserID: 'A2', Name: 'One' })
  t.strictSame(r.json, { status: 'Error', message: 'Duplicate UserID : A2' })
  r = await emu.call('PATCH', '/api/ipdrcustomers/A1', { ...cred(), UserID: 'A3' })
  t.equal(r.json.UserID, 'A3')
  t.equal(r.json.id, 1)
  r = await emu.call('PATCH', '/api/ipdrcustomers/A1', { ...cred(), Name: 'x' })
  t.strictSame(r.json, { status: 'Error', message: 'IPDR Customer not found' })
})

t.test('DELETE accepts the path UserID repeated in the body, refuses another', async (t) => {
  const emu = await startTestEmulator(t)
  await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'A1', Name: 'One' })
  let r = await emu.call('DELETE', '/api/ipdrcustomers/A1', { ...cred(), UserID: 'A2' })
  t.equal(r.json.status, 'Error')
  t.match(r.json.message, /^Invalid UserID : the body UserID differs from the path UserID A1/)
  r = await emu.call('DELETE', '/api/ipdrcustomers/A1', { ...cred(), UserID: 'A1' })
  t.equal(r.json.UserID, 'A1')
})

t.test('customer data is scoped per context (v2)', async (t) => {
  const emu = await startTestEmulator(t)
  await emu.call('POST', '/api/ipdrcustomers', { ...cred('default'), UserID: 'X1', Name: 'Default one' })
  // the same UserID may exist in another context
  let r = await emu.call('POST', '/api/ipdrcustomers', { ...cred('ipdr'), UserID: 'X1', Name: 'Ipdr one' })
  t.equal(r.json.Name, 'Ipdr one')
  r = await emu.call('GET', '/api/ipdrcustomers', cred('ipdr', 'limited', 'other-token-not-secret'))
  t.same(
    r.json.map((x: { Name: string }) => x.Name),
    ['Ipdr one'],
  )
  r = await emu.call('GET', '/api/ipdrcustomers', cred('other'))
  t.same(r.json, [])
  r = await emu.call('DELETE', '/api/ipdrcustomers/X1', cred('other'))
  t.strictSame(r.json, { status: 'Error', message: 'IPDR Customer not found' })
  r = await emu.call('GET', '/api/ipdrcustomers', cred('default'))
  t.equal(r.json.length, 1)
})

t.test('the body is read whatever the Content-Type (curl -d sends a form type)', async (t) => {
  const emu = await startTestEmulator(t)
  const r = await emu.call('GET', '/api/ipdrcustomers', JSON.stringify(cred()), {
    'content-type': 'application/x-www-form-urlencoded',
  })
  t.equal(r.status, 200)
  t.same(r.json, [])
})

t.test('HEAD on a listing answers without a body', async (t) => {
  const emu = await startTestEmulator(t)
  const r = await emu.call('HEAD', '/api/ipdrcustomers', cred())
  t.equal(r.status, 200)
  t.equal(r.text, '')
})

t.test('a GET body sent chunked is read too', async (t) => {
  const emu = await startTestEmulator(t)
  const { request } = await import('undici')
  const body = JSON.stringify(cred())
  async function* chunks() {
    yield body.slice(0, 10)
    yield body.slice(10)
  }
  const res = await request(`${emu.url}/api/ipdrcustomers`, { method: 'GET', body: Readable.from(chunks()) })
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), [])
})
