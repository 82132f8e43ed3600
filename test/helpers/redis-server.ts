/**
 * A real `redis-server` (Debian's package; `npm test` installs it) for a test: on a
 * free loopback port, no persistence, started and stopped by pid, and faults
 * the shared-store tests need: stop (refused), freeze/thaw (SIGSTOP/SIGCONT)
 * and restart empty on the same port.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createServer, Socket } from 'node:net'
import type { Test } from 'tap'

export const REDIS_MISSING =
  'redis-server is not installed: run `apt-get install -y redis-server` (`npm test` does it as root)'

export function findRedisServer(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null
  } catch {
    return null
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => resolve(port))
    })
  })
}

/** Resolves once something answers PING on the port with PONG (bounded). */
async function waitForPong(port: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = new Socket()
      let buf = ''
      s.setTimeout(300, () => {
        s.destroy()
        resolve(false)
      })
      s.on('error', () => resolve(false))
      s.on('data', (d) => {
        buf += d.toString()
        if (buf.includes('PONG')) {
          s.destroy()
          resolve(true)
        }
      })
      s.connect(port, '127.0.0.1', () => s.write('PING\r\n'))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

export interface TestRedis {
  readonly port: number
  readonly url: string
  /** Stops the server (connections refused) until `start`. */
  stop(): Promise<void>
  /** Starts it again on the same port, empty. */
  start(): Promise<void>
  freeze(): void
  thaw(): void
}

export async function startRedis(t: Test): Promise<TestRedis> {
  const bin = findRedisServer()
  if (!bin) throw new Error(REDIS_MISSING)
  const port = await freePort()
  let proc: ChildProcess | null = null
  let frozen = false
  const start = async () => {
    proc = spawn(
      bin,
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
      ],
      { stdio: 'ignore' },
    )
    await waitForPong(port)
  }
  const stop = async () => {
    const p = proc
    proc = null
    if (!p || p.exitCode !== null) return
    if (frozen) {
      p.kill('SIGCONT')
      frozen = false
    }
    const exited = new Promise((r) => p.once('exit', r))
    p.kill('SIGKILL')
    await exited
  }
  await start()
  t.teardown(stop)
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    freeze() {
      proc?.kill('SIGSTOP')
      frozen = true
    },
    thaw() {
      proc?.kill('SIGCONT')
      frozen = false
    },
  }
}
