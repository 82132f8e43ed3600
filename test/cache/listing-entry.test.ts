import { promisify } from 'node:util'
import zlib from 'node:zlib'
import t from 'tap'
import type { ListingRepresentation } from '../../src/cache/listing-body.js'
import { buildListingEntry, InvalidListingError } from '../../src/cache/listing-entry.js'
import { GatewayError } from '../../src/errors.js'
import { RESOURCE_BY_NAME } from '../../src/resources.js'
import { makeCustomers, toRaw } from './fixtures.js'

const customers = RESOURCE_BY_NAME.customers
const mappings = RESOURCE_BY_NAME.mappings
const gunzip = promisify(zlib.gunzip)
const brotliDecompress = promisify(zlib.brotliDecompress)

function caught(fn: () => unknown): Error | undefined {
  try {
    fn()
  } catch (err) {
    return err as Error
  }
  return undefined
}

t.test('anything but a JSON array of objects is an InvalidListingError (502)', async (t) => {
  const bad = [
    '',
    'not json',
    '{"status":"ERROR","message":"Invalid API token"}',
    '"x"',
    'null',
    '[1]',
    '[{}, []]',
    '[null]',
    '[{}] x',
  ]
  for (const text of bad) {
    const err = caught(() => buildListingEntry(Buffer.from(text), customers))
    t.ok(err instanceof InvalidListingError && err instanceof GatewayError, JSON.stringify(text))
    t.equal((err as GatewayError).code, 'IPDR_GW_UPSTREAM_BAD_RESPONSE')
    t.equal((err as GatewayError).statusCode, 502)
  }
  t.throws(() => buildListingEntry('[]' as unknown as Buffer, customers), InvalidListingError)
  t.match(caught(() => buildListingEntry(Buffer.from('[{}, 7]'), customers))?.message, /index 1/)
})

t.test('empty listing', async (t) => {
  const entry = buildListingEntry(Buffer.from(' [ ] '), customers)
  t.equal(entry.count, 0)
  t.same(entry.lookup('x'), [])
  t.equal(entry.recordsBody([]).toString(), '[]')
  t.equal(entry.resource, 'customers')
  t.equal(entry.facts, customers)
})

t.test('the raw bytes are kept as they are, records are served from them', async (t) => {
  const text =
    ' [ {"id":1, "UserID":"U1","Name":"A \\"[x]\\" {y}\\\\"} ,\n{"id":2,"UserID":"U2","Name":"B","x":{"n":[1,{"m":"]"}]}}]'
  const raw = Buffer.from(text)
  const entry = buildListingEntry(raw, customers)
  t.equal(entry.raw, raw, 'zero-copy: the same Buffer')
  t.equal(entry.count, 2)
  t.equal(entry.recordRaw(0).toString(), '{"id":1, "UserID":"U1","Name":"A \\"[x]\\" {y}\\\\"}')
  t.same(entry.record(1), { id: 2, UserID: 'U2', Name: 'B', x: { n: [1, { m: ']' }] } })
  t.not(entry.record(1), entry.record(1), 'fresh objects each call')
  t.same(JSON.parse(entry.recordsBody([1, 0]).toString()), [entry.record(1), entry.record(0)])
  t.same(entry.lookup('U2'), [1])
  t.same(entry.lookup('u2'), [], 'UserID is case-sensitive')
  t.throws(() => entry.recordRaw(2), RangeError)
  t.throws(() => entry.recordRaw(-1), RangeError)
  t.throws(() => entry.recordRaw(0.5), RangeError)
  t.throws(() => entry.recordsBody([5]), RangeError)
})

t.test('non-ASCII records are indexed and sliced by bytes', async (t) => {
  const records = [
    { id: 1, UserID: 'U1', Name: 'राम शर्मा', Address: 'Straße 5', Email: 'Ünal@Example.com' },
    { id: 2, UserID: 'Ü2', Name: 'Zoë', Address: 'x', Email: 'z@e.in' },
  ]
  const entry = buildListingEntry(toRaw(records), customers)
  t.same(entry.record(0), records[0])
  t.same(entry.lookup('Ü2'), [1])
  t.same(JSON.parse(entry.recordsBody([0, 1]).toString()), records)
})

t.test('mapping keys are canonical integers', async (t) => {
  const raw = toRaw([
    { id: 1, ipdr_customer_id: 4, ipsubnet: '10.0.0.1', starttime: 0, endtime: null },
    { id: 2, ipdr_customer_id: '4', ipsubnet: '10.0.0.2', starttime: 0, endtime: null },
    { id: 3, ipdr_customer_id: 5, ipsubnet: '10.0.0.3', starttime: 0, endtime: null },
    { id: 4, ipdr_customer_id: 'x', ipsubnet: '10.0.0.4', starttime: 0, endtime: null },
    { id: 5, ipdr_customer_id: 4, ipsubnet: '10.0.0.5', starttime: 0, endtime: null },
  ])
  const entry = buildListingEntry(raw, mappings)
  t.same(entry.lookup(4), [0, 1, 4])
  t.same(entry.lookup('004'), [0, 1, 4])
  t.same(entry.lookup('5'), [2])
  t.same(entry.lookup('x'), [])
  t.same(entry.lookup(-1), [])
})

t.test('customers keyed by numbers or odd values', async (t) => {
  const entry = buildListingEntry(
    toRaw([{ UserID: 7 }, { UserID: null }, { UserID: 'a' }, { UserID: 'a' }]),
    customers,
  )
  t.same(entry.lookup(7), [0])
  t.same(entry.lookup('7'), [0])
  t.same(entry.lookup('a'), [2, 3])
})

t.test('strong ETag: stable for equal bytes, changed by any byte', async (t) => {
  const raw = toRaw(makeCustomers(50))
  const a = buildListingEntry(raw, customers)
  const b = buildListingEntry(Buffer.from(raw), customers)
  t.match(a.etag, /^"[A-Za-z0-9_-]{27}"$/)
  t.equal(a.etag, b.etag)
  t.not(buildListingEntry(Buffer.from(raw.toString().replace('"id":1,', '"id":9,')), customers).etag, a.etag)
  t.equal(a.etagFor('identity'), a.etag)
  t.not(a.etagFor('gzip'), a.etag)
  t.not(a.etagFor('br'), a.etagFor('gzip'))
  t.match(a.etagFor('gzip'), /^"[A-Za-z0-9_-]{27}\.gz"$/)
})

t.test('compressed variants decompress to exactly raw, made once and memoized', async (t) => {
  const raw = toRaw(makeCustomers(500))
  const entry = buildListingEntry(raw, customers)
  let grew = 0
  entry.onSizeChange(() => grew++)
  const before = entry.bytes
  t.equal(entry.peekEncoded('gzip'), undefined)
  t.equal(entry.peekEncoded('identity'), raw)
  t.equal(await entry.encoded('identity'), raw)
  const [g1, g2] = await Promise.all([entry.encoded('gzip'), entry.encoded('gzip')])
  t.equal(g1, g2, 'concurrent askers share one compression')
  t.equal(await entry.encoded('gzip'), g1, 'later askers get the memoized Buffer')
  t.equal(entry.peekEncoded('gzip'), g1)
  t.ok((await gunzip(g1 as Buffer)).equals(raw))
  const br = await entry.encoded('br')
  t.ok((await brotliDecompress(br)).equals(raw))
  t.equal(grew, 2, 'the size listener heard of both variants')
  t.equal(entry.bytes, before + (g1 as Buffer).length + br.length)
  entry.onSizeChange(undefined)
})

t.test('redacted views: memoized per field set, own ETag, zero-copy without fields', async (t) => {
  const records = makeCustomers(20)
  const raw = toRaw(records)
  const entry = buildListingEntry(raw, customers)
  let grew = 0
  entry.onSizeChange(() => grew++)
  t.equal(entry.redacted([]), entry, 'no redaction keeps the zero-copy entry')
  const before = entry.bytes
  const view = entry.redacted(['PhoneNumber', 'AltPhoneNumber'])
  t.equal(entry.redacted(['AltPhoneNumber', 'PhoneNumber', 'PhoneNumber']), view, 'memoized per sorted set')
  t.not(entry.redacted(['PhoneNumber']), view)
  const parsed = JSON.parse(view.raw.toString()) as Record<string, unknown>[]
  t.equal(parsed.length, 20)
  for (const [i, r] of parsed.entries()) {
    t.equal(r.PhoneNumber, '***')
    t.equal(r.AltPhoneNumber, '***')
    t.equal(r.Name, records[i]?.Name)
  }
  t.not(view.etag, entry.etag)
  t.match(view.etag, /^"[A-Za-z0-9_-]{27}"$/)
  t.ok((await gunzip(await view.encoded('gzip'))).equals(view.raw))
  t.equal(view.peekEncoded('identity'), view.raw)
  t.ok(entry.bytes > before + view.raw.length, 'the view and its variant count in bytes')
  t.equal(grew, 3, 'two views and one variant')
  t.equal(entry.raw, raw, 'the entry itself is untouched')
})

t.test('redacted views made across loop turns: the same view, made once for concurrent askers', async (t) => {
  const raw = toRaw(makeCustomers(2000))
  const entry = buildListingEntry(raw, customers)
  t.equal(entry.peekRedacted([]), entry, 'no fields: the entry, made')
  t.equal(entry.peekRedacted(['PhoneNumber']), undefined, 'not made before it is asked for')
  // That the making yields to the loop is the 400,000-customer test's (listing-scanner.test.ts).
  const asked = [
    entry.redactedInTurns(['PhoneNumber']),
    entry.redactedInTurns(['PhoneNumber', 'PhoneNumber']),
  ]
  t.equal(entry.peekRedacted(['PhoneNumber']), undefined, "not kept on the asker's turn")
  const [a, b] = (await Promise.all(asked)) as [ListingRepresentation, ListingRepresentation]
  t.equal(a, b, 'concurrent askers share one making')
  t.equal(entry.peekRedacted(['PhoneNumber']), a, 'and it is kept')
  t.equal(entry.redacted(['PhoneNumber']), a, 'the one the synchronous call returns')
  const whole = buildListingEntry(raw, customers).redacted(['PhoneNumber'])
  t.ok(a.raw.equals(whole.raw), 'the same bytes as made at once')
  t.equal(a.etag, whole.etag)
  t.equal(await entry.redactedInTurns([]), entry)
})
