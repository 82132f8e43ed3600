/**
 * SPEC 17, `mappings.delete: expire`: a mapping DELETE sets the mapping's endtime to now instead of
 * deleting it, so who had the address before stays answerable (against the real emulator).
 */
import t from 'tap'
import { request } from 'undici'
import { startUsersEmulator } from '../../helpers/emulator.js'
import { ALL_OPERATIONS, makePolicy, startGateway } from '../../helpers/gateway.js'

const HEADERS = {
  authorization: 'Bearer tokA',
  'x-trisul-username': 'alice',
  'content-type': 'application/json',
}

t.test('expire: the DELETE ends the mapping now; the past still answers who had the address', async (t) => {
  const emu = await startUsersEmulator(t, { alice: 'tokA' })
  const policy = await makePolicy(t, {
    gateway: { mappings: { delete: 'expire' } },
    consumers: { default: { operations: ALL_OPERATIONS } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const send = async (method: string, path: string, body?: unknown) => {
    const r = await request(`${gw.url}${path}`, {
      method: method as 'GET',
      headers: HEADERS,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    // biome-ignore lint/suspicious/noExplicitAny: the records' JSON
    return { status: r.statusCode, json: (await r.body.json()) as any }
  }
  t.equal((await send('POST', '/api/ipdrcustomers', { UserID: 'EXP1', Name: 'Asha' })).status, 200)
  const created = await send('POST', '/api/ipdrcustomers_mapping', {
    UserID: 'EXP1',
    ipsubnet: '10.9.0.0/24',
    starttime: '0',
    terminalid: 'T1',
  })
  t.equal(created.status, 200)
  const before = Math.floor(Date.now() / 1000)
  const deleted = await send('DELETE', '/api/ipdrcustomers_mapping/EXP1', { ipsubnet: '10.9.0.0/24' })
  const after = Math.floor(Date.now() / 1000)
  t.equal(deleted.status, 200)
  t.ok(deleted.json.endtime >= before && deleted.json.endtime <= after, `ended now (${deleted.json.endtime})`)
  const listing = await send('GET', '/api/ipdrcustomers_mapping')
  t.equal(listing.json.length, 1, 'the mapping is still there')
  t.equal(listing.json[0].endtime, deleted.json.endtime)
  const past = await send('GET', `/api/ipdrcustomers_mapping?ip=10.9.0.5&at=${before - 60}`)
  t.equal(past.json.length, 1, 'who had 10.9.0.5 a minute ago: still answered')
  const later = await send('GET', `/api/ipdrcustomers_mapping?ip=10.9.0.5&at=${after + 60}`)
  t.same(later.json, [], 'and nobody has it now')
})
