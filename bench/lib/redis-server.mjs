/**
 * A redis-server for the bench rows that need one (Debian's package, installed when missing as `npm
 * test` does): the binary, a free loopback port, and the wait for PONG.
 */
import { execFileSync } from 'node:child_process'
import { createServer, Socket } from 'node:net'

export function ensureRedis() {
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

export const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })

export async function pong(port) {
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
