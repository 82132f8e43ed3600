/**
 * An audit trail that proves itself (SPEC 14), attacked as issue 36 attacked the chain alone, by
 * someone who can write the file: every attack that `audit verify` passed before now fails given the
 * public key (a rewrite with every `prev` recomputed, a write removed and `seq` renumbered) or the
 * head kept beside the file (the last lines deleted, the file emptied); a restart on an emptied
 * trail writes a `gap` line; rotated files begin with a checkpoint, so what retention keeps verifies;
 * several instances' files verify each chain on its own.
 */
import { createHash, generateKeyPairSync } from 'node:crypto'
import { readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import t, { type Test } from 'tap'
import { runAudit } from '../../src/audit/command.js'
import { trailFiles } from '../../src/audit/files.js'
import { AuditTrail } from '../../src/audit/writer.js'
import type { RedisStorePolicy } from '../../src/policy/types.js'
import { urlEndpoint } from '../../src/store/redis-client.js'
import { openSharedStore, redisStorePolicy } from '../../src/store/shared-store.js'
import { runCommand } from '../helpers/command-io.js'
import { tempDir } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis-server.js'

const run = (argv: string[]) => runCommand(runAudit, argv, {})

function keys(dir: string) {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519')
  const pub = join(dir, 'audit-key.pub.pem')
  writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }))
  return { privateKey, pub }
}

/** 20 write lines by one instance with a key (a checkpoint every 5 lines' worth of time) and a clean stop. */
async function signedTrail(t: Test, opts: { instance?: string; dir?: string } = {}) {
  const dir = opts.dir ?? tempDir(t)
  const { privateKey, pub } = keys(dir)
  const file = join(dir, opts.instance ? `audit-${opts.instance}.jsonl` : 'audit.jsonl')
  let clock = Date.UTC(2026, 11, 1)
  const writer = await AuditTrail.open({
    file,
    signingKey: privateKey,
    checkpointMs: 5000,
    now: () => clock,
    ...(opts.instance ? { instance: opts.instance } : {}),
  })
  for (let i = 0; i < 20; i++) {
    clock += 1000
    await writer.append({
      phase: i % 2 ? 'outcome' : 'intent',
      consumer: 'crm',
      client: '10.0.0.9',
      UserID: `U${i}`,
      fields: { Name: `Name ${i}` },
    })
  }
  await writer.close()
  return { dir, file, pub, privateKey }
}

const readLines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')

/** The attacker's tool: the lines changed, then every `prev` (and a checkpoint's `head`) recomputed. */
function rechain(lines: string[]): string[] {
  let prev = '0'.repeat(64)
  return lines.map((line, i) => {
    const record = JSON.parse(line) as Record<string, unknown>
    record.seq = i + 1
    record.prev = prev
    if ('head' in record) record.head = prev
    const { seq, prev: p, ...rest } = record
    const text = JSON.stringify({ seq, prev: p, ...rest })
    prev = createHash('sha256').update(text).digest('hex')
    return text
  })
}

t.test('a signed trail verifies with its public key; checkpoints are in it', async (t) => {
  const { file, pub } = await signedTrail(t)
  const phases = readLines(file).map((l) => (JSON.parse(l) as { phase: string }).phase)
  t.ok(phases.filter((p) => p === 'checkpoint').length >= 4, 'a checkpoint at least every 5 s of lines')
  t.equal(phases[phases.length - 1], 'checkpoint', 'and one at the clean stop')
  const r = await run(['verify', '--public-key', pub, file])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /signed checkpoints verified, 0 lines after the last/)
})

t.test(
  'the whole file rewritten, one consumer, client and Name changed, every prev recomputed',
  async (t) => {
    const { file, pub } = await signedTrail(t)
    const lines = readLines(file)
    const edited = lines.map((l, i) =>
      i === 3
        ? l
            .replace('"consumer":"crm"', '"consumer":"other"')
            .replace('10.0.0.9', '10.6.6.6')
            .replace('Name 3', 'Someone')
        : l,
    )
    writeFileSync(file, `${rechain(edited).join('\n')}\n`)
    const without = await run(['verify', file])
    t.equal(without.code, 0, 'the chain alone is fooled (the attack of issue 36)')
    const r = await run(['verify', '--public-key', pub, file])
    t.equal(r.code, 1, 'the signature is not')
    t.match(r.stderr, /checkpoint: the signature does not verify/)
  },
)

t.test('a write removed and seq renumbered', async (t) => {
  const { file, pub } = await signedTrail(t)
  const lines = readLines(file)
  writeFileSync(file, `${rechain(lines.filter((_, i) => i !== 2)).join('\n')}\n`)
  const r = await run(['verify', '--public-key', pub, file])
  t.equal(r.code, 1)
  t.match(r.stderr, /signature does not verify/)
})

t.test('the last lines deleted, the file emptied: truncated; a restart writes a gap line', async (t) => {
  const { file, pub, privateKey } = await signedTrail(t)
  const lines = readLines(file)
  writeFileSync(file, `${lines.slice(0, lines.length - 4).join('\n')}\n`)
  const cut = await run(['verify', '--public-key', pub, file])
  t.equal(cut.code, 1, 'the last lines deleted')
  t.match(cut.stderr, /truncated: the trail ends at seq \d+, but its writer recorded seq 2\d/)
  truncateSync(file, 0)
  const empty = await run(['verify', '--public-key', pub, file])
  t.equal(empty.code, 1, 'the file emptied')
  t.match(empty.stderr, /truncated/)

  const gaps: unknown[] = []
  const again = await AuditTrail.open({ file, signingKey: privateKey, onGap: (g) => gaps.push(g) })
  await again.append({ phase: 'intent', UserID: 'after' })
  await again.close()
  t.equal(gaps.length, 1, 'the writer saw the gap')
  const first = JSON.parse(readLines(file)[0] as string) as Record<string, unknown>
  t.match(first, { seq: 1, phase: 'gap', found: { seq: 0 }, known: { seq: Number } })
  t.type(first.signature, 'string', 'signed')
  const r = await run(['verify', '--public-key', pub, file])
  t.equal(r.code, 1, 'verify reports the gap')
  t.match(r.stderr, /gap: at a start the trail was found shorter than its last checkpoint/)
})

t.test(
  'rotated files begin with a checkpoint: what retention keeps verifies without the oldest',
  async (t) => {
    const dir = tempDir(t)
    const { privateKey, pub: pub2 } = keys(dir)
    const f = join(dir, 'audit.jsonl')
    const w = await AuditTrail.open({ file: f, signingKey: privateKey, maxBytes: 65_536 })
    for (let i = 0; i < 12; i++) await w.append({ phase: 'intent', UserID: `U${i}`, pad: 'p'.repeat(12_000) })
    await w.close()
    const files = await trailFiles(f)
    t.ok(files.length >= 3, `rotated into ${files.length} files`)
    for (const later of files.slice(1)) {
      t.match(
        JSON.parse(readLines(later)[0] as string),
        { phase: 'checkpoint' },
        `${later} begins with a checkpoint`,
      )
    }
    const kept = await run(['verify', '--public-key', pub2, ...files.slice(1)])
    t.equal(kept.code, 0, `the oldest deleted, the rest verifies: ${kept.stderr}`)
  },
)

t.test('three instances: each chain verified on its own, an edit named in its instance', async (t) => {
  const dir = tempDir(t)
  const trails = []
  for (const instance of ['gw1', 'gw2', 'gw3']) trails.push(await signedTrail(t, { instance, dir }))
  const files = trails.map((x) => x.file)
  const r = await run(['verify', ...files])
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.trim().split('\n').length, 3, 'one line per instance')
  t.match(r.stdout, /^gw1: audit trail intact/m)
  const lines = readLines(files[1] as string)
  writeFileSync(
    files[1] as string,
    `${lines.map((l, i) => (i === 4 ? l.replace('U4', 'U9') : l)).join('\n')}\n`,
  )
  const broken = await run(['verify', ...files])
  t.equal(broken.code, 1)
  t.match(broken.stdout, /^gw2: audit trail broken/m)
  t.match(broken.stdout, /^gw1: audit trail intact/m)
})

t.test(
  'retention deletes only rotated files past retainDays, never the current one nor under legal hold',
  async (t) => {
    const dir = tempDir(t)
    const { privateKey, pub } = keys(dir)
    const file = join(dir, 'audit.jsonl')
    const day = 86_400_000
    let clock = Date.UTC(2024, 0, 1)
    const write = async (retainDays: number | null, n: number) => {
      const w = await AuditTrail.open({
        file,
        signingKey: privateKey,
        maxBytes: 65_536,
        now: () => clock,
        retainDays,
      })
      for (let i = 0; i < n; i++) {
        clock += 30 * day
        await w.append({ phase: 'intent', pad: 'p'.repeat(20_000) })
      }
      await w.close()
    }
    // Two years of lines, a file every ~three lines (a month apart), kept under legal hold.
    await write(null, 24)
    const all = await trailFiles(file)
    t.ok(all.length >= 8, `${all.length} files`)
    await write(null, 0)
    t.same(await trailFiles(file), all, 'legal hold: nothing deleted')
    // A year's retention: the files whose newest line is older than a year go; the rest verifies.
    await write(365, 0)
    const kept = await trailFiles(file)
    t.ok(
      kept.length < all.length && kept.length > 1,
      `${all.length - kept.length} deleted, ${kept.length} kept`,
    )
    t.ok(kept.includes(file), 'the current file is kept')
    const oldestKept = readLines(kept[0] as string)
    const newest = (l: string[]) =>
      Date.parse((JSON.parse(l[l.length - 1] as string) as { time: string }).time)
    t.ok(newest(oldestKept) >= clock - 365 * day, 'the oldest kept is within the year')
    const r = await run(['verify', '--public-key', pub, ...kept])
    t.equal(r.code, 0, `what remains verifies: ${r.stderr}`)
  },
)

t.test(
  'with a store, the head is kept in Redis too: the file and its .head both removed still give a gap',
  async (t) => {
    const redis = await startRedis(t)
    const shared = openSharedStore({
      redis: redisStorePolicy(null, redis.url) as RedisStorePolicy,
      endpoint: urlEndpoint(redis.url),
      upstreamTimeoutMs: 1000,
      cacheTtlMs: 1000,
    })
    t.teardown(() => shared.close())
    const dir = tempDir(t)
    const file = join(dir, 'audit.jsonl')
    const first = await AuditTrail.open({ file, instance: 'gw1', headStore: shared.auditHeads })
    for (let i = 0; i < 5; i++) await first.append({ phase: 'intent', UserID: `U${i}` })
    await first.close()
    const deadline = Date.now() + 5000
    while (
      (await shared.auditHeads.get('gw1', 'audit.jsonl').catch(() => null))?.seq !== 5 &&
      Date.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 20))
    }
    t.match(await shared.auditHeads.get('gw1', 'audit.jsonl'), { seq: 5 }, 'the head is in the store')
    const admin = new Redis(redis.url)
    t.teardown(() => admin.disconnect())
    const keys = await admin.keys('*audit*')
    t.equal(keys.length, 1)
    t.ok((await admin.pttl(keys[0] as string)) > 0, 'with a TTL')
    t.ok(
      keys.every((k) => !k.includes('gw1')),
      'the key names no instance in clear',
    )

    rmSync(file)
    rmSync(join(dir, '.audit.jsonl.head'))
    const gaps: unknown[] = []
    const again = await AuditTrail.open({
      file,
      instance: 'gw1',
      headStore: shared.auditHeads,
      onGap: (g) => gaps.push(g),
    })
    await again.close()
    t.equal(gaps.length, 1, 'a gap, from the head the store kept')
    t.match(JSON.parse(readLines(file)[0] as string), { phase: 'gap', known: { seq: 5 }, found: { seq: 0 } })
  },
)
