/**
 * Who had this IP, by name (SPEC 17): mapping lookups, listings and reads
 * answer each mapping with its customer's UserID beside Trisul's
 * ipdr_customer_id, from the customers listing of the same credentials
 * (fetched once for both); null when the customer is unknown; a customers
 * listing that fails fails the mapping listing rather than name no one.
 */
import t from 'tap'
import { request } from 'undici'
import { buildListingEntry } from '../../../src/cache/listing-entry.js'
import { customerNames, namedMappings } from '../../../src/cache/mapping-names.js'
import { runSteps } from '../../../src/cache/steps.js'
import { RESOURCE_BY_NAME } from '../../../src/resources.js'
import { startUsersEmulator } from '../../helpers/emulator.js'
import { makePolicy, startGateway } from '../../helpers/gateway.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

const AUTH = { authorization: 'Bearer tok-1234', 'x-trisul-username': 'crm' }

async function get(url: string) {
  const res = await request(url, { headers: AUTH })
  return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown>[] }
}

t.test('the emulator: lookup, listing and read name the customer', async (t) => {
  const emu = await startUsersEmulator(t, { crm: 'tok-1234' })
  const gw = await startGateway(t, { policy: await makePolicy(t), upstreamUrl: emu.url })
  const write = async (method: string, path: string, body: unknown) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'POST',
      headers: { ...AUTH, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    t.equal(res.statusCode, 200, `${method} ${path}`)
    await res.body.text()
  }
  await write('POST', '/api/ipdrcustomers', { UserID: 'NB4002', Name: 'Asha Rao' })
  await write('POST', '/api/ipdrcustomers', { UserID: 'NB4003', Name: 'Ravi' })
  await write('POST', '/api/ipdrcustomers_mapping', {
    UserID: 'NB4003',
    ipsubnet: '10.1.0.0/24',
    starttime: '0',
  })
  await write('POST', '/api/ipdrcustomers_mapping', {
    UserID: 'NB4002',
    ipsubnet: '10.2.0.7',
    starttime: '0',
  })

  const lookup = await get(`${gw.url}/api/ipdrcustomers_mapping?ip=10.1.0.9&at=1735669799`)
  t.equal(lookup.status, 200)
  t.equal(lookup.body.length, 1)
  t.equal(lookup.body[0]?.UserID, 'NB4003', 'the lookup names the customer')
  t.type(lookup.body[0]?.ipdr_customer_id, 'number', "beside Trisul's id")

  const listing = await get(`${gw.url}/api/ipdrcustomers_mapping`)
  t.same(
    listing.body.map((m) => [m.ipsubnet, m.UserID]),
    [
      ['10.1.0.0/24', 'NB4003'],
      ['10.2.0.7', 'NB4002'],
    ],
    'every record of the listing, in Trisul order',
  )
  const upstream = await request(`${emu.url}/api/ipdrcustomers_mapping`, {
    method: 'GET',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ api_token: 'tok-1234', username: 'crm', context: 'default' }),
  })
  const trisul = (await upstream.body.json()) as Record<string, unknown>[]
  t.same(
    listing.body.map(({ UserID: _, ...rest }) => rest),
    trisul,
    'otherwise what Trisul answers',
  )

  const read = await get(`${gw.url}/api/ipdrcustomers_mapping/NB4002`)
  t.same(
    read.body.map((m) => [m.ipsubnet, m.UserID]),
    [['10.2.0.7', 'NB4002']],
  )
  const filtered = await get(`${gw.url}/api/ipdrcustomers_mapping?ipsubnet=10.2.0.7`)
  t.equal(filtered.body[0]?.UserID, 'NB4002', 'filters answer the same records')
})

t.test('one customers fetch for both listings; an unknown customer is null', async (t) => {
  const upstream = await startRecordingUpstream((req) =>
    req.url.startsWith('/api/ipdrcustomers_mapping')
      ? {
          kind: 'json',
          body: [
            {
              id: 1,
              ipdr_customer_id: 5,
              ipsubnet: '10.0.0.1',
              starttime: 0,
              endtime: null,
              terminalid: 'T1',
            },
            {
              id: 2,
              ipdr_customer_id: 77,
              ipsubnet: '10.0.0.2',
              starttime: 0,
              endtime: null,
              terminalid: 'T2',
            },
          ],
        }
      : { kind: 'json', body: [{ id: 5, UserID: 'B68t19', Name: 'Trisul' }] },
  )
  t.teardown(() => upstream.close())
  const gw = await startGateway(t, { policy: await makePolicy(t), upstreamUrl: upstream.url })
  const [a, b] = await Promise.all([
    get(`${gw.url}/api/ipdrcustomers_mapping`),
    get(`${gw.url}/api/ipdrcustomers`),
  ])
  t.equal(a.status, 200)
  t.equal(b.status, 200)
  t.same(
    a.body.map((m) => m.UserID),
    ['B68t19', null],
  )
  const customerFetches = upstream.requests.filter((r) => r.url === '/api/ipdrcustomers').length
  t.equal(customerFetches, 1, 'the mapping fill shares the customers fetch')
  await get(`${gw.url}/api/ipdrcustomers_mapping?ip=10.0.0.2`)
  t.equal(upstream.requests.length, 2, 'both cached after')
})

t.test("a customers listing that fails is the mapping listing's failure", async (t) => {
  const upstream = await startRecordingUpstream((req) =>
    req.url.startsWith('/api/ipdrcustomers_mapping')
      ? { kind: 'json', body: [{ id: 1, ipdr_customer_id: 5, ipsubnet: '10.0.0.1', starttime: 0 }] }
      : {
          kind: 'json',
          body: { status: 'Error', message: 'The user (crm) is not allowed to access the context default' },
        },
  )
  t.teardown(() => upstream.close())
  const gw = await startGateway(t, { policy: await makePolicy(t), upstreamUrl: upstream.url })
  const res = await request(`${gw.url}/api/ipdrcustomers_mapping`, { headers: AUTH })
  t.equal(res.statusCode, 403)
  t.match(await res.body.text(), /not allowed to access the context/)
})

t.test('the bytes: one member appended, everything else kept', async (t) => {
  const customers = buildListingEntry(
    Buffer.from('[{"id":5,"UserID":"U5"},{"id":"6","UserID":"U6"},{"id":7}]'),
    RESOURCE_BY_NAME.customers,
  )
  const names = runSteps(customerNames(customers))
  t.same(
    [...names],
    [
      ['5', 'U5'],
      ['6', 'U6'],
    ],
  )
  const raw =
    '[ {"id":1, "ipdr_customer_id": 5 } ,{},{"ipdr_customer_id":"6","UserID":"mine"},{"ipdr_customer_id":9}]'
  const out = runSteps(namedMappings(buildListingEntry(Buffer.from(raw), RESOURCE_BY_NAME.mappings), names))
  t.equal(
    out.toString(),
    '[{"id":1, "ipdr_customer_id": 5 ,"UserID":"U5"},{"UserID":null},{"ipdr_customer_id":"6","UserID":"mine"},{"ipdr_customer_id":9,"UserID":null}]',
  )
  t.same(
    JSON.parse(out.toString()).map((r: Record<string, unknown>) => r.UserID),
    ['U5', null, 'mine', null],
  )
})
