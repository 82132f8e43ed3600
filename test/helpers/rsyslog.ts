/**
 * A real rsyslogd (Debian's `rsyslog`; `npm test` installs it) for the audit trail's off-host copy:
 * `imtcp` on a free loopback port (octet-counted framing is on by default), each message's MSG
 * written as one line to a file; started and stopped by pid, restartable on the same port.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { join } from 'node:path'
import type { Test } from 'tap'
import { tempDir } from './gateway.js'
import { freePort } from './redis-server.js'

export const RSYSLOG_MISSING =
  'rsyslogd is not installed: run `apt-get install -y rsyslog` (`npm test` does it as root)'

export function findRsyslogd(): string | null {
  try {
    return (
      execFileSync('sh', ['-c', 'command -v rsyslogd || ls /usr/sbin/rsyslogd'], {
        encoding: 'utf8',
      }).trim() || null
    )
  } catch {
    return null
  }
}

async function accepting(port: number, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket()
      s.once('error', () => resolve(false))
      s.connect(port, '127.0.0.1', () => {
        s.destroy()
        resolve(true)
      })
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`rsyslogd did not listen on ${port}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

export interface TestRsyslog {
  readonly port: number
  /** The file holding each received message's MSG, one per line. */
  readonly copy: string
  stop(): Promise<void>
  start(): Promise<void>
}

export async function startRsyslog(t: Test): Promise<TestRsyslog> {
  const bin = findRsyslogd()
  if (!bin) throw new Error(RSYSLOG_MISSING)
  const dir = tempDir(t)
  const port = await freePort()
  const copy = join(dir, 'copy.log')
  const conf = join(dir, 'rsyslog.conf')
  writeFileSync(
    conf,
    [
      `global(workDirectory="${dir}" maxMessageSize="256k")`,
      'module(load="imtcp")',
      `input(type="imtcp" address="127.0.0.1" port="${port}")`,
      'template(name="msg" type="string" string="%msg%\\n")',
      `action(type="omfile" file="${copy}" template="msg" flushOnTXEnd="on" asyncWriting="off")`,
      '',
    ].join('\n'),
  )
  let proc: ChildProcess | null = null
  const start = async () => {
    proc = spawn(bin, ['-n', '-f', conf, '-i', join(dir, 'rsyslogd.pid')], { stdio: 'ignore' })
    await accepting(port)
  }
  const stop = async () => {
    const p = proc
    proc = null
    if (!p || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGTERM')
    await exited
  }
  await start()
  t.teardown(stop)
  return { port, copy, stop, start }
}
