/**
 * dashboards/ipdr-gateway.json: every PromQL expression parses (promtool) and
 * names only metrics the gateway exports; the required panels are there.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { stringify } from 'yaml'
import { metricsWithStore } from './populate.js'
import { exportedNames, metricNamesIn, withoutGrafanaVariables } from './promql.js'
import { findPromtool, PROMTOOL_MISSING, runPromtool } from './promtool.js'

// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template.
const DATASOURCE_UID = '${datasource}'
const DASHBOARD = fileURLToPath(new URL('../../dashboards/ipdr-gateway.json', import.meta.url))

interface Panel {
  id?: number
  type: string
  title: string
  datasource?: { type: string; uid: string }
  targets?: { expr: string; datasource?: { uid: string } }[]
  panels?: Panel[]
}
interface Variable {
  name: string
  type: string
  query?: string | { query: string }
}
interface Dashboard {
  schemaVersion: number
  uid: string
  title: string
  panels: Panel[]
  templating: { list: Variable[] }
}

const promtool = findPromtool()
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])
const exprs = panels.flatMap((p) =>
  (p.targets ?? []).map((target) => ({ panel: p.title, expr: target.expr })),
)
/** Every `"expr"` anywhere in the file, so no expression escapes the checks below. */
const allExprs = [...readFileSync(DASHBOARD, 'utf8').matchAll(/"expr":/g)]

/** `label_values(<selector>, label)` of query variables. */
const variableSelectors = dashboard.templating.list.flatMap((v) => {
  const q = typeof v.query === 'string' ? v.query : v.query?.query
  const m = v.type === 'query' && q ? /^label_values\((.+),\s*\w+\)$/.exec(q) : null
  return m?.[1] ? [{ panel: `variable ${v.name}`, expr: m[1] }] : []
})

t.test('the PromQL name extractor', async (t) => {
  t.same(
    [
      ...metricNamesIn(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job=~"$job", x="b_total"}[$__rate_interval]))) / on (job) group_left (x) b offset 1h > 0.5 and bool c',
      ),
    ].sort(),
    ['a_bucket', 'b', 'c'],
  )
  t.same([...metricNamesIn('sum(rate(x_total[5m])) by (route)')], ['x_total'])
})

t.test('dashboard basics', async (t) => {
  t.equal(dashboard.uid, 'ipdr-gateway')
  t.ok(
    dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41,
    `schemaVersion ${dashboard.schemaVersion}`,
  )
  const ds = dashboard.templating.list.find((v) => v.name === 'datasource')
  t.equal(ds?.type, 'datasource')
  t.equal(ds?.query, 'prometheus')
  const ids = panels.map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  t.equal(exprs.length, allExprs.length, 'every expr is in a panel target')
  for (const p of panels.filter((p) => p.type !== 'row')) {
    t.equal(p.datasource?.uid, DATASOURCE_UID, `${p.title} uses the datasource variable`)
    for (const target of p.targets ?? []) t.equal(target.datasource?.uid, DATASOURCE_UID)
  }
})

t.test('every expression names only metrics the gateway exports', async (t) => {
  const exported = await exportedNames(metricsWithStore().registry)
  for (const { panel, expr } of [...exprs, ...variableSelectors]) {
    const names = [...metricNamesIn(expr)]
    t.ok(names.length > 0, `${panel}: reads a metric`)
    for (const name of names) t.ok(exported.has(name), `${panel}: ${name} is exported`)
  }
})

t.test('the required views are there', async (t) => {
  const used = new Set(exprs.flatMap(({ expr }) => [...metricNamesIn(expr)]))
  for (const name of [
    'ipdr_gateway_http_requests_total',
    'ipdr_gateway_http_request_duration_seconds_bucket',
    'ipdr_gateway_upstream_request_duration_seconds_bucket',
    'ipdr_gateway_upstream_requests_total',
    'ipdr_gateway_cache_lookups_total',
    'ipdr_gateway_rate_limited_total',
    'ipdr_gateway_upstream_up',
    'ipdr_gateway_policy_reloads_total',
  ]) {
    t.ok(used.has(name), `${name} is charted`)
  }
  const titles = panels.map((p) => p.title)
  for (const title of [
    'Error ratio',
    'Gateway latency',
    'Upstream latency',
    'Cache hit ratio',
    'Upstream outcomes',
  ]) {
    t.ok(titles.includes(title), `panel "${title}"`)
  }
  for (const title of ['Gateway latency', 'Upstream latency']) {
    const text = exprs
      .filter((e) => e.panel === title)
      .map((e) => e.expr)
      .join('\n')
    for (const q of ['0.5', '0.95', '0.99']) t.match(text, `histogram_quantile(${q},`, `${title} p${q}`)
  }
  const errors = exprs
    .filter((e) => e.panel === 'Error ratio')
    .map((e) => e.expr)
    .join('\n')
  t.match(errors, 'status_code=~"5.."')
  t.match(errors, 'status_code=~"4.."')
})

t.test('every expression parses (promtool check rules)', async (t) => {
  if (!promtool) return t.fail(PROMTOOL_MISSING)
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-dashboard-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'dashboard.rules.yml')
  const rules = [...exprs, ...variableSelectors].map(({ expr }, i) => ({
    record: `dashboard:expr_${i}`,
    expr: withoutGrafanaVariables(expr),
  }))
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }))
  const result = await runPromtool(promtool, ['check', 'rules', file])
  t.equal(result.code, 0, `${result.stdout}${result.stderr}`)
  t.match(result.stdout, `SUCCESS: ${rules.length} rules found`)
})
