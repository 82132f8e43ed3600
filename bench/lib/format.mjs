/** Number formatting and the results table (Markdown, so it pastes into docs/performance.md). */

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

export const fmt = {
  rps: (v) => (Number.isFinite(v) ? `${int.format(v)} req/s` : '–'),
  ms: (v, digits = 1) => (Number.isFinite(v) ? `${v.toFixed(digits)} ms` : '–'),
  // Truncated, not rounded: 0.899 must not read as a passing 0.90.
  ratio: (v) => (Number.isFinite(v) ? (Math.floor(v * 100) / 100).toFixed(2) : '–'),
  times: (v) => (Number.isFinite(v) ? `${(Math.floor(v * 10) / 10).toFixed(1)}×` : '–'),
  int: (v) => (Number.isFinite(v) ? int.format(v) : '–'),
  mb: (v) => (Number.isFinite(v) ? `${(v / 1e6).toFixed(1)} MB` : '–'),
}

const COLUMNS = [
  ['row', 'row'],
  ['scenario', 'scenario'],
  ['A', 'a'],
  ['B', 'b'],
  ['ratio', 'ratio'],
  ['target', 'target'],
  ['pass', 'pass'],
]

function passText(r) {
  if (r.error) return 'ERROR'
  if (r.pass === null || r.pass === undefined) return '—'
  return r.pass ? 'pass' : 'FAIL'
}

/** A Markdown table of the result rows, columns padded for a terminal. */
export function table(results) {
  const cells = results.map((r) => ({
    row: r.row,
    scenario: r.scenario,
    a: r.error ? r.error : r.aText,
    b: r.error ? '' : r.bText,
    ratio: r.error ? '' : r.ratioText,
    target: r.target,
    pass: passText(r),
  }))
  const widths = COLUMNS.map(([title, key]) =>
    Math.max(title.length, ...cells.map((c) => String(c[key]).length)),
  )
  const line = (values) => `| ${values.map((v, i) => String(v).padEnd(widths[i])).join(' | ')} |`
  return [
    line(COLUMNS.map(([title]) => title)),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...cells.map((c) => line(COLUMNS.map(([, key]) => c[key]))),
  ].join('\n')
}

/**
 * Server CPU time per request of each side of the throughput rows: far less
 * sensitive than req/s to whatever else the machine runs, so it shows the
 * cost difference even when the req/s ratio is noisy.
 */
export function cpuTable(results) {
  const rows = results.filter((r) => Number.isFinite(r.measured?.a?.cpuUsPerRequest))
  if (rows.length === 0) return ''
  const cells = rows.map((r) => {
    const { a, b } = r.measured
    return [
      r.row,
      r.scenario,
      `${a.cpuUsPerRequest.toFixed(0)} µs`,
      `${b.cpuUsPerRequest.toFixed(0)} µs`,
      (a.cpuUsPerRequest / b.cpuUsPerRequest).toFixed(2),
    ]
  })
  const titles = ['row', 'scenario', 'A CPU/req', 'B CPU/req', 'A/B']
  const widths = titles.map((t, i) => Math.max(t.length, ...cells.map((c) => c[i].length)))
  const line = (values) => `| ${values.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`
  return [line(titles), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n')
}
