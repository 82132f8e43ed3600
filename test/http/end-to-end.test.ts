/**
 * The gateway in front of the real emulator (SQLite), over real sockets:
 * every operation with header credentials, read-after-write across clients,
 * ETags, encodings, the mapping lookups.
 */
import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startEmulator } from '../../src/emulator/index.js'
import { makePolicy, startGateway } from '../helpers/gateway.js'

const A = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }
const B = { authorization: `Basic ${Buffer.from('bob:tokB').toString('base64')}` }
const JSON_HEADERS = { 'content-type': 'application/json' }

async function setup(t: Test) {
  const emu = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: [
      { name: 'alice', token: 'tokA', contexts: null },
      { name: 'bob', token: 'tokB', contexts: null },
    ],
    contexts: ['default', 'other'],
    seed: 30,
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  const policy = await makePolicy(t, { gateway: { cache: { ttlSeconds: 300 } } })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const call = async (method: string, path: string, headers: Record<string, string>, body?: unknown) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'GET',
      headers: { ...headers, ...(body === undefined ? {} : JSON_HEADERS) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const buf = Buffer.from(await res.body.arrayBuffer())
    return { status: res.statusCode, headers: res.headers, buf, json: () => JSON.parse(buf.toString()) }
  }
  return { emu, gw, call }
}

t.test('every customer operation through the gateway', async (t) => {
  const { call } = await setup(t)
  const first = await call('GET', '/api/ipdrcustomers', A)
  t.equal(first.status, 200)
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(first.headers['cache-control'], 'private')
  t.equal(first.json().length, 30)
  const second = await call('GET', '/api/ipdrcustomers', A)
  t.equal(second.headers['x-cache'], 'HIT')
  t.same(second.buf, first.buf, 'the same bytes')

  const created = await call('POST', '/api/ipdrcustomers', A, {
    UserID: 'NB4002',
    Name: 'Asha Rao',
    Email: 'asha@example.in',
    PhoneNumber: '9845012345',
  })
  t.equal(created.status, 200)
  t.match(created.json(), { UserID: 'NB4002', Name: 'Asha Rao', id: Number })
  const dup = await call('POST', '/api/ipdrcustomers', A, { UserID: 'NB4002', Name: 'Again' })
  t.equal(dup.status, 409)
  t.equal(dup.json().message, 'Duplicate UserID : NB4002')

  const listed = await call('GET', '/api/ipdrcustomers', A)
  t.equal(listed.headers['x-cache'], 'MISS', 'the write invalidated the listing')
  t.equal(listed.json().length, 31)
  const one = await call('GET', '/api/ipdrcustomers/NB4002', A)
  t.equal(one.status, 200)
  t.equal(one.headers['x-cache'], 'HIT')
  t.equal(one.json().Name, 'Asha Rao')
  t.equal((await call('GET', '/api/ipdrcustomers/NOPE', A)).status, 404)

  const replaced = await call('PUT', '/api/ipdrcustomers/NB4002', A, {
    UserID: 'NB4002',
    Name: 'Asha R',
    Address: 'MG Road, Bengaluru',
    Email: 'asha@example.in',
    PhoneNumber: '9845012345',
    AltPhoneNumber: '',
  })
  t.equal(replaced.status, 200)
  t.equal(replaced.json().Address, 'MG Road, Bengaluru')
  const patched = await call('PATCH', '/api/ipdrcustomers/NB4002', A, { Name: 'Asha Rao K' })
  t.equal(patched.json().Name, 'Asha Rao K')
  t.equal((await call('GET', '/api/ipdrcustomers?UserID=NB4002', A)).json()[0].Name, 'Asha Rao K')
  const deleted = await call('DELETE', '/api/ipdrcustomers/NB4002', A)
  t.equal(deleted.status, 200)
  t.equal(deleted.json().UserID, 'NB4002')
  t.equal((await call('GET', '/api/ipdrcustomers/NB4002', A)).status, 404)
  t.equal((await call('DELETE', '/api/ipdrcustomers/NB4002', A)).status, 404)
})

t.test('read-after-write across two clients of one context', async (t) => {
  const { call } = await setup(t)
  t.equal((await call('GET', '/api/ipdrcustomers', B)).json().length, 30)
  t.equal((await call('GET', '/api/ipdrcustomers', B)).headers['x-cache'], 'HIT')
  await call('POST', '/api/ipdrcustomers', A, { UserID: 'ZZ1', Name: 'New' })
  const after = await call('GET', '/api/ipdrcustomers', B)
  t.equal(
    after.headers['x-cache'],
    'HIT',
    'the write was applied to the cached listing (SPEC 19), not dropped',
  )
  t.ok(
    after.json().some((c: { UserID: string }) => c.UserID === 'ZZ1'),
    "B sees A's write at once",
  )
  // Another context's listing is untouched.
  const other = await call('GET', '/api/ipdrcustomers', { ...B, 'x-trisul-context': 'other' })
  t.same(other.json(), [])
})

t.test('ETags, 304 and encodings made once per entry', async (t) => {
  const { call } = await setup(t)
  const plain = await call('GET', '/api/ipdrcustomers', A)
  const etag = plain.headers.etag as string
  t.match(etag, /^"[^"]+"$/, 'a strong ETag')
  const revalidated = await call('GET', '/api/ipdrcustomers', { ...A, 'if-none-match': etag })
  t.equal(revalidated.status, 304)
  t.equal(revalidated.buf.length, 0)
  for (const [enc, decode] of [
    ['gzip', gunzipSync],
    ['br', brotliDecompressSync],
  ] as const) {
    const res = await call('GET', '/api/ipdrcustomers', { ...A, 'accept-encoding': enc })
    t.equal(res.headers['content-encoding'], enc)
    t.match(res.headers.vary, /Accept-Encoding/)
    t.same(decode(res.buf), plain.buf, `${enc} decompresses to the exact upstream bytes`)
    t.not(res.headers.etag, etag, 'each coding is its own representation')
    const again = await call('GET', '/api/ipdrcustomers', { ...A, 'accept-encoding': enc })
    t.same(again.buf, res.buf)
    t.equal(
      (
        await call('GET', '/api/ipdrcustomers', {
          ...A,
          'accept-encoding': enc,
          'if-none-match': res.headers.etag as string,
        })
      ).status,
      304,
    )
  }
  const q = await call('GET', '/api/ipdrcustomers?limit=5&offset=2', A)
  t.equal(q.headers['x-total-count'], '30')
  t.equal(q.json().length, 5)
  t.same(q.json(), plain.json().slice(2, 7))
  const q304 = await call('GET', '/api/ipdrcustomers?limit=5&offset=2', {
    ...A,
    'if-none-match': q.headers.etag as string,
  })
  t.equal(q304.status, 304)
})

t.test('mappings: create, lookups by ip and time, read by UserID, delete', async (t) => {
  const { call } = await setup(t)
  const customers = (await call('GET', '/api/ipdrcustomers', A)).json() as { id: number; UserID: string }[]
  const [c1, c2] = customers as [{ id: number; UserID: string }, { id: number; UserID: string }]
  const m1 = await call('POST', '/api/ipdrcustomers_mapping', A, {
    UserID: c1.UserID,
    ipsubnet: '192.168.1.0/24',
    starttime: '1000',
    endtime: '2000',
    terminalid: 'T1',
  })
  t.equal(m1.status, 200, m1.buf.toString())
  t.match(m1.json(), { ipdr_customer_id: c1.id, ipsubnet: '192.168.1.0/24', starttime: 1000, endtime: 2000 })
  const clash = await call('POST', '/api/ipdrcustomers_mapping', A, {
    UserID: c2.UserID,
    ipsubnet: '192.168.1.7',
    starttime: '1500',
  })
  t.equal(clash.status, 409, 'an overlapping mapping of another customer')
  t.match(clash.json().message, /Duplicate Mapping/)
  t.equal(
    (
      await call('POST', '/api/ipdrcustomers_mapping', A, {
        UserID: c2.UserID,
        ipsubnet: '192.168.1.7',
        starttime: '2000',
      })
    ).status,
    200,
  )
  t.equal(
    (
      await call('POST', '/api/ipdrcustomers_mapping', A, {
        UserID: c2.UserID,
        ipsubnet: '2001:db8::/64',
        starttime: '0',
      })
    ).status,
    200,
  )
  const at1500 = (await call('GET', '/api/ipdrcustomers_mapping?ip=192.168.1.7&at=1500', A)).json()
  t.same(
    at1500.map((m: { ipdr_customer_id: number }) => m.ipdr_customer_id),
    [c1.id],
  )
  const at2500 = (await call('GET', '/api/ipdrcustomers_mapping?ip=192.168.1.7&at=2500', A)).json()
  t.same(
    at2500.map((m: { ipdr_customer_id: number }) => m.ipdr_customer_id),
    [c2.id],
  )
  t.equal((await call('GET', '/api/ipdrcustomers_mapping?ip=2001:db8::42', A)).json().length, 1)
  const read = await call('GET', `/api/ipdrcustomers_mapping/${c2.UserID}`, A)
  t.equal(read.status, 200)
  t.equal(read.json().length, 2)
  t.same((await call('GET', `/api/ipdrcustomers_mapping/${customers[5]?.UserID}`, A)).json(), [])
  t.equal((await call('GET', '/api/ipdrcustomers_mapping/NOPE', A)).status, 404)
  const del = await call('DELETE', `/api/ipdrcustomers_mapping/${c1.UserID}`, A, {
    ipsubnet: '192.168.1.0/24',
  })
  t.equal(del.status, 200)
  t.equal((await call('GET', '/api/ipdrcustomers_mapping?ip=192.168.1.7&at=1500', A)).json().length, 0)
})

t.test('upstream errors through the emulator', async (t) => {
  const { call } = await setup(t)
  t.equal(
    (await call('GET', '/api/ipdrcustomers', { authorization: 'Bearer wrong', 'x-trisul-username': 'alice' }))
      .status,
    401,
  )
  const badCtx = await call('GET', '/api/ipdrcustomers', { ...A, 'x-trisul-context': 'nosuch' })
  t.equal(badCtx.status, 400)
  t.equal(badCtx.json().code, 'IPDR_GW_UPSTREAM_INVALID_CONTEXT')
  const noCustomer = await call('POST', '/api/ipdrcustomers_mapping', A, {
    UserID: 'NOPE',
    ipsubnet: '10.0.0.1',
    starttime: '0',
  })
  t.equal(noCustomer.status, 404)
})
