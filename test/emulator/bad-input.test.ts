// Bad input of every kind gets an envelope, never a crash or a stack, and leaves the data as it was.
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import t from 'tap'
import { request } from 'undici'
import { cred, mcred, startTestEmulator, type TestEmulator } from './harness.js'

const C = '/api/ipdrcustomers'
const M = '/api/ipdrcustomers_mapping'
const LIMIT = 4096

async function snapshot(emu: TestEmulator) {
  const customers = await emu.call('GET', C, cred())
  const mappings = await emu.call('GET', M, mcred())
  return { customers: customers.json, mappings: mappings.json }
}

async function seeded(t: Parameters<typeof startTestEmulator>[0]) {
  const emu = await startTestEmulator(t, { bodyLimit: LIMIT })
  await emu.call('POST', C, { ...cred(), UserID: 'U1', Name: 'Asha', Email: 'asha@example.in' })
  await emu.call('POST', M, { ...mcred(), UserID: 'U1', ipsubnet: '10.0.0.0/24', starttime: '0' })
  return emu
}

const long = (n: number) => 'x'.repeat(n)

t.test('wrong types, unknown fields, over-long strings, bad values', async (t) => {
  const emu = await seeded(t)
  const before = await snapshot(emu)
  t.equal(before.customers.length, 1)

  const customerCases: [string, string, object, string][] = [
    ['POST', C, { UserID: 'U2', Name: 5 }, 'Invalid field : Name must be a string'],
    ['POST', C, { UserID: 123, Name: 'x' }, 'Invalid field : UserID must be a string'],
    ['POST', C, { UserID: 'U2', Name: 'x', Address: null }, 'Invalid field : Address must be a string'],
    ['POST', C, { UserID: 'U2', Name: 'x', Email: {} }, 'Invalid field : Email must be a string'],
    [
      'POST',
      C,
      { UserID: 'U2', Name: 'x', PhoneNumber: [9876543210] },
      'Invalid field : PhoneNumber must be a string',
    ],
    [
      'POST',
      C,
      { UserID: 'U2', Name: 'x', AltPhoneNumber: true },
      'Invalid field : AltPhoneNumber must be a string',
    ],
    ['POST', C, { UserID: 'U2', Name: 'x', Nmae: 'typo' }, 'Unknown field : Nmae'],
    ['POST', C, { UserID: 'U2', Name: 'x', id: 7 }, 'Unknown field : id'],
    ['POST', C, { UserID: 'U2', Name: long(257) }, 'Invalid field : Name is longer than 256 characters'],
    [
      'POST',
      C,
      { UserID: 'U2', Name: 'x', Address: long(300) },
      'Invalid field : Address is longer than 256 characters',
    ],
    ['POST', C, { UserID: long(65), Name: 'x' }, 'Invalid field : UserID is longer than 64 characters'],
    ['POST', C, { UserID: 'has space', Name: 'x' }, 'Invalid UserID : has space'],
    ['POST', C, { UserID: 'a/b', Name: 'x' }, 'Invalid UserID : a/b'],
    ['POST', C, { UserID: 'tab\there', Name: 'x' }, 'Invalid UserID : tab?here'],
    ['PATCH', `${C}/U1`, { Email: 5 }, 'Invalid field : Email must be a string'],
    ['PATCH', `${C}/U1`, { UserID: '' }, 'Missing field : UserID'],
    ['PUT', `${C}/U1`, { Name: 'x', Extra: 1 }, 'Unknown field : Extra'],
    ['DELETE', `${C}/U1`, { Name: 'x' }, 'Unknown field : Name'],
    ['GET', C, { UserID: 'U1' }, 'Unknown field : UserID'],
  ]
  for (const [method, path, body, message] of customerCases) {
    const r = await emu.call(method, path, { ...cred(), ...body })
    t.equal(r.status, 200, `${message}: status`)
    t.strictSame(r.json, { status: 'Error', message }, message)
  }

  const mappingCases: [string, string, object, string][] = [
    ['POST', M, { UserID: 'U1', ipsubnet: '300.1.1.1', starttime: '0' }, 'Invalid ipsubnet : 300.1.1.1'],
    ['POST', M, { UserID: 'U1', ipsubnet: '10.0.0.0/33', starttime: '0' }, 'Invalid ipsubnet : 10.0.0.0/33'],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: 'fe80::1%eth0', starttime: '0' },
      'Invalid ipsubnet : fe80::1%eth0',
    ],
    ['POST', M, { UserID: 'U1', ipsubnet: ' 10.0.0.1', starttime: '0' }, 'Invalid ipsubnet :  10.0.0.1'],
    ['POST', M, { UserID: 'U1', ipsubnet: '010.0.0.1', starttime: '0' }, 'Invalid ipsubnet : 010.0.0.1'],
    ['POST', M, { UserID: 'U1', ipsubnet: '1.2.3.04', starttime: '0' }, 'Invalid ipsubnet : 1.2.3.04'],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '::ffff:1.2.3.04', starttime: '0' },
      'Invalid ipsubnet : ::ffff:1.2.3.04',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.0.0.0/024', starttime: '0' },
      'Invalid ipsubnet : 10.0.0.0/024',
    ],
    ['POST', M, { UserID: 'U1', ipsubnet: '', starttime: '0' }, 'Missing field : ipsubnet'],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: 167772161, starttime: '0' },
      'Invalid field : ipsubnet must be a string',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: long(300), starttime: '0' },
      'Invalid field : ipsubnet is longer than 256 characters',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: 'yesterday' },
      'Invalid starttime : yesterday (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: -1 },
      'Invalid starttime : -1 (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: 1.5 },
      'Invalid starttime : 1.5 (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '1e5' },
      'Invalid starttime : 1e5 (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: true },
      'Invalid starttime : true (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '9999999999999999' },
      'Invalid starttime : 9999999999999999 (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '5', endtime: 'never' },
      'Invalid endtime : never (expected Unix seconds)',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '5', endtime: '4' },
      'Invalid endtime : endtime must be greater than starttime',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '0', terminalid: 9 },
      'Invalid field : terminalid must be a string',
    ],
    [
      'POST',
      M,
      { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '0', terminalid: long(257) },
      'Invalid field : terminalid is longer than 256 characters',
    ],
    ['POST', M, { UserID: 'U1', ipsubnet: '10.1.0.1', starttime: '0', Name: 'x' }, 'Unknown field : Name'],
    [
      'PUT',
      `${M}/U1`,
      { ipsubnet: '10.0.0.0/24', starttime: '5', endtime: '5' },
      'Invalid endtime : endtime must be greater than starttime',
    ],
    [
      'PATCH',
      `${M}/U1`,
      { ipsubnet: '10.0.0.0/24', starttime: 'x' },
      'Invalid starttime : x (expected Unix seconds)',
    ],
    [
      'PATCH',
      `${M}/U1`,
      { ipsubnet: '10.0.0.0/24', ipdr_customer_id: 2 },
      'Unknown field : ipdr_customer_id',
    ],
  ]
  for (const [method, path, body, message] of mappingCases) {
    const r = await emu.call(method, path, { ...mcred(), ...body })
    t.equal(r.status, 422, `${message}: status`)
    t.strictSame(r.json, { status: 'Error', message }, message)
  }

  // echoed values are bounded
  const r = await emu.call('POST', C, { ...cred(), [long(1000)]: 1 })
  t.ok(r.json.message.length < 100, 'a long unknown field name is cut in the message')

  t.strictSame(await snapshot(emu), before, 'nothing changed')
})

t.test('prototype keys are just unknown fields', async (t) => {
  const emu = await seeded(t)
  const before = await snapshot(emu)
  const raw = `{"api_token":"test-token-not-secret","username":"admin","contextname":"default","UserID":"U9","Name":"x","__proto__":{"Name":"polluted"}}`
  let r = await emu.call('POST', C, raw)
  t.strictSame(r.json, { status: 'Error', message: 'Unknown field : __proto__' })
  r = await emu.call('POST', C, { ...cred(), UserID: 'U9', Name: 'x', constructor: 'y' })
  t.strictSame(r.json, { status: 'Error', message: 'Unknown field : constructor' })
  t.strictSame(await snapshot(emu), before)
})

t.test('bodies over the limit, on every method, get an envelope', async (t) => {
  const emu = await seeded(t)
  const before = await snapshot(emu)
  const big = { ...cred(), UserID: 'U3', Name: 'x', Address: long(LIMIT) }
  const message = `Request body too large (limit ${LIMIT} bytes)`
  for (const [method, path, status] of [
    ['POST', C, 200],
    ['PUT', `${C}/U1`, 200],
    ['PATCH', `${C}/U1`, 200],
    ['DELETE', `${C}/U1`, 200],
    ['GET', C, 200],
    ['POST', M, 422],
    ['GET', M, 422],
  ] as const) {
    const r = await emu.call(method, path, big)
    t.equal(r.status, status, `${method} ${path}`)
    t.strictSame(r.json, { status: 'Error', message }, `${method} ${path}`)
  }

  // a GET body sent chunked (no Content-Length) is cut off at the limit too
  async function* chunks() {
    for (let i = 0; i < 8; i++) yield long(1024)
  }
  const res = await request(`${emu.url}${C}`, { method: 'GET', body: Readable.from(chunks()) })
  t.equal(res.statusCode, 200)
  t.strictSame(await res.body.json(), { status: 'Error', message })

  // exactly at the limit is fine
  const exact = JSON.stringify(cred())
  const r = await emu.call('GET', C, exact + ' '.repeat(LIMIT - Buffer.byteLength(exact)))
  t.equal(r.status, 200)
  t.equal(r.json.length, 1)
  t.strictSame(await snapshot(emu), before)
})

t.test('a bad Content-Type header and a bad URL get envelopes', async (t) => {
  const emu = await seeded(t)
  let r = await emu.call('POST', C, { ...cred(), UserID: 'U5', Name: 'x' }, { 'content-type': 'not a type' })
  t.equal(r.status, 200)
  t.strictSame(r.json, { status: 'Error', message: 'Invalid Content-Type' })
  r = await emu.call('PUT', `${M}/%E0%A4%A`, { ...mcred(), ipsubnet: '10.0.0.0/24', starttime: '0' })
  t.equal(r.status, 422)
  t.strictSame(r.json, { status: 'Error', message: 'Bad request' })
  // a UserID longer than any valid one is simply not found
  r = await emu.call('DELETE', `${C}/${long(500)}`, cred())
  t.strictSame(r.json, { status: 'Error', message: 'IPDR Customer not found' })
})

t.test('a client that hangs up in the middle of a GET body does not hurt the server', async (t) => {
  const emu = await seeded(t)
  const { port } = new URL(emu.url)
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => {
      socket.write('GET /api/ipdrcustomers HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"api_tok')
      setTimeout(() => socket.destroy(), 50)
    })
    socket.on('close', () => resolve())
    socket.on('error', reject)
  })
  const r = await emu.call('GET', C, cred())
  t.equal(r.status, 200)
  t.equal(r.json.length, 1)
})

t.test('no response ever carries a stack trace', async (t) => {
  const emu = await seeded(t)
  for (const body of ['{', '[]', '{"api_token":{"$gt":""}}', long(LIMIT + 1)]) {
    for (const [method, path] of [
      ['GET', C],
      ['POST', M],
    ]) {
      const r = await emu.call(method as string, path as string, body)
      t.notMatch(r.text, /at .*\.(js|ts):\d+/, `${method} ${path}`)
      t.equal(typeof r.json?.message, 'string')
    }
  }
})
