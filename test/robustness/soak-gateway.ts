/**
 * The gateway process of the soak (test/robustness/soak.test.ts forks it with
 * --expose-gc, so RSS and event-loop delay are measured on the gateway alone,
 * not on the load generator). It serves in front of `SOAK_UPSTREAM` and answers
 * the parent's IPC messages:
 *   { type: 'sample', gc: boolean } → { type: 'sample', rss, heapUsed, external, elMaxMs, elP99Ms, busyMaxMs }
 *   { type: 'block', ms }           → { type: 'block' } after blocking the event loop for ms (calibration)
 *   { type: 'reset-delay' }         → { type: 'reset-delay' } (event-loop meters restarted)
 *   { type: 'stop' }                → { type: 'stopped', unhandled, uncaught, warnings }, then exits
 * It exits on its own if the parent goes away. Without SOAK_UPSTREAM and an IPC
 * channel it does nothing (tap runs it when given the whole directory).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { Writable } from 'node:stream'
import { buildApp } from '../../src/app.js'
import { LOG_REDACT_PATHS } from '../../src/logging.js'
import { loadPolicy } from '../../src/policy/load.js'
import { PERMISSIVE_DEFAULT, writePolicyDir } from '../helpers/gateway.js'

/** upstream.timeoutMs of the soak (soak.test.ts keeps the same figure). */
const SOAK_TIMEOUT_MS = 1000

const problems = { unhandled: [] as string[], uncaught: [] as string[], warnings: [] as string[] }
process.on('unhandledRejection', (reason) => problems.unhandled.push(String(reason).slice(0, 300)))
process.on('uncaughtException', (err) => problems.uncaught.push(String(err).slice(0, 300)))
process.on('warning', (w) => problems.warnings.push(`${w.name}: ${w.message}`.slice(0, 300)))

const send = (msg: object) => process.send?.(msg)

const TICK_MS = 10

/**
 * Event-loop stalls the gateway itself causes. `monitorEventLoopDelay` also
 * counts the time the OS gives the CPU to other processes (on a busy 2-core
 * machine running other test files, that alone reaches hundreds of ms). A tick
 * that comes late by G ms while the event-loop thread ran C ms on a CPU was
 * blocked by its own work for at most min(G, C): that bound is what is kept. C
 * is the main thread's own run time (Linux's /proc/self/schedstat, which counts
 * the thread group leader only), so the listing worker, the thread pool's
 * compression and GC helper threads are not counted as a stall of the loop.
 * Where that file is missing, C is the whole process's CPU time, which
 * over-counts but never under-counts work on the event loop.
 */
function stallMeter() {
  let busyMaxMs = 0
  let lastWall = performance.now()
  let lastCpu = loopThreadCpuMs()
  const timer = setInterval(() => {
    const wall = performance.now()
    const cpu = loopThreadCpuMs()
    const lateMs = wall - lastWall - TICK_MS
    if (lateMs > 0) busyMaxMs = Math.max(busyMaxMs, Math.min(lateMs, cpu - lastCpu))
    lastWall = wall
    lastCpu = cpu
  }, TICK_MS)
  return {
    get busyMaxMs() {
      return busyMaxMs
    },
    reset() {
      busyMaxMs = 0
      lastWall = performance.now()
      lastCpu = loopThreadCpuMs()
    },
    stop() {
      clearInterval(timer)
    },
  }
}

/** The first field of /proc/self/schedstat: nanoseconds the main thread has run on a CPU. */
function schedstatMs(): number | null {
  try {
    const ns = Number(readFileSync('/proc/self/schedstat', 'utf8').split(' ')[0])
    return Number.isFinite(ns) ? ns / 1e6 : null
  } catch {
    return null
  }
}

const HAS_SCHEDSTAT = schedstatMs() !== null

/** CPU time of the event-loop thread where the OS tells it apart, else of the whole process. */
function loopThreadCpuMs(): number {
  if (HAS_SCHEDSTAT) return schedstatMs() as number
  return cpuMs()
}

function cpuMs(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

async function main(): Promise<void> {
  const upstreamUrl = process.env.SOAK_UPSTREAM as string
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-gw-soak-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  writePolicyDir(dir, {
    gateway: {
      upstream: {
        timeoutMs: SOAK_TIMEOUT_MS,
        connectTimeoutMs: SOAK_TIMEOUT_MS,
        circuit: { failures: 5, resetSeconds: 1 },
      },
      auth: { failureLimit: { max: 0 } },
      rateLimit: { max: 100_000_000, timeWindow: '1 minute' },
      cache: { ttlSeconds: 2, staleIfErrorSeconds: 30 },
      limits: { bodyBytes: 16384 },
    },
    consumers: { default: PERMISSIVE_DEFAULT },
  })
  const loaded = await loadPolicy(dir, {})
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'))
  // Production logging (info, redacted), into a sink: the cost is measured, the bytes dropped.
  const sink = new Writable({ write: (_c, _e, cb) => cb() })
  const app = await buildApp({
    policy: loaded.policy,
    upstreamUrl,
    logger: { level: 'info', stream: sink, redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' } },
    probe: false,
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const delay = monitorEventLoopDelay({ resolution: 10 })
  delay.enable()
  const stalls = stallMeter()

  process.on('message', (msg: { type: string; gc?: boolean; ms?: number }) => {
    if (msg.type === 'sample') {
      const maxMs = delay.max / 1e6
      const p99Ms = delay.percentile(99) / 1e6
      const busyMaxMs = stalls.busyMaxMs
      if (msg.gc) (globalThis as { gc?: () => void }).gc?.()
      const mem = process.memoryUsage()
      send({
        type: 'sample',
        rss: mem.rss,
        heapUsed: mem.heapUsed,
        external: mem.external,
        elMaxMs: maxMs,
        elP99Ms: p99Ms,
        busyMaxMs,
      })
    } else if (msg.type === 'block') {
      // Calibration: a real stall of the event loop, which the meters must see. Counted in
      // CPU time, so a busy machine stretches it rather than shortening the work.
      const until = loopThreadCpuMs() + (msg.ms ?? 0)
      while (loopThreadCpuMs() < until) {
        // busy on purpose
      }
      send({ type: 'block' })
    } else if (msg.type === 'reset-delay') {
      delay.reset()
      stalls.reset()
      send({ type: 'reset-delay' })
    } else if (msg.type === 'stop') {
      delay.disable()
      stalls.stop()
      void app.close().then(() => {
        send({ type: 'stopped', ...problems })
        process.disconnect?.()
      })
    }
  })
  process.on('disconnect', () => {
    void app.close().finally(() => process.exit(0))
  })
  send({ type: 'ready', url, gc: typeof (globalThis as { gc?: unknown }).gc === 'function' })
}

// Only as the soak's child: run directly (tap given this directory), it has nothing to do.
if (process.env.SOAK_UPSTREAM && process.send) {
  main().catch((err: unknown) => {
    send({ type: 'failed', error: String(err) })
    process.exitCode = 1
    process.disconnect?.()
  })
}
