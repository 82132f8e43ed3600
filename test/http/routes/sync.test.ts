/**
 * POST /sync/customers through the real emulator (shared/SPEC.md 10): a CRM
 * list with a known mix gives the exact plan; apply makes exactly those writes
 * and a second apply none; delete only with delete=true; invalid records are
 * reported and never sent; CSV carries mappings (an overlap the emulator
 * refuses is reported); jobs belong to their consumer; the policy's sync
 * operation and the implied ones are enforced.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { parseTrisulTime } from '../../../src/shared/trisul-time.js'
import { startUsersEmulator } from '../../helpers/emulator.js'
import { makePolicy, startGateway } from '../../helpers/gateway.js'

const ALICE = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }
const BOB = { authorization: 'Bearer tokB', 'x-trisul-username': 'bob' }
const SYNC_OPS = {
  customers: ['list', 'read', 'create', 'replace', 'update', 'delete', 'sync'],
  mappings: ['list', 'read', 'create', 'update', 'delete'],
}

async function setup(
  t: Test,
  consumers?: Record<string, Record<string, unknown>>,
  gatewayPolicy: Record<string, unknown> = {},
) {
  const emu = await startUsersEmulator(t, { alice: 'tokA', bob: 'tokB' })
  const policy = await makePolicy(t, {
    gateway: {
      sync: { concurrency: 8, maxWritesPerSecond: 10_000 },
      rateLimit: { max: 100_000 },
      ...gatewayPolicy,
    },
    consumers: consumers ?? { default: { operations: SYNC_OPS } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const call = async (
    method: string,
    path: string,
    opts: { body?: string; type?: string; headers?: Record<string, string> } = {},
  ) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'GET',
      headers: {
        ...(opts.headers ?? ALICE),
        ...(opts.body === undefined ? {} : { 'content-type': opts.type ?? 'application/json' }),
      },
      body: opts.body,
    })
    const text = await res.body.text()
    // biome-ignore lint/suspicious/noExplicitAny: tests read the job document's JSON
    let json: any
    try {
      json = JSON.parse(text)
    } catch {
      json = undefined
    }
    return { status: res.statusCode, headers: res.headers, json, text }
  }
  /** Runs a sync to its end (wait, then polls) and returns the final job document. */
  const sync = async (
    body: unknown,
    query = '',
    opts: { type?: string; headers?: Record<string, string> } = {},
  ) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    const started = await call('POST', `/sync/customers?wait=30${query}`, { body: text, ...opts })
    t.equal(started.status, 202, `202 ${started.text.slice(0, 200)}`)
    t.match(started.headers.location, /^\/sync\/jobs\/[0-9a-f-]{36}$/)
    let doc = started.json
    for (let i = 0; i < 60 && ['planning', 'applying'].includes(doc.state); i++) {
      doc = (await call('GET', `${started.headers.location}?wait=5`, { headers: opts.headers ?? ALICE })).json
    }
    return doc
  }
  const writes = async () => {
    const text = await gw.app.gatewayMetrics.registry.getSingleMetricAsString(
      'ipdr_gateway_upstream_requests_total',
    )
    let n = 0
    for (const line of text.split('\n')) {
      const m = /method="(POST|PUT|PATCH|DELETE)".* (\d+)$/.exec(line)
      if (m) n += Number(m[2])
    }
    return n
  }
  return { emu, gw, call, sync, writes }
}

const customer = (i: number, extra: Record<string, string> = {}) => ({
  UserID: `CRM${String(i).padStart(5, '0')}`,
  Name: `Customer ${i}`,
  Address: `${i} MG Road`,
  Email: `c${i}@example.in`,
  PhoneNumber: `98450${String(i).padStart(5, '0')}`,
  ...extra,
})

t.test('a CRM list with a known mix: the exact plan, exactly those writes, then none', async (t) => {
  const { sync, writes, call } = await setup(t)
  const first = Array.from({ length: 2000 }, (_, i) => customer(i))
  const seeded = await sync(first, '&mode=apply')
  t.match(seeded, {
    state: 'done',
    mode: 'apply',
    plan: { create: 2000, update: 0, delete: 0, unchanged: 0, invalid: 0 },
    progress: { done: 2000, total: 2000, failed: 0 },
  })
  t.equal(await writes(), 2000, 'one upstream write per create')

  // 1,500 unchanged, 300 with a new address, 200 gone from the CRM, 400 new.
  const crm = [
    ...first.slice(0, 1500),
    ...first.slice(1500, 1800).map((c) => ({ ...c, Address: 'Brigade Road' })),
    ...Array.from({ length: 400 }, (_, i) => customer(5000 + i)),
  ]
  const plan = await sync(crm)
  t.match(plan, {
    state: 'done',
    mode: 'plan',
    plan: { create: 400, update: 300, delete: 200, unchanged: 1500, invalid: 0 },
    progress: { done: 0, total: 0 },
  })
  t.equal(plan.absent.length, 200, 'the absent customers are listed')
  // Listing order is creation order, and creates run 8 at a time: compare as a set.
  t.equal([...plan.absent].sort()[0], 'CRM01800')
  t.equal(await writes(), 2000, 'mode=plan sends nothing')

  const applied = await sync(crm, '&mode=apply')
  t.match(applied, {
    state: 'done',
    plan: { create: 400, update: 300, delete: 200 },
    progress: { done: 700, total: 700, failed: 0 },
  })
  t.equal(await writes(), 2700, 'exactly the 700 writes; delete=false deleted nothing')
  const listing = (await call('GET', '/api/ipdrcustomers')).json as { UserID: string; Address: string }[]
  t.equal(listing.length, 2400)
  t.equal(
    listing.find((c) => c.UserID === 'CRM01600')?.Address,
    'Brigade Road',
    'the update is visible at once',
  )

  const again = await sync(crm, '&mode=apply')
  t.match(again, { plan: { create: 0, update: 0, unchanged: 2200 }, progress: { done: 0, total: 0 } })
  t.equal(await writes(), 2700, 'a second apply makes no write')

  const deleted = await sync(crm, '&mode=apply&delete=true')
  t.match(deleted, { plan: { delete: 200 }, progress: { done: 200, failed: 0 }, absent: [] })
  t.equal((await call('GET', '/api/ipdrcustomers')).json.length, 2200)
})

t.test('invalid and duplicate records are reported and never sent', async (t) => {
  const { call, sync, writes } = await setup(t)
  const doc = await sync(
    [
      customer(1),
      { ...customer(2), Email: 'not-an-address' },
      { UserID: 'CRM00003' },
      { ...customer(4), Colour: 'blue' },
      customer(5),
      { ...customer(5), Name: 'Other' },
      { id: 99, ...customer(6) },
      { ...customer(7), PhoneNumber: 42 },
    ],
    '&mode=apply',
  )
  t.match(doc, { state: 'done', plan: { create: 2, invalid: 6 }, progress: { done: 2, failed: 0 } })
  const messages = doc.errors.map((e: { source: string; message: string }) => `${e.source}: ${e.message}`)
  t.match(messages.join('\n'), /record 2: Email is not valid/)
  t.match(messages.join('\n'), /record 3: Missing field: Name/)
  t.match(messages.join('\n'), /record 4: Unknown field: Colour/)
  t.match(messages.join('\n'), /record 5: UserID CRM00005 appears more than once/)
  t.match(messages.join('\n'), /record 6: UserID CRM00005 appears more than once/)
  t.match(messages.join('\n'), /record 8: PhoneNumber must be string/)
  t.ok(
    doc.errors.every(
      (e: { status: number; code: string }) => e.status === 400 && e.code === 'IPDR_GW_VALIDATION',
    ),
  )
  t.equal(await writes(), 2, 'only the valid, unique records (id ignored)')
  // SPEC 13: the input is read before the job starts, so malformed input is the request's own 400.
  const notObjects = await call('POST', '/sync/customers?mode=apply', {
    body: JSON.stringify([customer(9), 'a string']),
  })
  t.equal(notObjects.status, 400)
  t.match(notObjects.json, {
    code: 'IPDR_GW_SYNC_INVALID_INPUT',
    message: /non-object element at index 1/,
  })
  t.equal(await writes(), 2, 'an input that is not an array of objects sends nothing')
})

t.test(
  "CSV in Trisul's layout reconciles mappings; an overlap the emulator refuses is reported",
  async (t) => {
    const { sync, call } = await setup(t)
    const csv = [
      'IP/subnet(s),Name,Address,Email,Phone,Alt Phone,Customer ID,Valid From,Valid To,Terminal ID',
      '"10.1.0.0/24,10.1.1.5",Asha Rao,MG Road,asha@example.in,9845012345,,A1,01-01-2026 00:00:00,,T-1',
      '10.2.0.1,Ravi K,Brigade Road,,,,A2,,31-12-2026 23:59:59,T-2',
      '10.1.0.7,Clash,Somewhere,,,,A3,,,T-3',
      ',No IP,Nowhere,,,,A4,,,',
      'bad-ip,Bad,Row,,,,A5,,,',
    ].join('\n')
    const doc = await sync(csv, '&mode=apply', { type: 'text/csv' })
    t.match(doc, { state: 'done', plan: { create: 4, invalid: 1 }, mappings: { create: 4 } })
    t.equal(doc.progress.failed, 1, 'the overlapping mapping is refused')
    const clash = doc.errors.find(
      (e: { UserID: string; resource?: string }) => e.UserID === 'A3' && e.resource === 'mappings',
    )
    t.match(clash, { status: 409, operation: 'create', message: /Duplicate|overlap/i })
    t.match(
      doc.errors.find((e: { UserID: string }) => e.UserID === 'A5'),
      { source: 'line 6', status: 400 },
    )
    const mappings = (await call('GET', '/api/ipdrcustomers_mapping')).json as {
      ipsubnet: string
      starttime: number
      endtime: number | null
      terminalid: string
    }[]
    const a1 = mappings.find((m) => m.ipsubnet === '10.1.0.0/24')
    t.equal(
      a1?.starttime,
      parseTrisulTime('01-01-2026 00:00:00', 'Asia/Kolkata'),
      'Valid From read in Asia/Kolkata',
    )
    t.equal(a1?.starttime, Date.UTC(2025, 11, 31, 18, 30) / 1000)
    t.equal(a1?.endtime, null, 'a blank Valid To is an open end')
    t.equal(
      mappings.find((m) => m.ipsubnet === '10.2.0.1')?.starttime,
      0,
      'a blank Valid From is the beginning of time',
    )

    // The same file again: nothing to do but the refused mapping, which is tried (and refused) again.
    const again = await sync(csv, '&mode=apply', { type: 'text/csv' })
    t.match(again, {
      plan: { create: 0, update: 0, unchanged: 4 },
      mappings: { create: 1, update: 0, end: 0, unchanged: 3 },
      progress: { done: 1, failed: 1 },
    })

    // A1 drops 10.1.1.5 and changes its terminal: the dropped mapping is ended, not deleted.
    const next = csv.replace('"10.1.0.0/24,10.1.1.5"', '10.1.0.0/24').replace('T-1', 'T-9')
    const ended = await sync(next, '&mode=apply', { type: 'text/csv' })
    t.match(ended, { mappings: { update: 1, end: 1 }, progress: { failed: 1 } })
    const after = (await call('GET', '/api/ipdrcustomers_mapping')).json as {
      ipsubnet: string
      endtime: number | null
      terminalid: string
    }[]
    const gone = after.find((m) => m.ipsubnet === '10.1.1.5')
    t.ok(
      gone && gone.endtime !== null && gone.endtime <= Math.ceil(Date.now() / 1000),
      'ended now, kept as history',
    )
    t.equal(after.find((m) => m.ipsubnet === '10.1.0.0/24')?.terminalid, 'T-9')
  },
)

t.test('jobs belong to their consumer; wait, limits, bad queries and bodies', async (t) => {
  const { call } = await setup(t, undefined, {
    sync: { maxJobs: 1, maxBodyBytes: 65_536, maxWritesPerSecond: 1 },
  })
  const started = await call('POST', '/sync/customers?mode=apply', {
    body: JSON.stringify([customer(1), customer(2), customer(3)]),
  })
  t.equal(started.status, 202)
  t.match(started.json, {
    state: /planning|applying/,
    mode: 'apply',
    delete: false,
    startedAt: String,
    finishedAt: null,
  })
  const location = String(started.headers.location)
  t.equal((await call('GET', location, { headers: BOB })).status, 404, "another consumer's job is not found")
  t.equal((await call('DELETE', location, { headers: BOB })).status, 404)
  const busy = await call('POST', '/sync/customers', { body: '[]' })
  t.equal(busy.status, 429, 'sync.maxJobs')
  t.match(busy.json, { code: 'IPDR_GW_SYNC_JOBS_LIMIT' })
  t.equal((await call('POST', '/sync/customers', { body: '[]', headers: BOB })).status, 202, 'per consumer')
  const cancelled = await call('DELETE', location)
  t.equal(cancelled.status, 200)
  const end = await call('GET', `${location}?wait=10`)
  t.match(end.json, { state: 'cancelled', finishedAt: String })
  t.ok(end.json.progress.done < 3, 'no new write after the cancel')
  t.equal(end.json.progress.done, end.json.progress.total === 3 ? end.json.progress.done : 0)

  for (const [query, message] of [
    ['mode=go', /mode must be plan or apply/],
    ['delete=yes', /delete must be true or false/],
    ['wait=61', /wait must be whole seconds/],
    ['colour=blue', /Unknown query parameter: colour/],
  ] as const) {
    const res = await call('POST', `/sync/customers?${query}`, { body: '[]' })
    t.equal(res.status, 400, query)
    t.match(res.json, { code: 'IPDR_GW_INVALID_QUERY', message })
  }
  t.equal(
    (await call('POST', '/sync/customers', { body: '{"UserID":"x"}' })).json.code,
    'IPDR_GW_SYNC_INVALID_INPUT',
  )
  t.equal((await call('POST', '/sync/customers', { body: 'x'.repeat(70_000) })).status, 413)
  t.equal((await call('POST', '/sync/customers', { body: '[]', type: 'application/xml' })).status, 415)
  t.equal((await call('GET', '/sync/jobs/nope')).status, 404)
  t.equal((await call('GET', location, { headers: {} })).status, 401)
})

t.test('the policy: sync and the writes it implies, checked before anything is planned', async (t) => {
  const { call, writes } = await setup(t, {
    default: { operations: { customers: ['list', 'create', 'update'] } },
    crm: { usernames: ['bob'], operations: { customers: ['list', 'create', 'update', 'sync'] } },
  })
  const denied = await call('POST', '/sync/customers?mode=apply', { body: JSON.stringify([customer(1)]) })
  t.equal(denied.status, 403, 'no sync operation')
  t.match(denied.json, { code: 'IPDR_GW_OPERATION_FORBIDDEN' })
  const noDelete = await call('POST', '/sync/customers?mode=apply&delete=true', { body: '[]', headers: BOB })
  t.equal(noDelete.status, 403, 'delete=true needs delete')
  t.match(noDelete.json.message, /needs delete on customers/)
  const noMappings = await call('POST', '/sync/customers', { body: 'x', type: 'text/csv', headers: BOB })
  t.equal(noMappings.status, 403, 'CSV needs the mapping writes')
  t.equal((await call('POST', '/sync/customers', { body: '[]', headers: BOB })).status, 202)
  t.equal(await writes(), 0)
})
