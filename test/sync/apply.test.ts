/**
 * applyWrites (src/sync/apply.ts): phases one after the other, at most
 * `concurrency` in flight, starts paced at `perSecond`, a cancel stops new
 * writes, a write that throws is reported as an internal error.
 */
import t from 'tap'
import { applyWrites, phaseOf } from '../../src/sync/apply.js'
import type { SyncWrite } from '../../src/sync/plan.js'

const w = (
  resource: 'customers' | 'mappings',
  operation: 'create' | 'update' | 'delete',
  UserID: string,
): SyncWrite => ({
  resource,
  operation,
  UserID,
  fields: {},
  before: null,
})

t.test('phases in order, concurrency bounded', async (t) => {
  const writes = [
    w('customers', 'create', 'a'),
    w('customers', 'update', 'b'),
    w('customers', 'create', 'c'),
    w('mappings', 'update', 'a'),
    w('mappings', 'create', 'a'),
    w('customers', 'delete', 'z'),
  ]
  t.same(writes.map(phaseOf), [0, 0, 0, 1, 2, 3])
  let inFlight = 0
  let most = 0
  const log: string[] = []
  await applyWrites(writes, {
    concurrency: 2,
    perSecond: 100_000,
    cancelled: () => false,
    write: async (x) => {
      inFlight += 1
      most = Math.max(most, inFlight)
      log.push(`start ${phaseOf(x)} ${x.UserID}`)
      await new Promise((r) => setTimeout(r, 5))
      inFlight -= 1
      return { ok: true, status: 200 }
    },
    onOutcome: (x) => log.push(`end ${phaseOf(x)} ${x.UserID}`),
  })
  t.equal(most, 2)
  const firstOfPhase1 = log.indexOf('start 1 a')
  t.ok(
    log.slice(0, firstOfPhase1).filter((l) => l.startsWith('end 0')).length === 3,
    'phase 1 starts once phase 0 is answered',
  )
  t.equal(log.filter((l) => l.startsWith('end')).length, 6)
})

t.test('starts are paced at perSecond, whatever the concurrency', async (t) => {
  const starts: number[] = []
  await applyWrites(
    Array.from({ length: 6 }, (_, i) => w('customers', 'create', `u${i}`)),
    {
      concurrency: 3,
      perSecond: 50,
      cancelled: () => false,
      write: async () => {
        starts.push(performance.now())
        return { ok: true, status: 200 }
      },
      onOutcome: () => {},
    },
  )
  // 50 a second is one start every 20 ms, on a fixed schedule from the first: start k comes no
  // earlier than k × 20 ms after it. (One gap may be shorter than 20 ms when the start before it was
  // late: the schedule keeps the average, never the ceiling's rate above it.) Timers fire late,
  // never early by more than their millisecond rounding.
  const offsets = starts.map((s) => s - (starts[0] as number))
  t.ok(
    offsets.every((o, k) => o >= k * 20 - 2),
    `starts at ${offsets.map((o) => o.toFixed(1)).join(', ')} ms`,
  )
})

t.test('a cancel stops new writes; a throwing write is an internal error, reported', async (t) => {
  let cancel = false
  const outcomes: unknown[] = []
  await applyWrites(
    Array.from({ length: 10 }, (_, i) => w('customers', 'create', `u${i}`)),
    {
      concurrency: 1,
      perSecond: 100_000,
      cancelled: () => cancel,
      write: async (_x, i) => {
        if (i === 1) throw new Error('secret detail')
        if (i === 2) cancel = true
        return { ok: true, status: 200 }
      },
      onOutcome: (_x, o) => outcomes.push(o),
    },
  )
  t.same(outcomes, [
    { ok: true, status: 200 },
    { ok: false, status: 500, code: 'IPDR_GW_INTERNAL', message: 'Internal error' },
    { ok: true, status: 200 },
  ])
})
