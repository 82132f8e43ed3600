#!/usr/bin/env node
/**
 * SPEC 9 at scale (issue 14): one listing of N customers (default 1,000,000)
 * from a separate upstream process, through a gateway in this process, over
 * real sockets. Reports: the longest event-loop stall and the /healthz p99
 * (probed every 5 ms) during the first fill; the fill (last upstream byte →
 * entry ready, from ipdr_gateway_cache_fill_duration_seconds); time to a ready
 * gzip variant after the fill; entry bytes against the raw bytes; peak RSS over
 * idle; `GET /{UserID}` p50 and `?q=` p50 with the stall meanwhile; a
 * redacting consumer's first listing read (its own fill, then the redacted
 * view) with the stall meanwhile.
 *
 *   npm run build && node bench/inproc/million.mjs [N] [--emulator]
 *
 * `--emulator`: the upstream is the emulator (SQLite file, `--seed N`, its
 * listing streamed from the database) instead of a prebuilt buffer; also
 * reports how long seeding took.
 */
import { readFileSync, rmSync } from 'node:fs'
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import { request } from 'undici'
import { buildApp } from '../../dist/app.js'
import { seedUserId } from '../../dist/emulator/seed.js'
import { loadPolicy } from '../../dist/policy/load.js'
import { gatewayHeaders } from '../lib/listing-data.mjs'
import { writeBenchPolicy } from '../lib/policy.mjs'
import { killAll, LOAD_CPU, startChild } from '../lib/processes.mjs'
import { percentile } from '../lib/stats.mjs'

const args = process.argv.slice(2)
const useEmulator = args.includes('--emulator')
const n = Number(args.find((a) => !a.startsWith('--')) ?? 1_000_000)
/** A consumer with both phones redacted: its first listing read makes the redacted view. */
const REDACTED_USER = 'bench-redacted'
const log = (m) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`)
log(`building an upstream of ${n} customers${useEmulator ? ' (the emulator, seeded)' : ''}`)
const upStarted = performance.now()
const up = await startChild(
  useEmulator ? 'servers/emulator.mjs' : 'servers/big-upstream.mjs',
  useEmulator ? { seed: n } : { n },
  { cpu: LOAD_CPU, nodeArgs: ['--max-old-space-size=8192'] },
)
const upstreamStartMs = performance.now() - upStarted
// A budget that holds the entry with its index and variants (about 2 x raw): at 5 M customers that
// is over 2 GB, and an entry past the budget is served but not cached (every read would refetch it).
const dir = writeBenchPolicy({
  upstreamUrl: up.info.url,
  cacheMaxBytes: 16 * 1024 ** 3,
  redactedUsername: REDACTED_USER,
})
const loaded = await loadPolicy(dir, {})
rmSync(dir, { recursive: true, force: true })
if (!loaded.ok) throw new Error(loaded.problems.join('\n'))
const app = await buildApp({ policy: loaded.policy, upstreamUrl: up.info.url, logger: false, probe: false })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const headers = gatewayHeaders()
// `count`: the body's bytes are counted as they arrive, not kept (the client shares this process,
// and holding a 217 MB answer would count against the gateway's RSS).
const get = async (path, extra = {}, { count = false, method = 'GET' } = {}) => {
  const t = performance.now()
  const res = await request(`${base}${path}`, {
    method,
    headers: { ...headers, ...extra },
    bodyTimeout: 0,
    headersTimeout: 0,
  })
  let bytes = 0
  let body = null
  if (count) for await (const chunk of res.body) bytes += chunk.length
  else {
    body = Buffer.from(await res.body.arrayBuffer())
    bytes = body.length
  }
  return { ms: performance.now() - t, status: res.statusCode, headers: res.headers, body, bytes }
}

/**
 * What the event-loop thread did in its longest gaps: a 5 ms interval timer notes each tick's lateness
 * and, from the kernel's schedstat of this thread, how long it ran and how long it was runnable but
 * waiting for a core meanwhile, and the GC pauses that fell in it. (A gap the thread spent waiting is
 * the machine's, not the gateway's.)
 */
const GC_KINDS = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weak callbacks' }
function gapMeter() {
  const schedstat = `/proc/self/task/${process.pid}/schedstat`
  const sched = () => {
    try {
      const [run, wait] = readFileSync(schedstat, 'utf8').split(' ').map(Number)
      return { run: run / 1e6, wait: wait / 1e6 }
    } catch {
      return null
    }
  }
  const gcs = []
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      gcs.push([e.startTime, e.duration, GC_KINDS[e.detail?.kind] ?? 'other'])
  })
  gcObserver.observe({ entryTypes: ['gc'] })
  const worst = []
  let last = performance.now()
  let lastSched = sched()
  const timer = setInterval(() => {
    const now = performance.now()
    const at = sched()
    const gap = now - last - 5
    if (gap > 10 && lastSched && at) {
      worst.push({
        from: last,
        to: now,
        gapMs: gap,
        runMs: at.run - lastSched.run,
        waitMs: at.wait - lastSched.wait,
      })
      worst.sort((a, b) => b.gapMs - a.gapMs)
      worst.length = Math.min(worst.length, 5)
    }
    last = now
    lastSched = at
  }, 5)
  return {
    stop() {
      clearInterval(timer)
      gcObserver.disconnect()
      return worst.map(({ from, to, gapMs, runMs, waitMs }) => {
        const r = (x) => Number(x.toFixed(1))
        const gc = {}
        for (const [t, d, kind] of gcs) if (t < to && t + d > from) gc[kind] = r((gc[kind] ?? 0) + d)
        return { gapMs: r(gapMs), ranMs: r(runMs), waitedForCoreMs: r(waitMs), gcMs: gc }
      })
    },
  }
}

// The whole point is the first fill: measured cold.
const idleRss = process.memoryUsage().rss
let peakRss = idleRss
const rssTimer = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss)
}, 20)
const probes = []
let probing = true
const probeLoop = (async () => {
  while (probing) {
    const t = performance.now()
    const res = await request(`${base}/healthz`)
    await res.body.dump()
    probes.push(performance.now() - t)
    await new Promise((r) => setTimeout(r, 5))
  }
})()
const delay = monitorEventLoopDelay({ resolution: 5 })
delay.enable()
const gaps = gapMeter()
log('first listing read')
const first = await get('/api/ipdrcustomers', {}, { count: true })
delay.disable()
const fillStall = delay.max / 1e6
const longestGaps = gaps.stop()
probing = false
await probeLoop
clearInterval(rssTimer)
const fill = await app.gatewayMetrics.registry
  .getSingleMetric('ipdr_gateway_cache_fill_duration_seconds')
  .get()
const fillSeconds = fill.values.find((v) => v.metricName?.endsWith('_sum'))?.value
const stats = await app.gatewayMetrics.registry.getSingleMetric('ipdr_gateway_cache_bytes').get()
const entryBytes = stats.values.find((v) => v.labels.resource === 'customers')?.value

const filledAt = performance.now()
// The first single read waits for the index: sent now, beside the gzip polls, and timed from the fill.
const firstRead = get(`/api/ipdrcustomers/${seedUserId(1)}`).then(() => performance.now() - filledAt)
log('fill done; waiting for gzip')
// gzip: the first ask starts the variant; poll until it is served. HEAD: until then each GET would
// move the whole identity body through this process (~0.3 s of its CPU per poll at 217 MB),
// competing with the compression it measures.
const gzStart = performance.now()
let gzMs = Number.NaN
for (let i = 0; i < 600; i++) {
  const r = await get('/api/ipdrcustomers', { 'accept-encoding': 'gzip' }, { count: true, method: 'HEAD' })
  if (r.headers['content-encoding'] === 'gzip') {
    gzMs = performance.now() - gzStart
    break
  }
  await new Promise((res) => setTimeout(res, 50))
}

const firstReadAfterFillMs = await firstRead
log('single reads')
const reads = []
for (let i = 0; i < 200; i++)
  reads.push((await get(`/api/ipdrcustomers/${seedUserId(1 + ((i * 7919) % n))}`)).ms)
// The same reads once the index, gzip and their garbage are long done, and /healthz beside them: the
// floor of one request through this process's sockets.
await new Promise((r) => setTimeout(r, 2000))
const settledReads = []
const healthz = []
for (let i = 0; i < 500; i++) {
  settledReads.push((await get(`/api/ipdrcustomers/${seedUserId(1 + ((i * 104729) % n))}`)).ms)
  healthz.push((await get('/healthz')).ms)
}
delay.reset()
delay.enable()
const qs = []
for (let i = 0; i < 20; i++)
  qs.push((await get(`/api/ipdrcustomers?q=${encodeURIComponent(`sharma${i}`)}&limit=50`)).ms)
delay.disable()
const qStall = delay.max / 1e6

log('a redacting consumer: its own fill, then the redacted view')
delay.reset()
delay.enable()
const redactedGaps = gapMeter()
const redactedRead = await get('/api/ipdrcustomers', gatewayHeaders(REDACTED_USER), { count: true })
delay.disable()
const redactedStall = delay.max / 1e6
const redactedLongestGaps = redactedGaps.stop()

const indexed = await app.gatewayMetrics.registry.getSingleMetric('ipdr_gateway_cache_bytes').get()
const indexedBytes = indexed.values.find((v) => v.labels.resource === 'customers')?.value
const mb = (b) => `${(b / 1e6).toFixed(1)} MB`
const raw = first.bytes
console.log(
  JSON.stringify(
    {
      n,
      upstream: useEmulator ? 'emulator (SQLite file, streamed listing)' : 'prebuilt buffer',
      upstreamStartMs: Math.round(upstreamStartMs),
      rawBytes: mb(raw),
      firstListingMs: Math.round(first.ms),
      fillMs: Math.round((fillSeconds ?? Number.NaN) * 1000),
      stallMaxMs: Math.round(fillStall),
      longestGaps,
      healthzP99Ms: Number(percentile(probes, 99).toFixed(1)),
      healthzProbes: probes.length,
      gzipReadyMs: Math.round(gzMs),
      entryBytes: mb(entryBytes),
      entryOverRaw: Number((entryBytes / raw).toFixed(2)),
      entryWithIndexAndGzip: mb(indexedBytes),
      entryWithIndexAndGzipOverRaw: Number((indexedBytes / raw).toFixed(2)),
      peakRssOverIdle: mb(peakRss - idleRss),
      peakRssOverRaw: Number(((peakRss - idleRss) / raw).toFixed(2)),
      firstReadAfterFillMs: Math.round(firstReadAfterFillMs),
      readP50Ms: Number(percentile(reads, 50).toFixed(2)),
      settledReadP50Ms: Number(percentile(settledReads, 50).toFixed(2)),
      healthzP50Ms: Number(percentile(healthz, 50).toFixed(2)),
      qP50Ms: Number(percentile(qs, 50).toFixed(1)),
      qStallMaxMs: Math.round(qStall),
      redactedReadMs: Math.round(redactedRead.ms),
      redactedStallMaxMs: Math.round(redactedStall),
      redactedLongestGaps,
    },
    null,
    1,
  ),
)
await app.close()
await up.stop()
killAll()
