// Property: whatever the interleaving of gets, fills settling (ok or failing, in any order),
// clock ticks, invalidations and evictions, a listing is only ever served to the key whose
// credentials fetched it, and a get issued after a context's invalidation only ever sees data
// from a fill that started after that invalidation (read-your-writes).
import fc from 'fast-check'
import t from 'tap'
import { ListingCache, type ListingKey } from '../../src/cache/listing-cache.js'
import type { ListingEntry } from '../../src/cache/listing-entry.js'
import { keyText, taggedEntry, tagOf, turn } from './cache-helpers.js'

const CONTEXTS = ['default', 'other'] as const

const anyKey: fc.Arbitrary<ListingKey> = fc.record({
  resource: fc.constantFrom('customers' as const, 'mappings' as const),
  username: fc.constantFrom('crm', 'ops'),
  tokenHash: fc.constantFrom('h1', 'h2'),
  context: fc.constantFrom(...CONTEXTS),
})
// Half the gets hit one key so that repeats (hits, coalescing, stale, invalidated fills) are common.
const hotKey: ListingKey = { resource: 'customers', username: 'crm', tokenHash: 'h1', context: 'default' }
const keyArb = fc.oneof(fc.constant(hotKey), anyKey)

type Step =
  | { kind: 'get'; key: ListingKey }
  | { kind: 'settle'; pick: number; ok: boolean }
  | { kind: 'tick'; ms: number }
  | { kind: 'invalidate'; context: string }
  | { kind: 'yield' }

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('get' as const), key: keyArb }) },
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('settle' as const), pick: fc.nat(), ok: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 2500 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('invalidate' as const), context: fc.constantFrom(...CONTEXTS) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('yield' as const) }) },
)

interface PendingFill {
  id: number
  key: ListingKey
  resolve: (entry: ListingEntry) => void
  reject: (err: Error) => void
}

t.test('served listings always belong to the requesting key, and writes are read', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(stepArb, { maxLength: 60 }),
      fc.constantFrom(1_000_000, 3_000),
      async (steps, maxBytes) => {
        let time = 0
        const cache = new ListingCache({ maxBytes, ttlMs: 1000, staleIfErrorMs: 2000, now: () => time })
        const epochs = new Map<string, number>(CONTEXTS.map((c) => [c, 0]))
        /** The context's invalidation count when each fill started. */
        const fillEpoch = new Map<number, number>()
        const pending: PendingFill[] = []
        const gets: { key: ListingKey; epoch: number; result: Promise<unknown> }[] = []
        const problems: string[] = []
        let nextFill = 0

        const fill = (key: ListingKey) => (): Promise<ListingEntry> =>
          new Promise((resolve, reject) => {
            const id = nextFill++
            fillEpoch.set(id, epochs.get(key.context) ?? 0)
            pending.push({ id, key, resolve, reject })
          })

        const check = (key: ListingKey, epoch: number) => (r: { entry: ListingEntry; status: string }) => {
          const tag = tagOf(r.entry)
          if (tag.key !== keyText(key)) problems.push(`${r.status}: ${keyText(key)} got ${tag.key}`)
          const startedAt = fillEpoch.get(tag.tag as number) ?? -1
          if (startedAt < epoch)
            problems.push(`${r.status}: pre-write data (fill epoch ${startedAt} < ${epoch})`)
        }

        const settle = (p: PendingFill, ok: boolean) => {
          if (ok) p.resolve(taggedEntry(p.key, p.id))
          else p.reject(new Error('upstream down'))
        }

        for (const step of steps) {
          if (step.kind === 'get') {
            const epoch = epochs.get(step.key.context) ?? 0
            const result = cache.get(step.key, fill(step.key)).then(check(step.key, epoch), () => undefined)
            gets.push({ key: step.key, epoch, result })
          } else if (step.kind === 'settle') {
            if (pending.length === 0) continue
            const [p] = pending.splice(step.pick % pending.length, 1)
            if (p) settle(p, step.ok)
            await turn()
          } else if (step.kind === 'tick') {
            time += step.ms
          } else if (step.kind === 'invalidate') {
            epochs.set(step.context, (epochs.get(step.context) ?? 0) + 1)
            cache.invalidateContext(step.context)
          } else {
            await turn()
          }
        }
        // Bounded: no step after this point starts a fill.
        while (pending.length > 0) {
          const p = pending.shift()
          if (p) settle(p, true)
        }
        await Promise.all(gets.map((g) => g.result))
        if (problems.length > 0) throw new Error(problems.join('\n'))
      },
    ),
    { numRuns: 300 },
  )
  t.pass('no listing crossed keys; no pre-write data after a write')
})
