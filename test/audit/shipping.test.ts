/**
 * The off-host copy (SPEC 14) against a real rsyslogd: every line arrives, in order, including those
 * written while the receiver was stopped; `audit verify --shipped` then catches what the local file
 * alone cannot (the last lines deleted with the head beside it, an emptied file, a line changed with
 * the chain recomputed); a full queue drops the oldest, counted. Lines never wait for the receiver.
 */
import { existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runAudit } from '../../src/audit/command.js'
import { SyslogShipper } from '../../src/audit/syslog-shipper.js'
import { AuditTrail } from '../../src/audit/writer.js'
import { runCommand } from '../helpers/command-io.js'
import { tempDir } from '../helpers/gateway.js'
import { findRsyslogd, RSYSLOG_MISSING, startRsyslog } from '../helpers/rsyslog.js'

if (!findRsyslogd()) t.fail(RSYSLOG_MISSING)

const run = (argv: string[]) => runCommand(runAudit, argv, {})
const lines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : []

async function until(what: string, ok: () => boolean, ms = 10_000) {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

t.test('every line reaches rsyslog in order, those written while it was away too', async (t) => {
  const rsyslog = await startRsyslog(t)
  const counts = { ok: 0, dropped: 0 }
  const shipper = new SyslogShipper({
    host: '127.0.0.1',
    port: rsyslog.port,
    tls: false,
    queueBytes: 1 << 20,
    onShipped: (result, n) => {
      counts[result] += n
    },
  })
  t.teardown(() => shipper.close(0))
  const file = join(tempDir(t), 'audit.jsonl')
  const trail = await AuditTrail.open({ file, instance: 'gw1', onLines: (l) => shipper.ship(l) })
  await until('connected', () => shipper.connected)
  for (let i = 0; i < 20; i++)
    await trail.append({ phase: 'intent', UserID: `U${i}`, note: 'a "quoted" \\ value' })
  await until('20 lines shipped', () => lines(rsyslog.copy).length >= 20)

  await rsyslog.stop()
  await until('the shipper saw the receiver go', () => !shipper.connected)
  const started = performance.now()
  for (let i = 20; i < 30; i++) await trail.append({ phase: 'intent', UserID: `U${i}` })
  t.ok(performance.now() - started < 1000, 'lines are written at once while the receiver is away')
  t.ok(shipper.queueBytes > 0, 'and wait in the queue')
  await rsyslog.start()
  await until('30 lines shipped', () => lines(rsyslog.copy).length >= 30)
  await trail.close()
  await until('the last checkpoint-free close shipped', () => shipper.queueBytes === 0)

  const shipped = lines(rsyslog.copy).map((l) => JSON.parse(l) as { seq: number })
  t.same(
    shipped.map((l) => l.seq),
    Array.from({ length: 30 }, (_, i) => i + 1),
    'in order, none lost, none twice',
  )
  t.same(lines(rsyslog.copy), lines(file), 'the MSG of each message is the line itself')
  t.equal(counts.ok, 30)
  t.equal(counts.dropped, 0)

  t.equal((await run(['verify', '--shipped', rsyslog.copy, file])).code, 0, 'local and copy agree')

  // The attacks the copy answers, with the head beside the file gone too.
  rmSync(join(file, '..', '.audit.jsonl.head'), { force: true })
  const whole = lines(file)
  writeFileSync(file, `${whole.slice(0, 25).join('\n')}\n`)
  const cut = await run(['verify', file])
  t.equal(cut.code, 0, 'the file alone looks intact after its last lines were deleted')
  const caught = await run(['verify', '--shipped', rsyslog.copy, file])
  t.equal(caught.code, 1)
  t.match(caught.stderr, /truncated: the trail ends at seq 25, the off-host copy holds lines up to seq 30/)

  writeFileSync(file, `${whole.map((l, i) => (i === 4 ? l.replace('U4', 'U9') : l)).join('\n')}\n`)
  const edited = await run(['verify', '--shipped', rsyslog.copy, file])
  t.equal(edited.code, 1)
  t.match(edited.stderr, /seq 5 differs from the off-host copy|prev is not the hash/)

  truncateSync(file, 0)
  const emptied = await run(['verify', '--shipped', rsyslog.copy, file])
  t.equal(emptied.code, 1, 'an emptied file')
  t.match(emptied.stderr, /truncated: the off-host copy holds gw1's lines up to seq 30/)
})

t.test('a full queue drops the oldest and counts them; nothing waits', async (t) => {
  let dropped = 0
  // A port nothing listens on: the receiver is away for the whole test.
  const shipper = new SyslogShipper({
    host: '127.0.0.1',
    port: 9,
    tls: false,
    queueBytes: 65_536,
    onShipped: (result, n) => {
      if (result === 'dropped') dropped += n
    },
  })
  t.teardown(() => shipper.close(0))
  const line = JSON.stringify({ seq: 1, prev: '0'.repeat(64), pad: 'x'.repeat(200) })
  for (let i = 0; i < 1000; i++) shipper.ship([line])
  t.ok(shipper.queueBytes <= 65_536, `bounded: ${shipper.queueBytes} bytes queued`)
  t.ok(dropped > 600, `${dropped} oldest dropped and counted`)
})
