/**
 * Child process: a redis-server (Debian's package; the bench installs it when
 * missing, as it does wrk) on a free loopback port, no persistence, started and
 * stopped by pid; it runs on this child's core (the pin is inherited). Messages:
 * `freeze` (SIGSTOP), `thaw` (SIGCONT). Options: none.
 */
import { spawn } from 'node:child_process'
import { serveAsChild } from '../lib/child.mjs'
import { ensureRedis, freePort, pong } from '../lib/redis-server.mjs'

serveAsChild(async () => {
  const bin = ensureRedis()
  const port = await freePort()
  const proc = spawn(
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  )
  await pong(port)
  return {
    info: { url: `redis://127.0.0.1:${port}`, pid: proc.pid },
    handle(type) {
      if (type === 'freeze') proc.kill('SIGSTOP')
      else if (type === 'thaw') proc.kill('SIGCONT')
      else throw new Error(`unknown ${type}`)
      return null
    },
    close() {
      proc.kill('SIGCONT')
      proc.kill('SIGKILL')
    },
  }
})
