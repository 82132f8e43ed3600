/**
 * Child process: a redis-server (Debian's package; the bench installs it when
 * missing, as it does wrk) on a free loopback port, no persistence, started and
 * stopped by pid; it runs on this child's core (the pin is inherited). Messages:
 * `freeze` (SIGSTOP), `thaw` (SIGCONT). Options: none.
 */
import { execFileSync, spawn } from 'node:child_process'
import { createServer, Socket } from 'node:net'
import { serveAsChild } from '../lib/child.mjs'

function ensureRedis() {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim()
  } catch {
    if (process.getuid?.() !== 0) throw new Error('redis-server is missing: apt-get install -y redis-server')
    execFileSync(
      'sh',
      ['-c', 'apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server'],
      {
        stdio: 'ignore',
      },
    )
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim()
  }
}

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })

async function pong(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = new Socket()
      s.setTimeout(200, () => {
        s.destroy()
        resolve(false)
      })
      s.on('error', () => resolve(false))
      s.on('data', (d) => {
        s.destroy()
        resolve(d.toString().includes('PONG'))
      })
      s.connect(port, '127.0.0.1', () => s.write('PING\r\n'))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error('redis-server did not answer')
}

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
