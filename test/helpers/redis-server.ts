/**
 * A real `redis-server` (Debian's package; `npm test` installs it) for a test: on a
 * free loopback port, no persistence, started and stopped by pid, and faults
 * the shared-store tests need: stop (refused), freeze/thaw (SIGSTOP/SIGCONT)
 * and restart empty on the same port.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
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

/** A free TCP port on loopback (for the servers the tests start). */
export async function freePort(): Promise<number> {
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

/** One redis-server process (a sentinel too) on a loopback port, killed with the test. */
export interface RedisProcess {
  readonly port: number
  readonly address: string
  kill(): Promise<void>
  freeze(): void
  thaw(): void
}

async function spawnRedis(t: Test, args: string[], port: number, cwd?: string): Promise<RedisProcess> {
  const bin = findRedisServer()
  if (!bin) throw new Error(REDIS_MISSING)
  const proc = spawn(bin, args, { stdio: 'ignore', ...(cwd ? { cwd } : {}) })
  let frozen = false
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return
    if (frozen) proc.kill('SIGCONT')
    const exited = new Promise((r) => proc.once('exit', r))
    proc.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  await waitForPong(port)
  return {
    port,
    address: `127.0.0.1:${port}`,
    kill,
    freeze() {
      proc.kill('SIGSTOP')
      frozen = true
    },
    thaw() {
      proc.kill('SIGCONT')
      frozen = false
    },
  }
}

const NO_PERSISTENCE = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']

/** Sends one command (inline protocol) and resolves with the raw reply, bounded. */
export async function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = new Socket()
    let buf = ''
    const timer = setTimeout(() => {
      s.destroy()
      resolve(buf)
    }, 300)
    s.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    s.on('data', (d) => {
      buf += d.toString()
    })
    s.connect(port, '127.0.0.1', () => s.write(`${args.join(' ')}\r\n`))
  })
}

export interface TestSentinels {
  readonly name: string
  /** The servers: [0] starts as master, [1] as its replica. */
  readonly servers: readonly RedisProcess[]
  readonly sentinels: readonly RedisProcess[]
  /** `host:port` of each sentinel, for `store.redis.sentinels`. */
  readonly addresses: readonly string[]
  /** The port of the master the sentinels name now. */
  masterPort(): Promise<number>
  /** Resolves once the sentinels name a master other than `port` (bounded). */
  promotedFrom(port: number, ms?: number): Promise<number>
}

/**
 * A master, a replica and three sentinels (quorum 2, down-after 1 s) on loopback, as SPEC 15's tests
 * ask; resolves once every sentinel knows the replica and the other sentinels.
 */
export async function startSentinels(t: Test): Promise<TestSentinels> {
  const name = 'gwmaster'
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-sentinel-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const masterPort = await freePort()
  const master = await spawnRedis(t, ['--port', String(masterPort), ...NO_PERSISTENCE], masterPort)
  const replicaPort = await freePort()
  const replica = await spawnRedis(
    t,
    ['--port', String(replicaPort), ...NO_PERSISTENCE, '--replicaof', '127.0.0.1', String(masterPort)],
    replicaPort,
  )
  const sentinels: RedisProcess[] = []
  for (let i = 0; i < 3; i++) {
    const port = await freePort()
    const file = join(dir, `sentinel-${i}.conf`)
    writeFileSync(
      file,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `sentinel monitor ${name} 127.0.0.1 ${masterPort} 2`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 3000`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    )
    sentinels.push(await spawnRedis(t, [file, '--sentinel'], port, dir))
  }
  const masterPortNow = async () => {
    for (const s of sentinels) {
      try {
        const reply = await redisCommand(s.port, 'SENTINEL', 'get-master-addr-by-name', name)
        const m = /\r\n(\d+)\r\n$/.exec(reply)
        if (m) return Number(m[1])
      } catch {
        // The next sentinel.
      }
    }
    return 0
  }
  // Sentinels find the replica and each other through the master (hello messages every 2 s).
  const deadline = Date.now() + 15_000
  for (;;) {
    const replies = await Promise.all(sentinels.map((s) => redisCommand(s.port, 'SENTINEL', 'master', name)))
    const ready = replies.every(
      (r) => /num-slaves\r\n\$1\r\n1\r\n/.test(r) && /num-other-sentinels\r\n\$1\r\n2\r\n/.test(r),
    )
    if (ready) break
    if (Date.now() > deadline) throw new Error('the sentinels did not find each other in time')
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    name,
    servers: [master, replica],
    sentinels,
    addresses: sentinels.map((s) => s.address),
    masterPort: masterPortNow,
    async promotedFrom(port, ms = 15_000) {
      const until = Date.now() + ms
      for (;;) {
        const now = await masterPortNow()
        if (now !== 0 && now !== port) return now
        if (Date.now() > until) throw new Error('no failover in time')
        await new Promise((r) => setTimeout(r, 50))
      }
    },
  }
}

/** A Redis Cluster of `n` masters (no replicas), made with `redis-cli --cluster create`. */
export async function startRedisCluster(t: Test, n = 3): Promise<{ addresses: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-cluster-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const nodes: RedisProcess[] = []
  for (let i = 0; i < n; i++) {
    const port = await freePort()
    const args = ['--port', String(port), ...NO_PERSISTENCE, '--cluster-enabled', 'yes']
    args.push('--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000')
    nodes.push(await spawnRedis(t, args, port, dir))
  }
  const cli = execFileSync('sh', ['-c', 'command -v redis-cli'], { encoding: 'utf8' }).trim()
  execFileSync(cli, ['--cluster', 'create', ...nodes.map((x) => x.address), '--cluster-yes'], {
    stdio: 'ignore',
    timeout: 30_000,
  })
  const deadline = Date.now() + 15_000
  for (;;) {
    const infos = await Promise.all(nodes.map((x) => redisCommand(x.port, 'CLUSTER', 'INFO')))
    if (infos.every((i) => i.includes('cluster_state:ok'))) break
    if (Date.now() > deadline) throw new Error('the cluster did not become ok in time')
    await new Promise((r) => setTimeout(r, 100))
  }
  return { addresses: nodes.map((x) => x.address) }
}
