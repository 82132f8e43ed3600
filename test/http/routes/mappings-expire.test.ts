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

/** A request to the gateway at `base` as alice, answered with its status and JSON. */
function sender(base: string) {
  return async (method: string, path: string, body?: unknown) => {
    const r = await request(`${base}${path}`, {
      method: method as 'GET',
      headers: HEADERS,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    // biome-ignore lint/suspicious/noExplicitAny: the records' JSON
    return { status: r.statusCode, json: (await r.body.json()) as any }
  }
}

t.test('expire: the DELETE ends the mapping now; the past still answers who had the address', async (t) => {
  const emu = await startUsersEmulator(t, { alice: 'tokA' })
  const policy = await makePolicy(t, {
    gateway: { mappings: { delete: 'expire' } },
    consumers: { default: { operations: ALL_OPERATIONS } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const send = sender(gw.url)
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

t.test(
  "expire: a sync's delete=true ends the absent customers' mappings and keeps those with history",
  async (t) => {
    const emu = await startUsersEmulator(t, { alice: 'tokA' })
    const policy = await makePolicy(t, {
      gateway: { mappings: { delete: 'expire' } },
      consumers: {
        default: { operations: { ...ALL_OPERATIONS, customers: [...ALL_OPERATIONS.customers, 'sync'] } },
      },
    })
    const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
    const send = sender(gw.url)
    const future = String(Math.floor(Date.now() / 1000) + 86_400)
    for (const UserID of ['KEEP', 'GONE', 'SOON', 'STAY'])
      t.equal((await send('POST', '/api/ipdrcustomers', { UserID, Name: UserID })).status, 200)
    await send('POST', '/api/ipdrcustomers_mapping', { UserID: 'KEEP', ipsubnet: '10.8.0.1', starttime: '0' })
    await send('POST', '/api/ipdrcustomers_mapping', {
      UserID: 'SOON',
      ipsubnet: '10.8.0.2',
      starttime: future,
    })
    const before = Math.floor(Date.now() / 1000)
    const sync = await send('POST', '/sync/customers?mode=apply&delete=true&wait=30', [
      { UserID: 'STAY', Name: 'STAY' },
    ])
    t.equal(sync.status, 202)
    t.equal(sync.json.state, 'done')
    t.same(sync.json.plan.delete, 2, 'GONE (no mappings) and SOON (none started) are deleted')
    t.same(sync.json.absent, ['KEEP'], 'KEEP, whose mapping holds history, is kept and listed')
    t.match(sync.json.mappings, { end: 1, delete: 1 })
    t.equal(sync.json.progress.failed, 0)

    const customers = await send('GET', '/api/ipdrcustomers')
    t.same(customers.json.map((c: { UserID: string }) => c.UserID).sort(), ['KEEP', 'STAY'])
    const mappings = await send('GET', '/api/ipdrcustomers_mapping')
    t.equal(mappings.json.length, 1)
    t.equal(mappings.json[0].UserID, 'KEEP')
    t.ok(mappings.json[0].endtime >= before, "KEEP's mapping ended, not deleted")
    const past = await send('GET', `/api/ipdrcustomers_mapping?ip=10.8.0.1&at=${before - 60}`)
    t.equal(past.json[0]?.UserID, 'KEEP', 'who had 10.8.0.1 before the sync: still answered, by name')
  },
)
