/**
 * The patch of one cached listing (src/cache/listing-patch.ts), as a pure function: byte-equal to a
 * fresh compact listing, JSON-equal to any other, and null wherever the order or the form of the
 * records cannot be followed (the caller then drops the entry).
 */
import fc from 'fast-check'
import t from 'tap'
import { strongEtag } from '../../src/cache/etag.js'
import { buildListingEntry } from '../../src/cache/listing-entry.js'
import { listingIds, patchListing } from '../../src/cache/listing-patch.js'
import { scanListing } from '../../src/cache/listing-scan.js'
import { listingScannerPool } from '../../src/cache/listing-scanner.js'
import { patchEntry } from '../../src/cache/listing-writes.js'
import { runSteps } from '../../src/cache/steps.js'
import type { WriteChange } from '../../src/cache/write-change.js'
import { RESOURCE_BY_NAME } from '../../src/resources.js'

const customers = (ids: readonly number[]) =>
  ids.map((id) => ({
    id,
    Name: `N${id}`,
    Address: 'a "b" \u00e9',
    Email: '',
    PhoneNumber: '',
    AltPhoneNumber: '',
    UserID: `U${id}`,
  }))
const entryOf = (records: unknown[], text = JSON.stringify(records)) =>
  buildListingEntry(Buffer.from(text), RESOURCE_BY_NAME.customers)
const patched = (records: unknown[], change: WriteChange, text?: string) =>
  runSteps(patchListing(entryOf(records, text), [change]))
const upsert = (record: { id: number; UserID: string; [field: string]: unknown }): WriteChange => ({
  resource: 'customers',
  op: 'upsert',
  id: record.id,
  record,
  userId: record.UserID,
})

t.test('any upsert or remove on ascending ids gives the bytes of the listing made fresh', async (t) => {
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 60 }),
        fc.boolean(),
        (raw, id, remove) => {
          const ids = [...raw].sort((a, b) => a - b)
          const before = customers(ids)
          const record = { ...customers([id])[0]!, Name: 'changed' }
          const after = remove
            ? before.filter((r) => r.id !== id)
            : [...before.filter((r) => r.id !== id), record].sort((a, b) => a.id - b.id)
          const change: WriteChange = remove
            ? { resource: 'customers', op: 'remove', id, record: null, userId: null }
            : upsert(record)
          const out = patched(before, change)
          if (remove && !ids.includes(id)) return out === 'unchanged'
          if (out === null || out === 'unchanged') return false
          return (
            out.raw.toString() === JSON.stringify(after) &&
            [...out.ids].join() === after.map((r) => r.id).join() &&
            // What a scan of the same bytes gives: nothing is scanned again.
            [...out.offsets].join() === [...scanListing(out.raw)].join() &&
            // A new strong tag, the same for the same entry and changes (the bytes are a function of both).
            out.etag !== strongEtag(Buffer.from(JSON.stringify(before))) &&
            out.etag === (patched(before, change) as { etag: string }).etag
          )
        },
      ),
    ),
  )
})

t.test('an answer with its members in another order takes the listing order', async (t) => {
  const [a, b] = customers([1, 2])
  const { UserID, id, ...rest } = { ...b!, Name: 'X' }
  const out = patched([a, b], upsert({ UserID, ...rest, id } as never))
  t.not(out, null)
  t.equal((out as { raw: Buffer }).raw.toString(), JSON.stringify([a, { ...b, Name: 'X' }]))
})

t.test('a listing with whitespace is patched to the same JSON', async (t) => {
  const records = customers([1, 2, 3])
  const out = patched(records, upsert({ ...records[1]!, Name: 'Y' }), JSON.stringify(records, null, 2))
  t.same(JSON.parse((out as { raw: Buffer }).raw.toString()), [
    records[0],
    { ...records[1], Name: 'Y' },
    records[2],
  ])
})

t.test(
  'what cannot be followed is null: unordered ids, ids that are not integers, other members',
  async (t) => {
    t.equal(patched(customers([2, 1]), upsert(customers([3])[0]!)), null, 'ids not ascending')
    t.equal(patched(customers([1, 1]), upsert(customers([3])[0]!)), null, 'ids repeated')
    t.equal(patched([{ id: '1', UserID: 'U1' }], upsert({ id: 2, UserID: 'U2' })), null, 'a string id')
    t.equal(patched([{ UserID: 'U1' }], upsert({ id: 2, UserID: 'U2' })), null, 'no id')
    t.equal(
      patched(customers([1]), upsert({ id: 2, UserID: 'U2' })),
      null,
      'members the listing records lack',
    )
    t.equal(
      patched(customers([1]), upsert({ ...customers([2])[0]!, extra: 1 } as never)),
      null,
      'members too many',
    )
    t.equal(runSteps(listingIds(entryOf([{ id: 1.5 }]))), null)
  },
)

t.test(
  'an upsert that changes nothing, and a mapping change to the customers listing, keep the entry',
  async (t) => {
    const records = customers([1, 2])
    t.equal(patched(records, upsert(records[1]!)), 'unchanged')
    const mapping: WriteChange = { resource: 'mappings', op: 'remove', id: 1, record: null, userId: 'U1' }
    t.equal(patched(records, mapping), 'unchanged')
  },
)

t.test('mappings: a record gets its customer UserID; a customer delete removes its mappings', async (t) => {
  const m = (id: number, cust: number) => ({
    id,
    ipdr_customer_id: cust,
    ipsubnet: `10.0.0.${id}`,
    starttime: 0,
    endtime: null,
    terminalid: '',
    UserID: `U${cust}`,
  })
  const listing = [m(1, 1), m(2, 2), m(3, 1)]
  const entry = buildListingEntry(Buffer.from(JSON.stringify(listing)), RESOURCE_BY_NAME.mappings)
  const { UserID: _, ...answer } = m(4, 2)
  const created = runSteps(
    patchListing(entry, [{ resource: 'mappings', op: 'upsert', id: 4, record: answer, userId: 'U2' }]),
  )
  t.equal((created as { raw: Buffer }).raw.toString(), JSON.stringify([...listing, m(4, 2)]))
  const deleted = runSteps(
    patchListing(entry, [{ resource: 'customers', op: 'remove', id: 1, record: null, userId: null }]),
  )
  t.equal((deleted as { raw: Buffer }).raw.toString(), JSON.stringify([m(2, 2)]))
  t.same([...(deleted as { ids: Float64Array }).ids], [2])
})

t.test(
  'a large patched listing is indexed by the worker, and Fastify can send its bytes as they are',
  async (t) => {
    const scanner = listingScannerPool()
    t.teardown(() => scanner.close())
    const ids = Array.from({ length: 12_000 }, (_, i) => 2 * i + 1)
    const entry = entryOf(customers(ids))
    t.ok(entry.raw.length > 1024 * 1024)
    const made = await patchEntry(entry, [upsert({ ...customers([8])[0]!, Name: 'inserted' })], scanner)
    // Fastify sends bytes as they are only from an ArrayBuffer (a SharedArrayBuffer's went out as JSON).
    t.ok(made.raw.buffer instanceof ArrayBuffer)
    t.ok(made.indexPending, 'the index comes from the worker, once asked for')
    await made.whenIndexed()
    t.same(made.record(made.lookup('U8')[0]!).Name, 'inserted')
    t.equal(made.lookup('U9').length, 1)
    t.not(made.etag, entry.etag, 'a new tag')
    const again = await patchEntry(
      made,
      [{ resource: 'customers', op: 'remove', id: 8, record: null, userId: null }],
      scanner,
    )
    t.equal(again.raw.toString(), entry.raw.toString(), 'patched twice')
  },
)

t.test('a batch of changes applied at once is the listing after each in turn', async (t) => {
  const change = fc.record({
    id: fc.integer({ min: 1, max: 30 }),
    remove: fc.boolean(),
    name: fc.string({ maxLength: 4 }),
  })
  t.doesNotThrow(() =>
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 30 }), { maxLength: 10 }),
        fc.array(change, { minLength: 1, maxLength: 8 }),
        (raw, steps) => {
          let model = customers([...raw].sort((a, b) => a - b)) as Record<string, unknown>[]
          const changes: WriteChange[] = []
          for (const c of steps) {
            const record = { ...customers([c.id])[0]!, Name: c.name }
            model = model.filter((r) => r.id !== c.id)
            if (!c.remove) model = [...model, record].sort((a, b) => (a.id as number) - (b.id as number))
            changes.push(
              c.remove
                ? { resource: 'customers', op: 'remove', id: c.id, record: null, userId: null }
                : upsert(record),
            )
          }
          const entry = entryOf(customers([...raw].sort((a, b) => a - b)))
          const out = runSteps(patchListing(entry, changes))
          const text = out === 'unchanged' ? entry.raw.toString() : out === null ? null : out.raw.toString()
          return text === JSON.stringify(model)
        },
      ),
    ),
  )
})
