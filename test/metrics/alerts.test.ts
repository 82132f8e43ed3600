/**
 * alerts/ipdr-gateway.rules.yml: valid for `promtool check rules`, unit-tested by
 * `promtool test rules` with a firing and a not-firing case per alert, and
 * reading only metrics the gateway exports.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'
import { metricsWithStore } from './populate.js'
import { exportedNames, metricNamesIn } from './promql.js'
import { findPromtool, PROMTOOL_MISSING, runPromtool } from './promtool.js'

const RULES = fileURLToPath(new URL('../../alerts/ipdr-gateway.rules.yml', import.meta.url))
const RULE_TESTS = fileURLToPath(new URL('../../alerts/ipdr-gateway.rules.test.yml', import.meta.url))
const REQUIRED = [
  'IpdrGatewayUpstreamDown',
  'IpdrGatewayHigh5xxRatio',
  'IpdrGatewayCircuitOpen',
  'IpdrGatewayCacheHitRatioCollapse',
  'IpdrGatewayPolicyReloadFailed',
  'IpdrGatewayStoreDown',
  'IpdrGatewayStoreFailover',
  'IpdrGatewayAuditShippingStalled',
  'IpdrGatewayAuditFailing',
]
const DOCS = fileURLToPath(new URL('../../docs/operations.md', import.meta.url))

interface Rule {
  alert?: string
  record?: string
  expr: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
}
interface RuleTest {
  alertname: string
  exp_alerts?: unknown[]
}

const rules: Rule[] = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
)
const promtool = findPromtool()

t.test('the seven alerts exist, with severity and a runbook in docs/operations.md', async (t) => {
  const alerts = rules.map((r) => r.alert)
  t.same([...alerts].sort(), [...REQUIRED].sort())
  const docs = readFileSync(DOCS, 'utf8')
  for (const rule of rules) {
    t.match(rule.labels?.severity, /^(critical|warning)$/, `${rule.alert} severity`)
    t.ok(rule.annotations?.summary, `${rule.alert} summary`)
    t.equal(
      rule.annotations?.runbook,
      `docs/operations.md#${rule.alert?.toLowerCase()}`,
      `${rule.alert} runbook`,
    )
    t.match(docs, new RegExp(`^### ${rule.alert}$`, 'm'), `${rule.alert} documented`)
  }
})

t.test('alert expressions read only exported metrics', async (t) => {
  const exported = await exportedNames(metricsWithStore().registry)
  for (const rule of rules) {
    const names = [...metricNamesIn(rule.expr)]
    t.ok(names.length > 0, `${rule.alert} reads metrics`)
    for (const name of names) t.ok(exported.has(name), `${rule.alert}: ${name} is exported`)
  }
})

t.test('promtool check rules', async (t) => {
  if (!promtool) return t.fail(PROMTOOL_MISSING)
  const result = await runPromtool(promtool, ['check', 'rules', RULES])
  t.equal(result.code, 0, `${result.stdout}${result.stderr}`)
  t.match(result.stdout, /SUCCESS: 9 rules found/)
})

t.test('promtool test rules', async (t) => {
  if (!promtool) return t.fail(PROMTOOL_MISSING)
  const result = await runPromtool(promtool, ['test', 'rules', RULE_TESTS])
  t.equal(result.code, 0, `${result.stdout}${result.stderr}`)
  t.match(result.stdout, /SUCCESS/)
})

t.test('every alert has a firing and a not-firing unit test', async (t) => {
  const doc = parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: { alert_rule_test?: RuleTest[] }[] }
  const cases = doc.tests.flatMap((group) => group.alert_rule_test ?? [])
  for (const alert of REQUIRED) {
    const mine = cases.filter((c) => c.alertname === alert)
    t.ok(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert} has a firing case`,
    )
    t.ok(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert} has a not-firing case`,
    )
  }
})
