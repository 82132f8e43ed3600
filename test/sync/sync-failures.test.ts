/**
 * Sync writes against an upstream that misbehaves (shared/SPEC.md 10): a 409,
 * a 502 and a timeout are each reported with their status and never retried;
 * an update sends only the changed fields; a cancel mid-apply leaves every
 * write that was sent reported, and none after it.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import type { JobDocument } from '../../src/sync/jobs.js'
import { makePolicy, startGateway, tempDir } from '../helpers/gateway.js'
import { type RecordedRequest, startRecordingUpstream } from '../helpers/recording-upstream.js'

const ALICE = {
  authorization: 'Bearer tokA',
  'x-trisul-username': 'alice',
  'content-type': 'application/json',
}
const OPS = { customers: ['list', 'create', 'update', 'delete', 'sync'] }

const CURRENT = [
  { id: 1, UserID: 'U1', Name: 'One', Address: 'A', Email: '', PhoneNumber: '', AltPhoneNumber: '' },
  { id: 2, UserID: 'U2', Name: 'Two', Address: 'B', Email: '', PhoneNumber: '', AltPhoneNumber: '' },
]

async function gateway(
  t: Test,
  respond: (r: RecordedRequest) => unknown,
  sync: Record<string, unknown> = {},
) {
  const up = await startRecordingUpstream((r) => {
    if (r.method === 'GET') return { kind: 'json', body: CURRENT }
    return respond(r) as never
  })
  t.teardown(() => up.close())
  const auditFile = join(tempDir(t), 'audit.jsonl')
  const policy = await makePolicy(t, {
    gateway: {
      audit: { file: auditFile },
      upstream: { timeoutMs: 1500, circuit: { failures: 100 } },
      sync: { concurrency: 2, maxWritesPerSecond: 1000, ...sync },
    },
    consumers: { default: { operations: OPS } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: up.url })
  const post = async (body: unknown, query: string) => {
    const res = await request(`${gw.url}/sync/customers?${query}`, {
      method: 'POST',
      headers: ALICE,
      body: JSON.stringify(body),
    })
    return {
      status: res.statusCode,
      location: String(res.headers.location),
      json: (await res.body.json()) as JobDocument,
    }
  }
  const get = async (location: string, query = '') => {
    const res = await request(`${gw.url}${location}${query}`, { headers: ALICE })
    return (await res.body.json()) as JobDocument
  }
  return { up, post, get, gw, auditFile }
}

t.test('each failing write is reported with its status and sent exactly once', async (t) => {
  const { up, post, auditFile } = await gateway(t, (r) => {
    const id = (r.body?.UserID as string | undefined) ?? r.url.split('/').pop()
    if (id === 'N409') return { kind: 'json', body: { status: 'Error', message: 'Duplicate UserID : N409' } }
    if (id === 'N502') return { kind: 'json', status: 500, body: { error: 'boom' } }
    if (id === 'NSLOW') return { kind: 'hang' }
    return { kind: 'json', body: { id: 9, UserID: id, Name: 'x' } }
  })
  const crm = [
    { UserID: 'U1', Name: 'One', Address: 'A' },
    { UserID: 'U2', Name: 'Two', Address: 'New address' },
    { UserID: 'N409', Name: 'Dup' },
    { UserID: 'N502', Name: 'Boom' },
    { UserID: 'NSLOW', Name: 'Slow' },
    { UserID: 'NOK', Name: 'Fine' },
  ]
  const res = await post(crm, 'mode=apply&wait=30')
  t.equal(res.status, 202)
  t.match(res.json, {
    state: 'done',
    plan: { create: 4, update: 1, unchanged: 1 },
    progress: { done: 5, total: 5, failed: 3 },
  })
  const byUser = Object.fromEntries(res.json.errors.map((e) => [e.UserID, e]))
  t.match(byUser.N409, {
    status: 409,
    code: 'IPDR_GW_UPSTREAM_CONFLICT',
    message: 'Duplicate UserID : N409',
    operation: 'create',
  })
  t.match(byUser.N502, { status: 502, code: 'IPDR_GW_UPSTREAM_UNAVAILABLE' })
  t.match(byUser.NSLOW, { status: 504, code: 'IPDR_GW_UPSTREAM_TIMEOUT' })
  const writes = up.requests.filter((r) => r.method !== 'GET')
  t.equal(writes.length, 5, 'one request per write: nothing retried')
  for (const id of ['N409', 'N502', 'NSLOW'])
    t.equal(writes.filter((r) => r.body?.UserID === id).length, 1, `${id} sent once`)
  const patch = writes.find((r) => r.method === 'PATCH')
  t.equal(patch?.url, '/api/ipdrcustomers/U2')
  t.same(
    Object.keys(patch?.body ?? {}).filter((k) => !['api_token', 'username', 'contextname'].includes(k)),
    ['Address'],
    'an update sends only the changed field',
  )
  t.equal(patch?.body?.Address, 'New address')
  const listings = up.requests.filter((r) => r.method === 'GET')
  t.equal(listings.length, 1, 'the plan fetched one fresh listing (JSON input: no mappings)')
  const lines = readFileSync(auditFile, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  const access = lines.filter((l) => l.phase === 'access')
  t.equal(access.length, 1, 'the plan is an access line (SPEC 13)')
  lines.splice(0, lines.length, ...lines.filter((l) => l.phase !== 'access'))
  t.equal(lines.length, 10, 'an intent and an outcome per sync write')
  t.ok(
    lines.every((l) => l.syncJob === res.json.id),
    'each tagged with the job',
  )
  const update = lines.find((l) => l.phase === 'intent' && l.operation === 'update')
  t.match(
    update,
    { UserID: 'U2', fields: { Address: 'New address' }, before: { UserID: 'U2', Address: 'B' } },
    'before: the record the plan compared with',
  )
  t.match(
    lines.find((l) => l.phase === 'outcome' && l.UserID === 'NSLOW'),
    { status: 504, upstreamStatus: null },
  )
})

t.test('a cancel mid-apply: writes in flight finish and are reported, no new ones start', async (t) => {
  const { up, post, get, gw } = await gateway(
    t,
    (r) => ({ kind: 'json', delayMs: 20, body: { id: 9, UserID: r.body?.UserID, Name: 'x' } }),
    { maxWritesPerSecond: 20, concurrency: 2 },
  )
  const crm = Array.from({ length: 200 }, (_, i) => ({ UserID: `C${i}`, Name: `C ${i}` }))
  const started = await post(crm, 'mode=apply')
  t.equal(started.status, 202)
  const deadline = Date.now() + 10_000
  while (up.requests.filter((r) => r.method === 'POST').length < 5 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10))
  }
  const cancel = await request(`${gw.url}${started.location}`, { method: 'DELETE', headers: ALICE })
  t.equal(cancel.statusCode, 200)
  await cancel.body.dump()
  const end = await get(started.location, '?wait=10')
  t.equal(end.state, 'cancelled')
  const sent = up.requests.filter((r) => r.method === 'POST').length
  t.ok(end.progress.done < 200, `${end.progress.done} of 200 done before the cancel took effect`)
  t.equal(end.progress.done, sent, 'every write sent is reported, and none is half-reported')
  t.equal(end.progress.total, 200)
  await new Promise((r) => setTimeout(r, 300))
  t.equal(up.requests.filter((r) => r.method === 'POST').length, sent, 'nothing is sent after the job ended')
})
