/**
 * Just enough PromQL lexing to list the metric names an expression reads, for
 * the dashboard and alert checks. Syntax itself is checked by promtool.
 */
import type { Registry } from 'prom-client'

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
])

/** Metric names referenced by a PromQL expression (Grafana `$variables` allowed). */
export function metricNamesIn(expr: string): Set<string> {
  const stripped = expr
    // String literals (label values, regexes, Grafana variables inside them).
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ')
    // Label matchers, ranges and subqueries.
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    // Grouping label lists.
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
  const names = new Set<string>()
  // Numbers (with durations such as `1h` after `offset`) are matched first so they are not names.
  const token = /(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)|([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g
  for (const m of stripped.matchAll(token)) {
    const ident = m[2]
    if (ident === undefined || m[3] !== undefined) continue // a number, or a function / aggregation
    if (KEYWORDS.has(ident.toLowerCase())) continue
    names.add(ident)
  }
  return names
}

/** Every series name the registry exposes, with the `_bucket`/`_sum`/`_count` of histograms and summaries. */
export async function exportedNames(registry: Registry): Promise<Set<string>> {
  const names = new Set<string>()
  for (const metric of await registry.getMetricsAsJSON()) {
    const type = String(metric.type)
    // A histogram is exposed only as its _bucket, _sum and _count series.
    if (type === 'histogram') names.add(`${metric.name}_bucket`)
    else names.add(metric.name)
    if (type === 'histogram' || type === 'summary') {
      names.add(`${metric.name}_sum`)
      names.add(`${metric.name}_count`)
    }
  }
  return names
}

/** Grafana variables replaced by something PromQL parses, so promtool can check dashboard expressions. */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$__(?:rate_interval|interval|range)\b/g, '5m').replace(/\$\{?\w+\}?/g, 'x')
}
