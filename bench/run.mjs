#!/usr/bin/env node
/**
 * `npm run bench`: the benchmarks of issue 7, side by side with the ratios we
 * promise. Starts its own servers on 127.0.0.1 as separate processes (the
 * compiled gateway from dist/, a bare Fastify baseline, a minimal Trisul-like
 * upstream, the emulator), pins servers under test to core 0 and the load
 * generator and upstream to core 1 (`taskset`, when available), bounds every
 * run, discards a warm-up, alternates A and B, takes the median of at least 3
 * runs, prints a table and writes bench/results/latest.json.
 *
 *   npm run bench                       full run (about 7 minutes)
 *   npm run bench -- --quick            smoke run (about 2 minutes)
 *   npm run bench -- --only 1b,6        some rows only
 *
 * See docs/performance.md for what each row measures and what bounds it.
 */
import { execSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { ensureCommands } from '../scripts/test-prerequisites.mjs'
import { cpuTable, table } from './lib/format.mjs'
import { hasWrk, loadTool } from './lib/load.mjs'
import { ProbeError } from './lib/probe.mjs'
import { canPin, killAll, LOAD_CPU, SERVER_CPU, startChild } from './lib/processes.mjs'
import { GROUPS, ROW_IDS } from './scenarios.mjs'

const HELP = `usage: node bench/run.mjs [options]   (npm run bench -- [options])

  --quick              smoke run: 1 s runs, fewer variants (about 2 minutes)
  --only ROWS          comma-separated rows to run: ${ROW_IDS.join(',')}
  --runs N             measured runs per side, at least 3 (default 5; --quick 3)
  --duration S         seconds per measured run, 1-30 (default 3; --quick 1)
  --connections C      load generator connections, 1-1000 (default 50)
  --tool wrk|autocannon  load generator (default: wrk when installed)
  --help               this text
`

function fail(message) {
  process.stderr.write(`bench: ${message}\n\n${HELP}`)
  process.exit(2)
}

function intOption(value, name, min, max, fallback) {
  if (value === undefined) return fallback
  if (!/^\d+$/.test(value)) fail(`--${name} must be an integer`)
  const n = Number(value)
  if (n < min || n > max) fail(`--${name} must be between ${min} and ${max}`)
  return n
}

function parseOptions(argv) {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        runs: { type: 'string' },
        duration: { type: 'string' },
        connections: { type: 'string' },
        tool: { type: 'string' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (err) {
    fail(err.message)
  }
  if (values.help) {
    process.stdout.write(HELP)
    process.exit(0)
  }
  let only = null
  if (values.only !== undefined) {
    only = values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    const unknown = only.filter((id) => !ROW_IDS.includes(id))
    if (only.length === 0 || unknown.length > 0) fail(`--only: unknown row ${unknown.join(', ') || '(none)'}`)
  }
  if (values.tool !== undefined && values.tool !== 'wrk' && values.tool !== 'autocannon') {
    fail('--tool must be wrk or autocannon')
  }
  // What the rows need from the machine, installed when missing (as root, with apt-get), as
  // `npm test` does for the tests: wrk (else autocannon), nginx for rows 13 and 20.
  const commands = []
  if (values.tool !== 'autocannon') commands.push({ command: 'wrk', pkg: 'wrk', for: 'the load generator' })
  if (only === null || only.includes('13') || only.includes('20')) {
    commands.push({ command: 'nginx', pkg: 'nginx-light', for: 'rows 13 and 20 (the nginx peer)' })
  }
  if (commands.length > 0) ensureCommands(commands, 'the benchmarks')
  if (values.tool === 'wrk' && !hasWrk()) fail('--tool wrk: wrk is not installed (apt-get install wrk)')
  const quick = values.quick
  return {
    quick,
    only,
    runs: intOption(values.runs, 'runs', 3, 50, quick ? 3 : 5),
    durationSec: intOption(values.duration, 'duration', 1, 30, quick ? 1 : 3),
    warmupSec: quick ? 1 : 2,
    connections: intOption(values.connections, 'connections', 1, 1000, 50),
    tool: loadTool(values.tool),
  }
}

function machine() {
  const list = cpus()
  let kernel = ''
  try {
    kernel = execSync('uname -sr', { encoding: 'utf8' }).trim()
  } catch {
    kernel = process.platform
  }
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel,
  }
}

async function main() {
  const cfg = parseOptions(process.argv.slice(2))
  const log = (s) => process.stderr.write(`${s}\n`)
  cfg.log = log
  const started = Date.now()
  const pin = canPin()
  const m = machine()
  log(
    `bench: ${m.cpus} × ${m.cpuModel}, Node ${m.node}; load generator ${cfg.tool}; ` +
      (pin
        ? `servers on core ${SERVER_CPU}, load generator + upstream on core ${LOAD_CPU}`
        : 'not pinned (no taskset or one core)') +
      `; ${cfg.runs} runs × ${cfg.durationSec} s per side, ${cfg.connections} connections; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  )

  const results = []
  for (const group of GROUPS) {
    const want = group.rows.filter((id) => cfg.only === null || cfg.only.includes(id))
    if (want.length === 0) continue
    const children = []
    const ctx = {
      cfg,
      async start(script, opts, cpu, nodeArgs = []) {
        const child = await startChild(script, opts, { cpu, nodeArgs })
        children.push(child)
        return child
      },
    }
    log(`rows ${want.join(', ')}`)
    try {
      results.push(...(await group.run(ctx, want)))
    } catch (err) {
      const message = err instanceof ProbeError ? err.message : String(err?.stack ?? err)
      log(`  error: ${message}`)
      for (const row of want) {
        results.push({
          row,
          scenario: `rows ${want.join(', ')}`,
          error: message.split('\n')[0],
          target: '',
          pass: false,
        })
      }
    } finally {
      await Promise.all(children.map((c) => c.stop()))
    }
  }
  results.sort((x, y) => ROW_IDS.indexOf(x.row) - ROW_IDS.indexOf(y.row))

  const seconds = Math.round((Date.now() - started) / 1000)
  const text = table(results)
  const cpu = cpuTable(results)
  process.stdout.write(
    `\n${text}\n\nServer CPU time per request (A: the gateway or proxy; B: the baseline server):\n\n${cpu}\n\n`,
  )
  const failed = results.filter((r) => r.pass === false)
  log(`${results.length} rows in ${seconds} s; ${failed.length} below target or in error`)

  const { log: _log, ...config } = cfg
  const report = {
    date: new Date(started).toISOString(),
    seconds,
    machine: { ...m, loadAverageAtEnd: loadavg() },
    config: { ...config, pinned: pin, serverCpu: SERVER_CPU, loadCpu: LOAD_CPU },
    table: text,
    cpuTable: cpu,
    results,
  }
  const dir = new URL('./results/', import.meta.url)
  mkdirSync(dir, { recursive: true })
  writeFileSync(new URL('latest.json', dir), `${JSON.stringify(report, null, 2)}\n`)
  log('wrote bench/results/latest.json')
  // Rows below target are a result, not a failure of the tool; rows that could not be measured are.
  if (results.some((r) => r.error)) process.exitCode = 1
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}
process.on('exit', killAll)

main().catch((err) => {
  process.stderr.write(`bench: ${err?.stack ?? err}\n`)
  killAll()
  process.exit(1)
})
