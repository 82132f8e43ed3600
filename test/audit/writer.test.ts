/**
 * The audit writer (src/audit/writer.ts) on real files: lines in call order
 * and chained, rotation continuing the chain, a torn last line repaired by
 * appending, one writer per file, and a failing disk (/dev/full) rejecting the
 * lines without breaking the chain once the disk works again.
 */
import { spawn } from 'node:child_process'
import {
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { trailFiles } from '../../src/audit/files.js'
import { verifyTrail } from '../../src/audit/verify.js'
import { AuditFileError, AuditTrail } from '../../src/audit/writer.js'
import { tempDir } from '../helpers/gateway.js'

function lines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

t.test('concurrent appends are written in call order, chained, and verify', async (t) => {
  const file = join(tempDir(t), 'data', 'audit.jsonl')
  const trail = await AuditTrail.open({ file, instance: 'gw-1', now: () => Date.UTC(2026, 11, 1) })
  const seqs = await Promise.all(
    Array.from({ length: 50 }, (_, i) => trail.append({ phase: 'intent', n: i })),
  )
  t.same(
    seqs,
    Array.from({ length: 50 }, (_, i) => i + 1),
  )
  await trail.close()
  const records = lines(file)
  t.same(
    records.map((r) => r.n),
    Array.from({ length: 50 }, (_, i) => i),
  )
  t.match(records[0], { seq: 1, prev: '0'.repeat(64), time: '2026-12-01T00:00:00.000Z', instance: 'gw-1' })
  const report = await verifyTrail([file])
  t.equal(report.ok, true)
  t.equal(report.chains[0]?.head.seq, 50)
})

t.test('a reopened trail continues the chain where the file ends', async (t) => {
  const file = join(tempDir(t), 'audit.jsonl')
  const a = await AuditTrail.open({ file })
  await a.append({ phase: 'intent' })
  await a.close()
  const b = await AuditTrail.open({ file, fsync: true })
  t.equal(b.head.seq, 1)
  t.equal(await b.append({ phase: 'outcome' }), 2)
  await b.close()
  t.equal((await verifyTrail([file])).ok, true)
})

t.test('rotation renames the full file and continues the chain in a new one', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'audit.jsonl')
  const trail = await AuditTrail.open({ file, maxBytes: 65_536 })
  const pad = 'x'.repeat(2000)
  for (let i = 0; i < 100; i++) await trail.append({ phase: 'intent', pad })
  await trail.close()
  const files = await trailFiles(file)
  t.ok(files.length >= 3, `${files.length} files`)
  for (const f of files) t.ok(readFileSync(f).length <= 65_536, 'each within maxBytes')
  t.match(
    readdirSync(dir)
      .filter((n) => !n.startsWith('.'))
      .sort()[1],
    /^audit\.jsonl\.\d{12}$/,
  )
  t.equal((await verifyTrail([...files].reverse())).ok, true, 'any order: put in chain order')
  t.equal((await verifyTrail(files)).chains[0]?.head.seq, 100)
  const missing = await verifyTrail(files.filter((_, i) => i !== 1))
  t.equal(missing.ok, false, 'a missing rotated file breaks the chain')
  t.match(missing.chains[0]?.problem?.message, /prev is not the hash/)
})

t.test('a torn last line is closed at open by a repair line: appended, nothing rewritten', async (t) => {
  const file = join(tempDir(t), 'audit.jsonl')
  const a = await AuditTrail.open({ file })
  for (let i = 0; i < 3; i++) await a.append({ phase: 'intent', i })
  await a.close()
  const whole = readFileSync(file)
  truncateSync(file, whole.length - 20)
  const torn = await verifyTrail([file])
  t.match(torn.chains[0]?.problem, { line: 3, tornTail: true })
  const repairs: unknown[] = []
  const b = await AuditTrail.open({ file, onRepair: (info) => repairs.push(info) })
  const fragment = whole.length - 20 - (whole.indexOf(Buffer.from('{"seq":3')) as number)
  t.same(
    repairs,
    [{ file, seq: 3, bytes: fragment }],
    'the repair line takes the seq the torn line never finished',
  )
  await b.append({ phase: 'intent', after: true })
  await b.close()
  const after = readFileSync(file)
  t.ok(
    after.subarray(0, whole.length - 20).equals(whole.subarray(0, whole.length - 20)),
    'history kept byte for byte',
  )
  const report = await verifyTrail([file])
  t.equal(report.ok, true, 'the chain verifies through the repair')
  t.equal(report.chains[0]?.head.seq, 4)
  const text = after.toString('utf8').split('\n')
  t.match(JSON.parse(text[3] as string), { seq: 3, phase: 'repair', torn: { bytes: fragment } })
})

t.test('a file whose last complete line is not a record is refused at open', async (t) => {
  const file = join(tempDir(t), 'audit.jsonl')
  writeFileSync(file, 'hello\n')
  await t.rejects(AuditTrail.open({ file }), AuditFileError)
  // Nor is the file left open for the garbage collector to close (an error on Node 26).
  const openOnIt = readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === file
    } catch {
      return false
    }
  })
  t.same(openOnIt, [], 'the refused open closed its file')
  // The refused open released its lock: once the file is fixed it opens.
  rmSync(file)
  const ok = await AuditTrail.open({ file })
  await ok.close()
})

t.test('one writer per file: in this process and in another live one', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'audit.jsonl')
  const a = await AuditTrail.open({ file })
  await t.rejects(AuditTrail.open({ file }), /already written by this process/)
  await a.close()
  // A lock left by a process that is gone is taken over.
  writeFileSync(join(dir, '.audit.jsonl.lock'), '999999999\n')
  const b = await AuditTrail.open({ file })
  await b.close()
  // A lock held by a live process is not.
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' })
  t.teardown(() => sleeper.kill('SIGKILL'))
  writeFileSync(join(dir, '.audit.jsonl.lock'), `${sleeper.pid}\n`)
  await t.rejects(
    AuditTrail.open({ file }),
    new RegExp(`written by process ${sleeper.pid} \\(.*\\.audit\\.jsonl\\.lock\\).*--audit-file`),
  )
})

t.test(
  'a full disk rejects the lines; once it has room the chain continues from what is on disk',
  async (t) => {
    const dir = tempDir(t)
    const file = join(dir, 'audit.jsonl')
    const trail = await AuditTrail.open({ file })
    t.equal(await trail.append({ phase: 'intent', n: 1 }), 1)
    t.equal(await trail.append({ phase: 'outcome', n: 2 }), 2)
    await trail.close()
    const written = readFileSync(file)

    // The same path on a full disk (the writer reopens its file after each failure). The head kept
    // beside the file goes too: this is a full disk, not a trail found emptied (that is a gap).
    rmSync(file)
    rmSync(join(dir, '.audit.jsonl.head'))
    symlinkSync('/dev/full', file)
    const full = await AuditTrail.open({ file })
    await t.rejects(full.append({ phase: 'intent', n: 3 }), { code: 'ENOSPC' })
    await t.rejects(
      full.append({ phase: 'intent', n: 3 }),
      { code: 'ENOSPC' },
      'still failing, nothing queued behind it',
    )
    // Room again: the file is back, and the next line follows its real end.
    rmSync(file)
    writeFileSync(file, written)
    t.equal(await full.append({ phase: 'intent', n: 3 }), 3)
    await full.close()
    t.same(
      lines(file).map((r) => r.n),
      [1, 2, 3],
    )
    t.equal((await verifyTrail([file])).ok, true)
  },
)

t.test('a closed trail refuses lines', async (t) => {
  const trail = await AuditTrail.open({ file: join(tempDir(t), 'a.jsonl') })
  await trail.close()
  await trail.close()
  await t.rejects(trail.append({ phase: 'intent' }), /closed/)
})
