/**
 * Child process: the highly available stores of row 15 (SPEC 15), on loopback, stopped by pid.
 * Options `{ kind: 'sentinel' }`: a master, a replica and three sentinels (quorum 2, down-after
 * 1 s); info `{ url }` (`redis+sentinel://…`). Handlers `kill-master` (SIGKILL; returns `hostNow`)
 * and `promoted` (waits until the sentinels name another master; returns `hostNow` then).
 * Options `{ kind: 'cluster' }`: three masters made with `redis-cli --cluster create`; info
 * `{ nodes }` (`host:port` each).
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hostNow, serveAsChild } from '../lib/child.mjs'
import { ensureRedis, freePort, pong } from '../lib/redis-server.mjs'

const NO_PERSISTENCE = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']

/** One command (inline protocol), the raw reply as it stands after 200 ms. */
function command(port, ...args) {
  return new Promise((resolve) => {
    const s = new Socket()
    let buf = ''
    setTimeout(() => {
      s.destroy()
      resolve(buf)
    }, 200)
    s.on('error', () => resolve(buf))
    s.on('data', (d) => {
      buf += d.toString()
    })
    s.connect(port, '127.0.0.1', () => s.write(`${args.join(' ')}\r\n`))
  })
}

serveAsChild(async ({ kind }) => {
  const bin = ensureRedis()
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-bench-redis-ha-'))
  const procs = []
  const start = async (args, port) => {
    const proc = spawn(bin, args, { stdio: 'ignore', cwd: dir })
    procs.push(proc)
    await pong(port)
    return proc
  }
  const close = () => {
    for (const p of procs) p.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  if (kind === 'cluster') {
    const ports = []
    for (let i = 0; i < 3; i++) {
      const port = await freePort()
      ports.push(port)
      await start(
        [
          '--port',
          String(port),
          ...NO_PERSISTENCE,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
        ],
        port,
      )
    }
    const nodes = ports.map((p) => `127.0.0.1:${p}`)
    execFileSync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-yes'], {
      stdio: 'ignore',
      timeout: 30_000,
    })
    for (let i = 0; i < 150; i++) {
      const infos = await Promise.all(ports.map((p) => command(p, 'CLUSTER', 'INFO')))
      if (infos.every((x) => x.includes('cluster_state:ok'))) return { info: { nodes }, close }
      await new Promise((r) => setTimeout(r, 100))
    }
    close()
    throw new Error('the cluster did not become ok')
  }
  const name = 'benchmaster'
  const masterPort = await freePort()
  const master = await start(['--port', String(masterPort), ...NO_PERSISTENCE], masterPort)
  const replicaPort = await freePort()
  await start(
    ['--port', String(replicaPort), ...NO_PERSISTENCE, '--replicaof', '127.0.0.1', String(masterPort)],
    replicaPort,
  )
  const sentinels = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const file = join(dir, `sentinel-${port}.conf`)
    writeFileSync(
      file,
      `port ${port}\nbind 127.0.0.1\nsentinel monitor ${name} 127.0.0.1 ${masterPort} 2\nsentinel down-after-milliseconds ${name} 1000\nsentinel failover-timeout ${name} 3000\n`,
    )
    await start([file, '--sentinel'], port)
    sentinels.push(port)
  }
  for (let i = 0; ; i++) {
    const replies = await Promise.all(sentinels.map((p) => command(p, 'SENTINEL', 'master', name)))
    if (
      replies.every(
        (r) => /num-slaves\r\n\$1\r\n1\r\n/.test(r) && /num-other-sentinels\r\n\$1\r\n2\r\n/.test(r),
      )
    )
      break
    if (i > 150) {
      close()
      throw new Error('the sentinels did not find each other')
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  const url = `redis+sentinel://${sentinels.map((p) => `127.0.0.1:${p}`).join(',')}/${name}`
  return {
    info: { url },
    async handle(type) {
      if (type === 'kill-master') {
        master.kill('SIGKILL')
        return hostNow()
      }
      if (type === 'promoted') {
        for (let i = 0; i < 1500; i++) {
          const reply = await command(sentinels[0], 'SENTINEL', 'get-master-addr-by-name', name)
          if (reply.includes(`\r\n${replicaPort}\r\n`)) return hostNow()
        }
        throw new Error('no promotion')
      }
      throw new Error(`unknown ${type}`)
    },
    close,
  }
})
