/**
 * The A/B protocol every throughput row follows: one warm-up run of each side
 * (discarded), then `runs` measured runs of each, alternating the order
 * (A B, B A, A B, ...) so drift on a shared machine hits both sides alike;
 * the medians are compared. A run with any failed response (connect/read
 * error, timeout, status >= 400) makes the row an error rather than a number.
 */
import { measure } from './load.mjs'
import { median } from './stats.mjs'

/**
 * @param {{ durationSec: number, warmupSec: number, runs: number, tool: string, log: (s: string) => void }} cfg
 * @param {{ label: string, a: object, b: object, servers?: { a?: any, b?: any } }} pair
 *   load options (see measure) of each side; `servers`: the child process answering each side,
 *   whose CPU time per request is recorded too
 */
export async function comparePair(cfg, { label, a, b, servers = {} }) {
  const run = async (opts, durationSec, server) => {
    const before = server ? await server.call('cpu') : 0
    const r = await measure({ ...opts, durationSec, tool: cfg.tool })
    const cpuUs = server ? (await server.call('cpu')) - before : Number.NaN
    return { ...r, cpuUsPerRequest: cpuUs / r.requests }
  }
  cfg.log(`  ${label}: warm-up`)
  await run(a, cfg.warmupSec)
  await run(b, cfg.warmupSec)
  const runs = { a: [], b: [] }
  for (let i = 0; i < cfg.runs; i++) {
    const order = i % 2 === 0 ? ['a', 'b'] : ['b', 'a']
    for (const side of order) {
      const r = await run(side === 'a' ? a : b, cfg.durationSec, servers[side])
      runs[side].push(r)
    }
    const last = (s) => {
      const r = runs[s][runs[s].length - 1]
      const cpu = Number.isFinite(r.cpuUsPerRequest) ? ` (${r.cpuUsPerRequest.toFixed(0)} µs CPU/req)` : ''
      return `${Math.round(r.rps)} req/s${cpu}`
    }
    cfg.log(`  ${label}: run ${i + 1}/${cfg.runs}  A ${last('a')}  B ${last('b')}`)
  }
  const bad = [...runs.a, ...runs.b].reduce((sum, r) => sum + r.bad, 0)
  const medA = median(runs.a.map((r) => r.rps))
  const medB = median(runs.b.map((r) => r.rps))
  const pick = (rs) => ({
    rps: median(rs.map((r) => r.rps)),
    runsRps: rs.map((r) => Math.round(r.rps)),
    mbPerSec: median(rs.map((r) => r.bytesPerSec / 1e6)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    cpuUsPerRequest: median(rs.map((r) => r.cpuUsPerRequest)),
  })
  return { a: pick(runs.a), b: pick(runs.b), ratio: medA / medB, bad }
}
