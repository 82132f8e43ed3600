/**
 * ScrapeTimeHistogram (src/metrics.ts) against prom-client's own Histogram:
 * for any sequence of observations over any label sets, the exposition text
 * and `get()` are the same, and a reset empties it as prom-client's does.
 */
import fc from 'fast-check'
import { Histogram, Registry } from 'prom-client'
import t from 'tap'
import { DURATION_BUCKETS, ScrapeTimeHistogram, seriesKey } from '../../src/metrics.js'

type L = 'method' | 'route'
const LABELS = ['method', 'route'] as const

function pair() {
  const ours = new Registry()
  const theirs = new Registry()
  const config = {
    name: 'x_duration_seconds',
    help: 'A "help" text\\with escapes',
    buckets: [...DURATION_BUCKETS],
  }
  const a = new ScrapeTimeHistogram<L>({ ...config, labelNames: LABELS, registers: [ours] })
  const b = new Histogram<L>({ ...config, labelNames: [...LABELS], registers: [theirs] })
  return { ours, theirs, a, b }
}

/** What `get()` says, less prom-client's exemplar slot (null without exemplars) and key order. */
function samples(got: { values: readonly { value: number; labels: object; metricName?: string }[] }) {
  return got.values.map(({ value, labels, metricName }) => ({ value, labels, metricName }))
}

const observation = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DE"L\\'),
  route: fc.constantFrom('/api/ipdrcustomers', '/x', 'unmatched'),
  value: fc.oneof(
    fc.constantFrom(0, ...DURATION_BUCKETS, 10.000001, 1e6),
    fc.double({ min: 0, max: 20, noNaN: true }),
  ),
  // Some through a key of the caller's (the hot path), some through observe(labels, value).
  keyed: fc.boolean(),
})

t.test('the same exposition as prom-client for the same observations', async (t) => {
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (observations) => {
      runs++
      const { ours, theirs, a, b } = pair()
      for (const o of observations) {
        const labels = { method: o.method, route: o.route }
        if (o.keyed) a.series(seriesKey(o.method, o.route), () => labels).observe(o.value)
        else a.observe(labels, o.value)
        b.observe(labels, o.value)
      }
      const same = (await ours.metrics()) === (await theirs.metrics())
      const json = JSON.stringify(samples(await a.get())) === JSON.stringify(samples(await b.get()))
      return same && json
    }),
    { numRuns: 200 },
  )
  t.equal(runs, 200, 'every generated sequence compared')
})

t.test('label sets in first-observed order, reset, bad input', async (t) => {
  const { ours, theirs, a, b } = pair()
  for (const [method, route, v] of [
    ['POST', '/x', 0.2],
    ['GET', '/x', 0.002],
    ['POST', '/x', 3],
  ] as const) {
    a.observe({ method, route }, v)
    b.observe({ method, route }, v)
  }
  const text = await ours.metrics()
  t.equal(text, await theirs.metrics())
  t.match(text, /x_duration_seconds_bucket\{le="0.25",method="POST",route="\/x"\} 1\n/)
  t.match(text, /x_duration_seconds_count\{method="POST",route="\/x"\} 2\n/)
  t.ok(text.indexOf('method="POST"') < text.indexOf('method="GET"'), 'first observed first')
  a.reset()
  b.reset()
  t.equal(await ours.metrics(), await theirs.metrics(), 'reset empties both')
  t.throws(() => a.observe({ method: 'GET', route: '/x' }, Number.NaN), TypeError, 'NaN refused')
  t.throws(
    () => a.observe({ method: 'GET', route: '/x', colour: 'x' } as never, 1),
    /colour/,
    'unknown label refused',
  )
  t.equal(await ours.metrics(), await theirs.metrics(), 'nothing recorded by a refused observation')
  t.throws(
    () =>
      new ScrapeTimeHistogram<L>({
        name: 'x_duration_seconds',
        help: 'h',
        labelNames: LABELS,
        buckets: [1],
        registers: [ours],
      }),
    /already been registered/,
  )
})
