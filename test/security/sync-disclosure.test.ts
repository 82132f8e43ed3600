/**
 * SPEC 13, "a sync plan discloses no more than a read would" and "bulk input without stalls":
 * a consumer granted only sync, create and update (no list) learns nothing from a plan about
 * customers it did not send, a redacted field never decides unchanged against update, and every
 * plan is an access line; a 20 MB CSV with an unclosed quote is a 400 naming its line while
 * /healthz keeps answering.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startUsersEmulator } from '../helpers/emulator.js'
import { makePolicy, startGateway, tempDir } from '../helpers/gateway.js'

const ALICE = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }

async function setup(t: Test) {
  const emu = await startUsersEmulator(t, { alice: 'tokA' }, 40)
  const audit = join(tempDir(t), 'audit.jsonl')
  const policy = await makePolicy(t, {
    gateway: { rateLimit: { max: 100_000 }, sync: { maxWritesPerSecond: 10_000 } },
    consumers: {
      default: {
        operations: { customers: ['sync', 'create', 'update'], mappings: ['create', 'update', 'delete'] },
        redact: ['PhoneNumber'],
      },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url, auditFile: audit })
  const listing = async () =>
    (await (
      await request(`${emu.url}/api/ipdrcustomers`, {
        method: 'GET',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ api_token: 'tokA', username: 'alice', contextname: 'default' }),
      })
    ).body.json()) as Record<string, string>[]
  const plan = async (body: unknown) => {
    const res = await request(`${gw.url}/sync/customers?wait=30`, {
      method: 'POST',
      headers: { ...ALICE, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    })
    // biome-ignore lint/suspicious/noExplicitAny: the job document's JSON
    return { status: res.statusCode, doc: (await res.body.json()) as any }
  }
  return { gw, plan, listing, audit }
}

t.test('without list, a plan names only the UserIDs sent; a redacted field is never compared', async (t) => {
  const { gw, plan, listing, audit } = await setup(t)
  const read = await request(`${gw.url}/api/ipdrcustomers`, { headers: ALICE })
  t.equal(read.statusCode, 403, 'the consumer cannot list')
  await read.body.dump()

  const empty = await plan([])
  t.equal(empty.status, 202)
  t.equal(empty.doc.state, 'done')
  t.equal(empty.doc.plan.delete, 40, 'the count of absent customers is given')
  t.same(empty.doc.absent, [], 'but not one of their UserIDs')
  t.notMatch(JSON.stringify(empty.doc), /"UserID"/, 'nor anywhere else in the document')

  const [first] = await listing()
  const target = first as Record<string, string>
  const asIs = {
    UserID: target.UserID,
    Name: target.Name,
    Address: target.Address,
    Email: target.Email,
    AltPhoneNumber: target.AltPhoneNumber,
  }
  const right = await plan([{ ...asIs, PhoneNumber: target.PhoneNumber }])
  const wrong = await plan([{ ...asIs, PhoneNumber: '+91 99999 00000' }])
  t.same(right.doc.plan, wrong.doc.plan, 'the right phone number and a wrong one plan alike')
  t.equal(right.doc.plan.update, 1, 'a redacted field sent is written, not compared')
  t.equal((await plan([asIs])).doc.plan.unchanged, 1, 'without it, an unchanged record is unchanged')

  const lines = readFileSync(audit, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.phase === 'access')
  t.equal(lines.length, 4, 'every plan is an access line')
  t.match(lines[0], {
    consumer: 'default',
    trisulUser: 'alice',
    context: 'default',
    resource: 'customers',
    operation: 'sync-plan',
    status: 200,
    count: 0,
    userIds: [],
    redacted: ['PhoneNumber'],
  })
  t.match(lines[1], { count: 1, userIds: [target.UserID] })
})

t.test('a 20 MB CSV with an unclosed quote: 400 with its line, /healthz answered meanwhile', async (t) => {
  const { gw } = await setup(t)
  const row = (i: number) =>
    `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255},Name ${i},Addr ${i},u${i}@example.in,9845012345,,U${i},,,T\n`
  const head = Array.from({ length: 1000 }, (_, i) => row(i)).join('')
  const broken = `10.9.9.9,"Unclosed name,Addr,x@example.in,9845012345,,UX,,,T\n`
  const tail = Array.from({ length: 260_000 }, (_, i) => row(i + 2000)).join('')
  const body = head + broken + tail
  t.ok(body.length > 20_000_000, `${Math.round(body.length / 1e6)} MB`)
  let slowest = 0
  let probing = true
  const prober = (async () => {
    while (probing) {
      const started = performance.now()
      const r = await request(`${gw.url}/healthz`)
      await r.body.dump()
      slowest = Math.max(slowest, performance.now() - started)
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  const res = await request(`${gw.url}/sync/customers?wait=30`, {
    method: 'POST',
    headers: { ...ALICE, 'content-type': 'text/csv' },
    body,
  })
  probing = false
  await prober
  t.equal(res.statusCode, 400)
  const answer = (await res.body.json()) as { code: string; message: string }
  t.equal(answer.code, 'IPDR_GW_SYNC_INVALID_INPUT')
  t.match(answer.message, /line 1001/, `names the line: ${answer.message}`)
  t.ok(slowest < 1000, `the slowest /healthz took ${Math.round(slowest)} ms`)
})

t.test('sync.maxRecords caps a job (413)', async (t) => {
  const emu = await startUsersEmulator(t, { alice: 'tokA' })
  const policy = await makePolicy(t, {
    gateway: { sync: { maxRecords: 3 } },
    consumers: { default: { operations: { customers: ['sync', 'create', 'update'] } } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const records = Array.from({ length: 4 }, (_, i) => ({ UserID: `U${i}`, Name: `N${i}` }))
  const res = await request(`${gw.url}/sync/customers`, {
    method: 'POST',
    headers: { ...ALICE, 'content-type': 'application/json' },
    body: JSON.stringify(records),
  })
  t.equal(res.statusCode, 413)
  t.match(await res.body.json(), { code: 'IPDR_GW_SYNC_TOO_MANY_RECORDS' })
})
