// sortSteps (src/audit/sort-steps.ts): the same order as Array.prototype.sort, in steps.
import fc from 'fast-check'
import t from 'tap'
import { sortSteps } from '../../src/audit/sort-steps.js'
import { runSteps } from '../../src/cache/steps.js'

t.test('sorts as Array.prototype.sort does, across runs and merges', async (t) => {
  fc.assert(
    fc.property(fc.array(fc.string({ maxLength: 6 }), { maxLength: 200 }), (values) => {
      t.same(runSteps(sortSteps(values)), [...values].sort())
    }),
    { numRuns: 100 },
  )
  const many = Array.from({ length: 70_000 }, (_, i) => `U${(i * 7919) % 70_000}`)
  let yields = 0
  const steps = sortSteps(many)
  let next = steps.next()
  while (!next.done) {
    yields += 1
    next = steps.next()
  }
  t.same(next.value, [...many].sort(), 'five runs of 16,384 merged')
  t.ok(yields > 5, `in steps (${yields} yields)`)
})
