/**
 * SPEC 17, `validation.requiredFields`: an ISP that requires more than Trisul (DoT's CAF: Address)
 * gets a 400 naming the field on create and replace, single or sync, and nothing reaches Trisul.
 */
import t from 'tap'
import { request } from 'undici'
import { makePolicy, startGateway } from '../../helpers/gateway.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

const HEADERS = {
  authorization: 'Bearer tok',
  'x-trisul-username': 'crm',
  'content-type': 'application/json',
}

t.test('a required field missing or empty is a 400 naming it, never sent', async (t) => {
  const upstream = await startRecordingUpstream((req) => ({
    kind: 'json',
    body: req.method === 'GET' ? [] : { id: 1 },
  }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { validation: { requiredFields: ['UserID', 'Name', 'Address'] } },
    consumers: {
      default: { operations: { customers: ['list', 'create', 'replace', 'update', 'sync'] } },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const send = async (method: string, path: string, body: unknown) => {
    const r = await request(`${gw.url}${path}`, {
      method: method as 'POST',
      headers: HEADERS,
      body: JSON.stringify(body),
    })
    return { status: r.statusCode, json: (await r.body.json()) as { code?: string; message?: string } }
  }
  const missing = await send('POST', '/api/ipdrcustomers', { UserID: 'CAF1', Name: 'Asha' })
  t.equal(missing.status, 400)
  t.match(missing.json, { code: 'IPDR_GW_VALIDATION', message: 'Missing field: Address' })
  const empty = await send('POST', '/api/ipdrcustomers', { UserID: 'CAF1', Name: 'Asha', Address: '' })
  t.equal(empty.status, 400)
  t.match(empty.json, { message: 'Address is required and must not be empty' })
  const full = {
    UserID: 'CAF1',
    Name: 'Asha',
    Address: 'MG Road',
    Email: '',
    PhoneNumber: '',
    AltPhoneNumber: '',
  }
  const replace = await send('PUT', '/api/ipdrcustomers/CAF1', { ...full, Address: '' })
  t.equal(replace.status, 400, 'replace too')
  t.equal(upstream.requests.filter((r) => r.method !== 'GET').length, 0, 'nothing was sent upstream')
  t.equal(
    (await send('PATCH', '/api/ipdrcustomers/CAF1', { Address: 'New' })).status,
    200,
    'an update is not a create',
  )
  t.equal((await send('POST', '/api/ipdrcustomers', full)).status, 200, 'a complete record passes')

  const sync = await request(`${gw.url}/sync/customers?wait=10`, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify([{ UserID: 'CAF2', Name: 'No address' }]),
  })
  const doc = (await sync.body.json()) as { plan: { invalid: number }; errors: { message: string }[] }
  t.equal(doc.plan.invalid, 1, 'a sync record without it is invalid')
  t.match(doc.errors[0]?.message, /Missing field: Address/)
})
