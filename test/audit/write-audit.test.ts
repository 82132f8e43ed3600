/**
 * Every write the gateway forwards leaves exactly one `intent` and one
 * `outcome` line, written before the client is answered (shared/SPEC.md 11):
 * customers and mappings, each write kind, success and each failure class.
 * `before` comes from the cache; credentials never reach the file; with
 * `audit.required` a write that cannot be recorded is a 503 and never reaches
 * the upstream.
 */
import { createHash } from 'node:crypto'
import { readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { verifyTrail } from '../../src/audit/verify.js'
import { startUsersEmulator } from '../helpers/emulator.js'
import { makePolicy, startGateway, tempDir } from '../helpers/gateway.js'
import { closedPort, type Responder, startRecordingUpstream } from '../helpers/recording-upstream.js'

const A = { authorization: 'Bearer tokA', 'x-trisul-username': 'alice' }

type Line = Record<string, unknown> & { seq: number; phase: string; requestId: string }

function readLines(file: string): Line[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line)
}

async function gateway(
  t: Test,
  upstreamUrl: string,
  gatewayPolicy: Record<string, unknown> = {},
  file?: string,
) {
  const auditFile = file ?? join(tempDir(t), 'audit.jsonl')
  const policy = await makePolicy(t, {
    gateway: { cache: { ttlSeconds: 300 }, audit: { file: auditFile }, ...gatewayPolicy },
  })
  const gw = await startGateway(t, { policy, upstreamUrl, instanceName: 'gw-test' })
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = A) => {
    const res = await request(`${gw.url}${path}`, {
      method: method as 'GET',
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const text = await res.body.text()
    return { status: res.statusCode, headers: res.headers, text }
  }
  return { gw, call, file: auditFile }
}

/** The lines of one request: exactly one intent then one outcome. */
function pairOf(t: Test, lines: Line[], requestId: string) {
  const mine = lines.filter((l) => l.requestId === requestId)
  t.same(
    mine.map((l) => l.phase),
    ['intent', 'outcome'],
    `one intent and one outcome for ${requestId}`,
  )
  return { intent: mine[0] as Line, outcome: mine[1] as Line }
}

t.test('each write kind on both resources, success and envelope failure, against the emulator', async (t) => {
  const emu = await startUsersEmulator(t, { alice: 'tokA' }, 3)
  const { call, file, gw } = await gateway(t, emu.url)
  const customer = {
    UserID: 'AU1',
    Name: 'Asha',
    Address: 'MG Road',
    Email: 'a@x.in',
    PhoneNumber: '98450',
    AltPhoneNumber: '98451',
  }
  const mapping = {
    UserID: 'AU1',
    ipsubnet: '10.9.0.0/24',
    starttime: '100',
    endtime: '200',
    terminalid: 't1',
  }
  const writes: [string, string, unknown, number][] = [
    ['POST', '/api/ipdrcustomers', customer, 200],
    ['POST', '/api/ipdrcustomers', customer, 409],
    ['PUT', '/api/ipdrcustomers/AU1', { ...customer, Name: 'Asha R' }, 200],
    ['PATCH', '/api/ipdrcustomers/AU1', { Address: 'Brigade Road' }, 200],
    ['PATCH', '/api/ipdrcustomers/NOPE1', { Address: 'x' }, 404],
    ['POST', '/api/ipdrcustomers_mapping', mapping, 200],
    ['POST', '/api/ipdrcustomers_mapping', mapping, 409],
    ['POST', '/api/ipdrcustomers_mapping', { ...mapping, UserID: 'NOPE1' }, 404],
    [
      'PUT',
      '/api/ipdrcustomers_mapping/AU1',
      { ipsubnet: '10.9.0.0/24', starttime: '100', endtime: '300' },
      200,
    ],
    ['PATCH', '/api/ipdrcustomers_mapping/AU1', { ipsubnet: '10.9.0.0/24', terminalid: 't2' }, 200],
    ['DELETE', '/api/ipdrcustomers_mapping/AU1', { ipsubnet: '10.9.0.0/24' }, 200],
    ['DELETE', '/api/ipdrcustomers/AU1', undefined, 200],
    ['DELETE', '/api/ipdrcustomers/AU1', undefined, 404],
  ]
  const ids: string[] = []
  for (const [method, path, body, status] of writes) {
    const res = await call(method, path, body)
    t.equal(res.status, status, `${method} ${path} → ${status}`)
    ids.push(String(res.headers['x-request-id']))
  }
  const lines = readLines(file)
  t.equal(lines.length, writes.length * 2, 'two lines per write, nothing else')
  for (const [i, [method, path, body, status]] of writes.entries()) {
    const { intent, outcome } = pairOf(t, lines, ids[i] as string)
    t.ok(intent.seq < outcome.seq)
    t.match(intent, {
      instance: 'gw-test',
      consumer: 'default',
      client: '127.0.0.1',
      resource: path.includes('mapping') ? 'mappings' : 'customers',
      operation: { POST: 'create', PUT: 'replace', PATCH: 'update', DELETE: 'delete' }[method],
      UserID: path.split('/')[3] ?? (body as { UserID: string }).UserID,
      fields: body ?? {},
      time: /^\d{4}-\d\d-\d\dT/,
    })
    t.match(outcome, { intent: intent.seq, status, upstreamStatus: Number, ms: Number })
    if (status !== 200) t.match(outcome, { code: /^IPDR_GW_UPSTREAM_/ })
  }
  t.equal((await verifyTrail([file])).ok, true, 'the chain verifies')
  const metrics = await gw.app.gatewayMetrics.registry.getSingleMetricAsString(
    'ipdr_gateway_audit_records_total',
  )
  t.match(metrics, new RegExp(`result="ok",phase="intent"} ${writes.length}\\b`))
  t.match(metrics, new RegExp(`result="ok",phase="outcome"} ${writes.length}\\b`))
})

t.test('before: the cached record a write changes, or null when the cache has none', async (t) => {
  const emu = await startUsersEmulator(t, { alice: 'tokA' })
  const { call, file } = await gateway(t, emu.url)
  await call('POST', '/api/ipdrcustomers', { UserID: 'B1', Name: 'Old Name', Address: 'Old Street' })
  await call('POST', '/api/ipdrcustomers_mapping', { UserID: 'B1', ipsubnet: '10.1.1.1', starttime: '0' })
  await call('POST', '/api/ipdrcustomers_mapping', { UserID: 'B1', ipsubnet: '10.1.1.2', starttime: '0' })
  const uncached = await call('PATCH', '/api/ipdrcustomers/B1', { Name: 'Second Name' })
  await call('GET', '/api/ipdrcustomers')
  await call('GET', '/api/ipdrcustomers_mapping')
  const cached = await call('PATCH', '/api/ipdrcustomers/B1', { Address: 'New Street' })
  await call('GET', '/api/ipdrcustomers')
  await call('GET', '/api/ipdrcustomers_mapping')
  const mapping = await call('PATCH', '/api/ipdrcustomers_mapping/B1', {
    ipsubnet: '10.1.1.2',
    terminalid: 'T9',
  })
  const lines = readLines(file)
  t.equal(pairOf(t, lines, String(uncached.headers['x-request-id'])).intent.before, null, 'nothing cached')
  t.match(pairOf(t, lines, String(cached.headers['x-request-id'])).intent.before, {
    UserID: 'B1',
    Name: 'Second Name',
    Address: 'Old Street',
  })
  const before = pairOf(t, lines, String(mapping.headers['x-request-id'])).intent.before as unknown[]
  t.equal(before.length, 1, 'only the mapping the write selects')
  t.match(before[0], { ipsubnet: '10.1.1.2', starttime: 0 })
  t.same(
    pairOf(t, lines, String(mapping.headers['x-request-id'])).outcome.before,
    before,
    'the outcome repeats it',
  )
})

t.test('failure classes without an envelope: 5xx, timeout, refused, circuit open', async (t) => {
  let behave: Responder = () => ({ kind: 'json', status: 500, body: { error: 'boom' } })
  const up = await startRecordingUpstream((r) => behave(r))
  t.teardown(() => up.close())
  const { call, file } = await gateway(t, up.url, {
    upstream: { timeoutMs: 1500, circuit: { failures: 2, resetSeconds: 60 } },
  })
  const body = { UserID: 'F1', Name: 'F' }
  const five = await call('POST', '/api/ipdrcustomers', body)
  behave = () => ({ kind: 'hang' })
  const timeout = await call('POST', '/api/ipdrcustomers', body)
  // A second timeout opens the circuit (a 5xx is an answer, not a transport failure).
  t.equal((await call('POST', '/api/ipdrcustomers', body)).status, 504)
  const open = await call('POST', '/api/ipdrcustomers', body)
  t.same([five.status, timeout.status, open.status], [502, 504, 503])
  const lines = readLines(file)
  t.match(pairOf(t, lines, String(five.headers['x-request-id'])).outcome, {
    status: 502,
    upstreamStatus: 500,
    code: 'IPDR_GW_UPSTREAM_UNAVAILABLE',
  })
  t.match(pairOf(t, lines, String(timeout.headers['x-request-id'])).outcome, {
    status: 504,
    upstreamStatus: null,
    code: 'IPDR_GW_UPSTREAM_TIMEOUT',
  })
  t.match(pairOf(t, lines, String(open.headers['x-request-id'])).outcome, {
    status: 503,
    upstreamStatus: null,
    code: 'IPDR_GW_CIRCUIT_OPEN',
  })

  const refusedPort = await closedPort()
  const refused = await gateway(t, `http://127.0.0.1:${refusedPort}`)
  const res = await refused.call('DELETE', '/api/ipdrcustomers/F1')
  t.equal(res.status, 502)
  t.match(pairOf(t, readLines(refused.file), String(res.headers['x-request-id'])).outcome, {
    status: 502,
    upstreamStatus: null,
    code: 'IPDR_GW_UPSTREAM_UNAVAILABLE',
  })
})

t.test('normalizeErrors false: the outcome has the status the client got', async (t) => {
  const up = await startRecordingUpstream(() => ({
    kind: 'json',
    body: { status: 'Error', message: 'Duplicate UserID : D1' },
  }))
  t.teardown(() => up.close())
  const { call, file } = await gateway(t, up.url, { upstream: { normalizeErrors: false } })
  const res = await call('POST', '/api/ipdrcustomers', { UserID: 'D1', Name: 'D' })
  t.equal(res.status, 200, 'the envelope passed through')
  t.match(pairOf(t, readLines(file), String(res.headers['x-request-id'])).outcome, {
    status: 200,
    upstreamStatus: 200,
    code: 'IPDR_GW_UPSTREAM_CONFLICT',
  })
})

t.test(
  'a write whose intent cannot be recorded: 503 and nothing sent; not required: sent anyway',
  async (t) => {
    const up = await startRecordingUpstream(() => ({
      kind: 'json',
      body: { id: 1, UserID: 'Z1', Name: 'Z' },
    }))
    t.teardown(() => up.close())
    const dir = tempDir(t)
    const full = join(dir, 'full.jsonl')
    symlinkSync('/dev/full', full)
    const required = await gateway(t, up.url, {}, full)
    const res = await required.call('POST', '/api/ipdrcustomers', { UserID: 'Z1', Name: 'Z' })
    t.equal(res.status, 503)
    t.match(JSON.parse(res.text), { code: 'IPDR_GW_AUDIT_UNAVAILABLE', statusCode: 503 })
    t.notMatch(res.text, /ENOSPC|dev\/full|\/tmp/, 'no file detail in the answer')
    t.equal(up.requests.length, 0, 'the upstream never saw it')
    const metrics = await required.gw.app.gatewayMetrics.registry.getSingleMetricAsString(
      'ipdr_gateway_audit_records_total',
    )
    t.match(metrics, /result="failed",phase="intent"} 1\b/)
    const listing = await required.call('GET', '/api/ipdrcustomers')
    t.equal(
      listing.status,
      502,
      'reads are not audited and still go through (here to an upstream answering an object)',
    )

    const optionalFile = join(dir, 'full2.jsonl')
    symlinkSync('/dev/full', optionalFile)
    const optional = await gateway(
      t,
      up.url,
      { audit: { file: optionalFile, required: false } },
      optionalFile,
    )
    const sent = await optional.call('POST', '/api/ipdrcustomers', { UserID: 'Z1', Name: 'Z' })
    t.equal(sent.status, 200)
    t.equal(up.requests.filter((r) => r.method === 'POST').length, 1)
  },
)

t.test('an audit file that cannot be opened stops the start when required', async (t) => {
  const up = await startRecordingUpstream(() => ({ kind: 'json', body: { id: 1, UserID: 'Q1', Name: 'Q' } }))
  t.teardown(() => up.close())
  const dir = tempDir(t)
  const file = join(dir, 'a.jsonl')
  const first = await gateway(t, up.url, {}, file)
  const policy = await makePolicy(t, { gateway: { audit: { file } } })
  await t.rejects(
    startGateway(t, { policy, upstreamUrl: up.url }),
    /audit\.file .*already written by this process/,
  )
  t.ok(first.gw.url, 'the first keeps its file')
  const lax = await makePolicy(t, { gateway: { audit: { file, required: false } } })
  const second = await startGateway(t, { policy: lax, upstreamUrl: up.url })
  const res = await request(`${second.url}/api/ipdrcustomers`, {
    method: 'POST',
    headers: { ...A, 'content-type': 'application/json' },
    body: '{"UserID":"Q1","Name":"Q"}',
  })
  await res.body.dump()
  t.equal(res.statusCode, 200, 'not required: serves without a trail')
})

t.test('no credential of any form ever reaches the audit file, write or access lines', async (t) => {
  const record = { id: 1, UserID: 'C1', Name: 'C' }
  const up = await startRecordingUpstream((req) =>
    req.method === 'GET' ? { kind: 'json', body: [record] } : { kind: 'json', body: record },
  )
  t.teardown(() => up.close())
  const dir = tempDir(t)
  const file = join(dir, 'audit.jsonl')
  const key = 'gw-key-3f9a1c0e77d54b2a'
  const upstreamToken = 'crm-upstream-token-8d2e'
  const policy = await makePolicy(t, {
    gateway: { audit: { file } },
    consumers: {
      default: { operations: { customers: ['list', 'read', 'create', 'update', 'delete'] } },
      crm: {
        keys: [createHash('sha256').update(key).digest('hex')],
        upstream: { username: 'crm', tokenEnv: 'CRM_TOKEN' },
        operations: { customers: ['list', 'read', 'create', 'update', 'delete'] },
      },
    },
    env: { CRM_TOKEN: upstreamToken },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: up.url })
  const secret = fc.stringMatching(/^[A-Za-z0-9_.~-]{12,40}$/)
  const user = fc.stringMatching(/^[a-z][a-z0-9]{2,12}$/)
  const seen: string[] = [key, upstreamToken]
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }), secret, user, async (form, token, username) => {
      seen.push(token)
      const basic = Buffer.from(`${username}:${token}`).toString('base64')
      seen.push(basic)
      const headers: Record<string, string> =
        form === 1
          ? { authorization: `Bearer ${key}` }
          : form === 2
            ? { authorization: `Bearer ${token}`, 'x-trisul-username': username }
            : form === 3
              ? { authorization: `Basic ${basic}` }
              : {}
      const body =
        form === 4 ? { UserID: 'C1', Name: 'C', api_token: token, username } : { UserID: 'C1', Name: 'C' }
      const res = await request(`${gw.url}/api/ipdrcustomers`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'x-trisul-context': 'default' },
        body: JSON.stringify(body),
      })
      await res.body.dump()
      // And reads with the same credentials (the body form has none on a GET: the header forms only).
      let reads = 0
      if (form !== 4) {
        for (const path of ['/api/ipdrcustomers', '/api/ipdrcustomers/C1', '/api/ipdrcustomers?q=C']) {
          const read = await request(`${gw.url}${path}`, {
            headers: { ...headers, 'x-trisul-context': 'default' },
          })
          await read.body.dump()
          if (read.statusCode === 200) reads++
        }
      }
      return res.statusCode === 200 && reads === (form === 4 ? 0 : 3)
    }),
    { numRuns: 40 },
  )
  // Access lines are written after their answers: let the last ones land.
  await new Promise((r) => setTimeout(r, 200))
  const text = readFileSync(file, 'utf8')
  const phases = readLines(file).map((l) => l.phase)
  t.equal(phases.filter((p) => p === 'intent' || p === 'outcome').length, 80, 'every write recorded')
  t.ok(phases.filter((p) => p === 'access').length >= 60, 'and the reads')
  for (const s of seen) t.notOk(text.includes(s), 'no token, key or Basic credential in the file')
  t.notMatch(text, /api_token|authorization|"username"/i)
})
