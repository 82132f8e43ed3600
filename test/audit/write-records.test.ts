/**
 * The intent and outcome lines of one write (src/audit/write-audit.ts): what
 * they carry, a sync write's `syncJob`, credential fields dropped whatever the
 * caller passed, and what happens when a line cannot be written.
 */
import { readFileSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { auditedFields, NO_AUDIT, WriteAudit } from '../../src/audit/write-audit.js'
import { AuditTrail } from '../../src/audit/writer.js'
import { tempDir } from '../helpers/gateway.js'

const WRITE = {
  requestId: 'r-1',
  consumer: 'crm',
  client: '10.0.0.9',
  trisulUser: 'crm',
  context: 'default',
  resource: 'customers',
  operation: 'update',
  userId: 'U1',
  fields: { Name: 'N', api_token: 'secret-token', username: 'crm', contextname: 'ctx', context: 'ctx' },
  before: { UserID: 'U1', Name: 'Old' },
  syncJob: 'job-7',
}

async function opened(
  t: Test,
  file: string,
  opts: { required?: boolean; onError?: (phase: 'intent' | 'outcome' | 'access') => void } = {},
): Promise<{ audit: WriteAudit; results: string[] }> {
  const results: string[] = []
  const trail = await AuditTrail.open({ file })
  const audit = new WriteAudit(trail, { ...opts, onRecord: (r) => results.push(r) })
  t.teardown(() => audit.close())
  return { audit, results }
}

t.test('credential fields are never audited', async (t) => {
  t.same(auditedFields(WRITE.fields), { Name: 'N' })
})

t.test('intent and outcome of a sync write', async (t) => {
  const file = join(tempDir(t), 'a.jsonl')
  const { audit, results } = await opened(t, file)
  const mark = await audit.intent(WRITE)
  await audit.outcome(mark, { status: 200, upstreamStatus: 200 })
  await audit.close()
  const [intent, outcome] = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(intent, {
    seq: 1,
    phase: 'intent',
    requestId: 'r-1',
    consumer: 'crm',
    client: '10.0.0.9',
    resource: 'customers',
    operation: 'update',
    UserID: 'U1',
    fields: { Name: 'N' },
    before: { UserID: 'U1', Name: 'Old' },
    syncJob: 'job-7',
  })
  t.same(Object.keys(intent?.fields as object), ['Name'])
  t.match(outcome, {
    seq: 2,
    phase: 'outcome',
    intent: 1,
    status: 200,
    upstreamStatus: 200,
    ms: Number,
    syncJob: 'job-7',
  })
  t.notOk(readFileSync(file, 'utf8').includes('secret-token'))
  t.same(results, ['ok', 'ok'])
})

t.test(
  'an intent that cannot be written: refused when required, else passed with no outcome line',
  async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'full.jsonl')
    symlinkSync('/dev/full', file)
    const errors: string[] = []
    const { audit, results } = await opened(t, file, { onError: (phase) => errors.push(phase) })
    await t.rejects(audit.intent(WRITE), {
      code: 'IPDR_GW_AUDIT_UNAVAILABLE',
      statusCode: 503,
      cause: { code: 'ENOSPC' },
    })
    t.same(results, ['failed'])
    t.same(errors, ['intent'])
    await audit.close()
    rmSync(file)
    symlinkSync('/dev/full', file)
    const lax = await opened(t, file, { required: false })
    const mark = await lax.audit.intent(WRITE)
    t.equal(mark, null, 'not required: the write goes on unrecorded')
    await lax.audit.outcome(mark, { status: 200, upstreamStatus: 200 })
    t.same(lax.results, ['failed'], 'no outcome without an intent')
  },
)

t.test('an outcome that cannot be written is counted, never thrown', async (t) => {
  const file = join(tempDir(t), 'a.jsonl')
  const { audit, results } = await opened(t, file)
  const mark = await audit.intent(WRITE)
  await audit.close()
  await audit.outcome(mark, { status: 502, upstreamStatus: null, code: 'IPDR_GW_UPSTREAM_UNAVAILABLE' })
  t.same(results, ['ok', 'failed'])
})

t.test('without a trail nothing is recorded', async (t) => {
  t.equal(NO_AUDIT.enabled, false)
  t.equal(await NO_AUDIT.intent(WRITE), null)
  await NO_AUDIT.outcome(null, { status: 200, upstreamStatus: 200 })
  await NO_AUDIT.close()
})
