/**
 * One bounded load run against one URL, by a load generator in its own
 * process pinned to LOAD_CPU: Debian's `wrk` when installed (it reaches about
 * twice autocannon's ceiling here), else autocannon's CLI (a dev dependency).
 * wrk gets a Lua script written to a temp dir for the method, headers and
 * body (GET bodies included: Trisul wants credentials in the body) and for a
 * machine-readable summary.
 */
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { LOAD_CPU, runPinned } from './processes.mjs'

const require = createRequire(import.meta.url)

let wrkAvailable = null
export function hasWrk() {
  if (wrkAvailable === null)
    wrkAvailable = spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined
  return wrkAvailable
}

/** The tool `measure` uses: `wrk`, unless `prefer` is `autocannon` or wrk is missing. */
export function loadTool(prefer) {
  if (prefer === 'autocannon') return 'autocannon'
  return hasWrk() ? 'wrk' : 'autocannon'
}

let scriptDir = null
function tempScriptDir() {
  if (scriptDir === null) {
    scriptDir = mkdtempSync(join(tmpdir(), 'ipdr-gw-bench-wrk-'))
    process.once('exit', () => rmSync(scriptDir, { recursive: true, force: true }))
  }
  return scriptDir
}

/** A Lua string literal: printable ASCII as is, everything else as decimal escapes. */
function luaString(s) {
  let out = '"'
  for (const byte of Buffer.from(s, 'utf8')) {
    if (byte === 0x22 || byte === 0x5c) out += `\\${String.fromCharCode(byte)}`
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte)
    else out += `\\${byte}`
  }
  return `${out}"`
}

const SUMMARY_MARK = 'BENCH_JSON '

function wrkScript({ method, headers, body }) {
  const lines = [`wrk.method = ${luaString(method)}`]
  if (body !== undefined) lines.push(`wrk.body = ${luaString(body)}`)
  for (const [k, v] of Object.entries(headers)) lines.push(`wrk.headers[${luaString(k)}] = ${luaString(v)}`)
  lines.push(
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    `  io.write(string.format("${SUMMARY_MARK}{\\"requests\\":%d,\\"durationUs\\":%d,\\"bytes\\":%d,\\"errors\\":%d,\\"status\\":%d,\\"timeouts\\":%d,\\"p50Us\\":%d,\\"p99Us\\":%d,\\"maxUs\\":%d}\\n",`,
    '    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write, e.status, e.timeout,',
    '    latency:percentile(50), latency:percentile(99), latency.max))',
    'end',
  )
  return `${lines.join('\n')}\n`
}

async function runWrk({ url, method, headers, body, connections, durationSec }) {
  const file = join(
    tempScriptDir(),
    `run-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.lua`,
  )
  writeFileSync(file, wrkScript({ method, headers, body }))
  try {
    const argv = ['wrk', '-t1', `-c${connections}`, `-d${durationSec}s`, '--timeout', '30s', '-s', file, url]
    const { code, stdout, stderr } = await runPinned(LOAD_CPU, argv, { timeoutMs: (durationSec + 60) * 1000 })
    const line = stdout.split('\n').find((l) => l.startsWith(SUMMARY_MARK))
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${stderr.trim() || stdout.trim()}`)
    const s = JSON.parse(line.slice(SUMMARY_MARK.length))
    const seconds = s.durationUs / 1e6
    return {
      tool: 'wrk',
      requests: s.requests,
      rps: s.requests / seconds,
      bytesPerSec: s.bytes / seconds,
      p50Ms: s.p50Us / 1000,
      p99Ms: s.p99Us / 1000,
      maxMs: s.maxUs / 1000,
      // wrk counts responses with a status >= 400 as status errors; 2xx and 3xx are fine.
      bad: s.errors + s.status + s.timeouts,
    }
  } finally {
    rmSync(file, { force: true })
  }
}

async function runAutocannon({ url, method, headers, body, connections, durationSec }) {
  const bin = join(dirname(require.resolve('autocannon/package.json')), 'autocannon.js')
  const argv = [
    process.execPath,
    bin,
    '-j',
    '-n',
    '-c',
    String(connections),
    '-d',
    String(durationSec),
    '-m',
    method,
  ]
  for (const [k, v] of Object.entries(headers)) argv.push('-H', `${k}=${v}`)
  if (body !== undefined) argv.push('-b', body)
  argv.push(url)
  const { code, stdout, stderr } = await runPinned(LOAD_CPU, argv, { timeoutMs: (durationSec + 60) * 1000 })
  let r
  try {
    r = JSON.parse(stdout)
  } catch {
    throw new Error(`autocannon failed (exit ${code}): ${stderr.trim()}`)
  }
  const seconds = r.duration
  return {
    tool: 'autocannon',
    requests: r.requests.total,
    rps: r.requests.total / seconds,
    bytesPerSec: r.throughput.total / seconds,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    maxMs: r.latency.max,
    bad: (r.errors ?? 0) + (r.timeouts ?? 0) + (r['4xx'] ?? 0) + (r['5xx'] ?? 0),
  }
}

/**
 * @param {{ url: string, method?: string, headers?: Record<string,string>, body?: string,
 *           connections: number, durationSec: number, tool: 'wrk' | 'autocannon' }} opts
 */
export function measure(opts) {
  const full = { method: 'GET', headers: {}, ...opts }
  if (full.body !== undefined && !Object.keys(full.headers).some((k) => k.toLowerCase() === 'content-type')) {
    full.headers = { ...full.headers, 'content-type': 'application/json' }
  }
  return full.tool === 'wrk' ? runWrk(full) : runAutocannon(full)
}
