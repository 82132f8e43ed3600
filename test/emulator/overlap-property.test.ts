// The indexed SQL overlap rule agrees with a naive model on random mappings (fast-check), IPv4 and IPv6.
import fc from 'fast-check'
import t from 'tap'
import { parseSubnet } from '../../src/emulator/request-body.js'
import { EmulatorStore } from '../../src/emulator/store.js'
import { type IpRange, rangesOverlap } from '../../src/shared/ip-range.js'

interface Held {
  owner: number
  range: IpRange
  start: number
  end: number | null
}

const INF = Number.POSITIVE_INFINITY
const spansOverlap = (a: Held, b: Held) => a.start < (b.end ?? INF) && b.start < (a.end ?? INF)

function modelAccepts(held: Held[], next: Held): boolean {
  for (const h of held) {
    const sameBlock =
      h.range.version === next.range.version &&
      h.range.start === next.range.start &&
      h.range.prefix === next.range.prefix
    if (h.owner === next.owner && sameBlock) return false
    if (h.owner !== next.owner && rangesOverlap(h.range, next.range) && spansOverlap(h, next)) return false
  }
  return true
}

// Small address spaces so that random blocks collide often.
const v4 = fc
  .tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 28, max: 32 }))
  .map(([host, prefix]) => `10.0.0.${host}/${prefix}`)
const v6 = fc
  .tuple(fc.integer({ min: 0, max: 15 }), fc.integer({ min: 124, max: 128 }))
  .map(([host, prefix]) => `2001:db8::${host.toString(16)}/${prefix}`)
const span = fc
  .tuple(fc.integer({ min: 0, max: 20 }), fc.option(fc.integer({ min: 1, max: 10 }), { nil: null }))
  .map(([start, len]) => ({ start, end: len === null ? null : start + len }))
const op = fc.record({ owner: fc.integer({ min: 0, max: 3 }), subnet: fc.oneof(v4, v6), span })

t.test('random creates: the store refuses exactly what the model refuses', async (t) => {
  fc.assert(
    fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
      const store = new EmulatorStore(':memory:')
      try {
        for (let k = 0; k < 4; k++)
          store.createCustomer('default', {
            UserID: `C${k}`,
            Name: 'x',
            Address: '',
            Email: '',
            PhoneNumber: '',
            AltPhoneNumber: '',
          })
        const held: Held[] = []
        for (const { owner, subnet, span } of ops) {
          const range = parseSubnet(subnet) as IpRange
          const next = { owner, range, start: span.start, end: span.end }
          const expected = modelAccepts(held, next)
          let accepted = true
          try {
            store.createMapping('default', `C${owner}`, {
              ipsubnet: subnet,
              range,
              starttime: span.start,
              endtime: span.end,
              terminalid: '',
            })
          } catch (err) {
            if ((err as Error).message !== `Duplicate Mapping for UserID : C${owner}`) throw err
            accepted = false
          }
          if (accepted !== expected) return false
          if (accepted) held.push(next)
        }
        return store.listMappings('default').length === held.length
      } finally {
        store.close()
      }
    }),
    { numRuns: 150, seed: 20240601 },
  )
  t.pass('store and model agree')
})
