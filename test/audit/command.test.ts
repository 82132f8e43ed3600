/**
 * `ipdr-gateway audit verify` and `audit search` (src/audit/command.ts): exit
 * codes, the first broken line named, search by UserID and time, and the
 * files found from the policy when none are named.
 */
import { readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { runAudit } from '../../src/audit/command.js'
import { trailFiles } from '../../src/audit/files.js'
import { AuditTrail } from '../../src/audit/writer.js'
import { runCommand } from '../helpers/command-io.js'
import { tempDir, writePolicyDir } from '../helpers/gateway.js'

const run = (argv: string[], env: Record<string, string> = {}) => runCommand(runAudit, argv, env)

/** A trail of 12 lines over two rotated files and the current one. */
async function trail(t: Test) {
  const dir = tempDir(t)
  const file = join(dir, 'audit.jsonl')
  let clock = Date.UTC(2026, 10, 1)
  const writer = await AuditTrail.open({ file, maxBytes: 65_536, now: () => clock })
  for (let i = 0; i < 12; i++) {
    clock += 86_400_000
    await writer.append({
      phase: i % 2 ? 'outcome' : 'intent',
      UserID: i % 3 ? 'OTHER' : 'U7',
      pad: 'p'.repeat(12_000),
    })
  }
  await writer.close()
  const files = await trailFiles(file)
  if (files.length !== 3) throw new Error(`expected 3 files, got ${files.join(' ')}`)
  return { dir, file, files: files as [string, string, string] }
}

t.test('verify: 0 and the head on an intact trail, files in any order', async (t) => {
  const { files } = await trail(t)
  const r = await run(['verify', files[2], files[0], files[1]])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^audit trail intact: 12 lines in 3 files; head seq 12 sha256 [0-9a-f]{64}\n$/)
})

t.test('verify: 1 naming the first broken line for an edit, a deletion, a swap', async (t) => {
  const edits: [string, (lines: string[]) => string[], RegExp][] = [
    [
      'edited',
      (l) => l.map((x, i) => (i === 3 ? x.replace('"U7"', '"U8"') : x)),
      /audit\.jsonl:5: prev is not the hash of the line before \(it was edited/,
    ],
    ['deleted', (l) => l.filter((_, i) => i !== 2), /audit\.jsonl:3: prev is not the hash/],
    ['swapped', (l) => [l[0], l[2], l[1], ...l.slice(3)] as string[], /audit\.jsonl:2: prev is not the hash/],
  ]
  for (const [what, edit, message] of edits) {
    const dir = tempDir(t)
    const file = join(dir, 'audit.jsonl')
    const writer = await AuditTrail.open({ file })
    for (let i = 0; i < 6; i++) await writer.append({ phase: 'intent', UserID: 'U7', i })
    await writer.close()
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean)
    writeFileSync(file, `${edit(lines).join('\n')}\n`)
    const r = await run(['verify', file])
    t.equal(r.code, 1, `${what}: exit 1`)
    t.match(r.stderr, message, `${what}: the line is named`)
    t.match(r.stdout, /audit trail broken at /)
  }
})

t.test('verify: 3 for a torn last line, 2 for bad usage or a missing file', async (t) => {
  const { file, files } = await trail(t)
  truncateSync(file, readFileSync(file).length - 5)
  const torn = await run(['verify', ...files])
  t.equal(torn.code, 3)
  t.match(torn.stderr, /torn: the last line is incomplete/)
  t.match(torn.stdout, /intact up to the torn last line; head seq 11/)
  t.equal((await run(['verify'])).code, 2)
  t.equal((await run(['verify', '--bogus', file])).code, 2)
  const missing = await run(['verify', join(tempDir(t), 'nope.jsonl')])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /ENOENT/)
  t.equal((await run(['frobnicate'])).code, 2)
  t.equal((await run([])).code, 2)
  t.equal((await run(['--help'])).code, 0)
})

t.test('verify --partial accepts a trail whose earlier files are gone', async (t) => {
  const { file } = await trail(t)
  t.equal((await run(['verify', file])).code, 1)
  t.equal((await run(['verify', '--partial', file])).code, 0)
})

t.test('search: the lines about one UserID, oldest first, optionally since a time', async (t) => {
  const { file, files } = await trail(t)
  const all = await run(['search', '--user-id', 'U7', files[1], files[2], files[0]])
  t.equal(all.code, 0)
  const seqs = all.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { seq: number }).seq)
  t.same(seqs, [1, 4, 7, 10])
  t.match(all.stderr, /4 lines about UserID U7 in 3 files/)
  const since = await run(['search', '--user-id', 'U7', '--since', '2026-11-06T00:00:00Z', ...files])
  t.same(
    since.stdout
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { seq: number }).seq),
    [7, 10],
  )
  t.equal((await run(['search', file])).code, 2, 'needs --user-id')
  t.equal((await run(['search', '--user-id', 'U7', '--since', 'yesterday', file])).code, 2)
})

t.test('search without files reads the trail of the policy or of --audit-file', async (t) => {
  const { file } = await trail(t)
  const policies = writePolicyDir(tempDir(t), { gateway: { audit: { file } } })
  const r = await run(['search', '--user-id', 'U7', '--policies', policies])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trim().split('\n').length, 4, 'rotated files included')
  const env = await run(['search', '--user-id', 'U7'], { AUDIT_FILE: file })
  t.equal(env.stdout.trim().split('\n').length, 4)
  const none = writePolicyDir(tempDir(t), {})
  const off = await run(['search', '--user-id', 'U7', '--policies', none])
  t.equal(off.code, 2)
  t.match(off.stderr, /no audit\.file/)
  const bad = writePolicyDir(tempDir(t), { gateway: { audit: { bogus: 1 } } })
  t.equal((await run(['search', '--user-id', 'U7', '--policies', bad])).code, 2)
})

t.test('search: several instances merged by time, reads included, filters, CSV', async (t) => {
  const dir = tempDir(t)
  const a = join(dir, 'audit-a.jsonl')
  const b = join(dir, 'audit-b.jsonl')
  let clock = Date.UTC(2026, 11, 1)
  const wa = await AuditTrail.open({ file: a, instance: 'gw-a', now: () => clock })
  const wb = await AuditTrail.open({ file: b, instance: 'gw-b', now: () => clock })
  const tick = () => {
    clock += 60_000
  }
  tick()
  await wb.append({
    phase: 'access',
    consumer: 'noc',
    resource: 'customers',
    operation: 'list',
    count: 2,
    userIds: ['U7', 'U8'],
  })
  tick()
  await wa.append({
    phase: 'intent',
    consumer: 'crm',
    UserID: 'U7',
    resource: 'customers',
    operation: 'update',
  })
  tick()
  await wb.append({
    phase: 'access',
    consumer: 'noc',
    resource: 'customers',
    operation: 'list',
    count: 1,
    userIds: ['U9'],
  })
  tick()
  await wa.append({ phase: 'outcome', consumer: 'crm', UserID: 'U7', status: 200 })
  await wa.close()
  await wb.close()

  const who = await run(['search', '--user-id', 'U7', a, b])
  t.equal(who.code, 0, who.stderr)
  const found = who.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
  t.same(
    found.map((r) => `${r.instance} ${r.phase}`),
    ['gw-b access', 'gw-a intent', 'gw-a outcome'],
    'who saw and who changed U7, in time order across instances',
  )
  const reads = await run([
    'search',
    '--phase',
    'access',
    '--since',
    '2026-12-01T00:02:00Z',
    '--format',
    'csv',
    a,
    b,
  ])
  const rows = reads.stdout.trim().split('\n')
  t.equal(
    rows[0],
    'time,instance,seq,phase,consumer,client,trisulUser,context,resource,operation,UserID,count,status,requestId',
  )
  t.equal(rows.length, 2, 'one read after 00:02')
  t.match(rows[1], /^2026-12-01T00:03:00.000Z,gw-b,2,access,noc,,,,customers,list,,1,,$/)
  t.equal(
    (await run(['search', '--consumer', 'crm', '--until', '2026-12-01T00:03:00Z', a, b])).stdout
      .trim()
      .split('\n').length,
    1,
  )
  t.equal((await run(['search', a])).code, 2, 'a filter is needed')
})
