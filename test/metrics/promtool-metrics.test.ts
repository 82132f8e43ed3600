/**
 * SPEC section 5: the ipdr_gateway_* families pass `promtool check metrics` with
 * no problem. prom-client's own default metrics have known lint warnings (e.g.
 * `nodejs_active_handles_total` is a gauge), so only lines about ours count.
 */
import t from 'tap'
import { createMetrics, METRIC_FAMILIES } from '../../src/metrics.js'
import { populateAll } from './populate.js'
import { findPromtool, PROMTOOL_MISSING, runPromtool } from './promtool.js'

const promtool = findPromtool()

function problemsAbout(output: string, prefix: string): string[] {
  return output.split('\n').filter((line) => line.includes(prefix))
}

t.test('promtool check metrics reports no problem for ipdr_gateway_* families', async (t) => {
  if (!promtool) return t.fail(PROMTOOL_MISSING)
  const metrics = createMetrics()
  populateAll(metrics)
  const exposition = await metrics.registry.metrics()
  for (const name of Object.keys(METRIC_FAMILIES)) {
    t.match(
      exposition,
      new RegExp(`^${name}(?:_bucket|_sum|_count)?(?:\\{[^}]*\\})? [1-9]`, 'm'),
      `${name} populated`,
    )
  }
  const result = await runPromtool(promtool, ['check', 'metrics'], exposition)
  const output = `${result.stdout}\n${result.stderr}`
  t.notMatch(output, /error while linting|parsing error/i, 'the exposition parses')
  t.same(problemsAbout(output, 'ipdr_gateway_'), [], 'no problem reported for ipdr_gateway_*')
})

t.test('the check would catch a problem in one of ours (the filter is not vacuous)', async (t) => {
  if (!promtool) return t.fail(PROMTOOL_MISSING)
  const metrics = createMetrics({ defaultMetrics: false })
  populateAll(metrics)
  const bad =
    '# HELP ipdr_gateway_bad_total a gauge named like a counter\n# TYPE ipdr_gateway_bad_total gauge\nipdr_gateway_bad_total 1\n'
  const result = await runPromtool(promtool, ['check', 'metrics'], (await metrics.registry.metrics()) + bad)
  const problems = problemsAbout(`${result.stdout}\n${result.stderr}`, 'ipdr_gateway_')
  t.equal(problems.length, 1, 'exactly the planted problem')
  t.match(problems[0], /ipdr_gateway_bad_total/)
  t.not(result.code, 0, 'promtool exits non-zero on a problem')
})

t.test('our families alone are lint-clean (exit code 0)', async (t) => {
  if (!promtool) return t.fail(PROMTOOL_MISSING)
  const metrics = createMetrics({ defaultMetrics: false })
  populateAll(metrics)
  const result = await runPromtool(promtool, ['check', 'metrics'], await metrics.registry.metrics())
  t.equal(result.code, 0, `${result.stdout}${result.stderr}`)
})
