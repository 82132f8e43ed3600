import t from 'tap'
import { buildListingEntry } from '../../src/cache/listing-entry.js'
import { fastIpv4 } from '../../src/cache/listing-index.js'
import {
  applyListingQuery,
  applyListingQueryYielding,
  type ListingQuery,
  MAX_LIMIT,
  MAX_VALUE_LENGTH,
  parseListingQuery,
} from '../../src/cache/listing-query.js'
import { RESOURCE_BY_NAME, type ResourceFacts } from '../../src/resources.js'
import { parseIpRange } from '../../src/shared/ip-range.js'
import { makeCustomers, toRaw } from './fixtures.js'

const customersFacts = RESOURCE_BY_NAME.customers
const mappingsFacts = RESOURCE_BY_NAME.mappings

const customers = buildListingEntry(
  toRaw([
    {
      id: 1,
      UserID: 'U1',
      Name: 'Asha Rao',
      Address: '12 MG Road, Bengaluru',
      Email: 'Asha@Example.in',
      PhoneNumber: '+91 98450 11111',
    },
    {
      id: 2,
      UserID: 'U2',
      Name: 'Ravi Iyer',
      Address: 'Anna Salai, Chennai',
      Email: 'ravi@example.in',
      PhoneNumber: '+91 98450 22222',
    },
    {
      id: 3,
      UserID: 'u1',
      Name: 'Meera Nair',
      Address: 'Park Street',
      Email: 'meera@example.com',
      PhoneNumber: '+91 98450 11111',
    },
    { id: 4, UserID: 'RAO9', Name: 'Zoë Ünal', Address: 'Straße 5', Email: null, PhoneNumber: null },
    { id: 5, UserID: 'U5', Name: 'Tab\tName', Address: 7, Email: 'x@y.in', PhoneNumber: '12345' },
  ]),
  customersFacts,
)

const mappings = buildListingEntry(
  toRaw([
    { id: 1, ipdr_customer_id: 4, ipsubnet: '172.27.19.224', starttime: 0, endtime: 1735669799 },
    { id: 2, ipdr_customer_id: 4, ipsubnet: '192.168.1.0/24', starttime: 1000, endtime: null },
    { id: 3, ipdr_customer_id: 5, ipsubnet: '192.168.0.0/16', starttime: 0, endtime: 1000 },
    { id: 4, ipdr_customer_id: 6, ipsubnet: '2001:db8::/32', starttime: 500, endtime: null },
    { id: 5, ipdr_customer_id: 7, ipsubnet: '2001:db8::1', starttime: '100', endtime: '200' },
    { id: 6, ipdr_customer_id: 8, ipsubnet: 'not-an-ip', starttime: 0, endtime: null },
    { id: 7, ipdr_customer_id: 9, ipsubnet: '::ffff:10.1.2.3', starttime: 'x', endtime: null },
    { id: 8, ipdr_customer_id: 10, ipsubnet: '10.9.9.9', starttime: 0 },
    { id: 9, ipdr_customer_id: 11, ipsubnet: 42, starttime: 0, endtime: 'soon' },
  ]),
  mappingsFacts,
)

function parse(facts: ResourceFacts, query: Record<string, unknown>): ListingQuery {
  const parsed = parseListingQuery(facts, query)
  if (!parsed.ok) throw new Error(parsed.message)
  return parsed.query
}

function ids(facts: ResourceFacts, query: Record<string, unknown>): number[] {
  const entry = facts.name === 'customers' ? customers : mappings
  return applyListingQuery(entry, parse(facts, query)).records.map((r) => r.id as number)
}

t.test('no parameters: a plain query over everything', async (t) => {
  const q = parse(customersFacts, {})
  t.equal(q.plain, true)
  t.same(q.filters, [])
  const r = applyListingQuery(customers, q)
  t.equal(r.total, 5)
  t.same(r.positions, [0, 1, 2, 3, 4])
  t.ok(r.body().equals(Buffer.from(JSON.stringify(JSON.parse(customers.raw.toString())))))
  t.equal(parse(customersFacts, null as unknown as Record<string, unknown>).plain, true)
  t.equal(parse(customersFacts, { limit: '2' }).plain, false)
})

t.test('customer filters', async (t) => {
  const table: [Record<string, unknown>, number[], string?][] = [
    [{ UserID: 'U1' }, [1]],
    [{ UserID: 'u1' }, [3]],
    [{ UserID: 'nobody' }, []],
    [{ Email: 'asha@example.IN' }, [1]],
    [{ Email: 'ASHA@EXAMPLE.IN' }, [1]],
    [{ Email: 'asha@example' }, []],
    [{ PhoneNumber: '+91 98450 11111' }, [1, 3]],
    [{ PhoneNumber: '98450 11111' }, []],
    [{ PhoneNumber: '12345' }, [5]],
    [{ q: 'rao' }, [1, 4]],
    [{ q: 'RAO' }, [1, 4]],
    [{ q: 'example.com' }, [3]],
    [{ q: 'mg road' }, [1]],
    [{ q: 'example' }, [1, 2, 3]],
    [{ q: '98450' }, [], 'phone is not searched by q'],
    [{ q: 'straße' }, [4]],
    [{ q: 'ÜNAL' }, [4]],
    [{ q: 'u' }, [1, 2, 3, 5], 'ü is not u'],
    [{ q: '7' }, [5], 'numbers are searched as text'],
    [{ q: 'zzz' }, []],
    [{ q: 'a rao' }, [1]],
    [{ q: 'raou1' }, [], 'no match across two fields'],
    [{ q: 'example', PhoneNumber: '+91 98450 11111' }, [1, 3]],
    [{ UserID: 'U1', q: 'zzz' }, []],
    [{ UserID: 'U1', q: 'asha' }, [1]],
    [{ UserID: 'U1', Email: 'ASHA@example.in', PhoneNumber: '+91 98450 11111' }, [1]],
    [{ Email: 'meera@example.com', q: 'park' }, [3]],
    [{ Email: 'meera@example.com', q: 'mg' }, []],
  ]
  for (const [query, want, why] of table)
    t.same(ids(customersFacts, query), want, why ?? JSON.stringify(query))
})

t.test('mapping filters: ipsubnet, ip, at, ipdr_customer_id', async (t) => {
  const table: [Record<string, unknown>, number[], string?][] = [
    [{ ipdr_customer_id: '4' }, [1, 2]],
    [{ ipdr_customer_id: '004' }, [1, 2]],
    [{ ipdr_customer_id: '99' }, []],
    [{ ipdr_customer_id: '4', ip: '192.168.1.5' }, [2]],
    [{ ipsubnet: '192.168.1.0/24' }, [2]],
    [{ ipsubnet: '192.168.1.99/24' }, [2]],
    [{ ipsubnet: '192.168.0.0/16' }, [3]],
    [{ ipsubnet: '2001:DB8::/32' }, [4]],
    [{ ipsubnet: '2001:db8:0::1' }, [5]],
    [{ ipsubnet: '10.1.2.3' }, [7]],
    [{ ipsubnet: '172.27.19.224/32' }, [1]],
    [{ ipsubnet: '172.27.19.0/24' }, []],
    [{ ip: '192.168.1.5' }, [2, 3]],
    [{ ip: '192.168.1.5', at: '999' }, [3]],
    [{ ip: '192.168.1.5', at: '1000' }, [2]],
    [{ ip: '192.168.2.1' }, [3]],
    [{ ip: '172.27.19.224' }, [1]],
    [{ ip: '172.27.19.224', at: '1735669798' }, [1]],
    [{ ip: '172.27.19.224', at: '1735669799' }, []],
    [{ ip: '172.27.19.225' }, []],
    [{ ip: '2001:db8::1' }, [4, 5]],
    [{ ip: '2001:db8::1', at: '150' }, [5]],
    [{ ip: '2001:db8::1', at: '200' }, []],
    [{ ip: '2001:db8::1', at: '500' }, [4]],
    [{ ip: '2001:db8:ffff::1' }, [4]],
    [{ ip: '2001:db9::1' }, []],
    [{ ip: '10.1.2.3' }, [7]],
    [{ ip: '::ffff:10.1.2.3' }, [7]],
    [{ ip: '10.1.2.3', at: '5' }, [], 'a malformed starttime never matches'],
    [{ ip: '10.9.9.9', at: '99999999999' }, [8]],
    [{ ip: '1.2.3.4/32' }, []],
    [{ at: '150' }, [1, 3, 5, 6, 8]],
    [{ at: '0' }, [1, 3, 6, 8]],
    [{ at: '150', ipsubnet: '2001:db8::1' }, [5]],
    [{ at: '150', limit: '2', offset: '1' }, [3, 5]],
  ]
  for (const [query, want, why] of table)
    t.same(ids(mappingsFacts, query), want, why ?? JSON.stringify(query))
})

t.test('paging and totals', async (t) => {
  let r = applyListingQuery(customers, parse(customersFacts, { q: 'example', limit: '1', offset: '1' }))
  t.equal(r.total, 3)
  t.same(r.positions, [1])
  r = applyListingQuery(customers, parse(customersFacts, { q: 'example', offset: '2' }))
  t.same(r.positions, [2])
  r = applyListingQuery(customers, parse(customersFacts, { q: 'example', offset: '3' }))
  t.equal(r.total, 3)
  t.same(r.positions, [])
  r = applyListingQuery(customers, parse(customersFacts, { limit: '2' }))
  t.equal(r.total, 5)
  t.same(r.positions, [0, 1])
  r = applyListingQuery(customers, parse(customersFacts, { limit: '2', offset: '4' }))
  t.same(r.positions, [4])
  r = applyListingQuery(customers, parse(customersFacts, { offset: '99' }))
  t.equal(r.total, 5)
  t.same(r.positions, [])
  t.equal(r.body().toString(), '[]')
  r = applyListingQuery(customers, parse(customersFacts, { offset: '0', limit: String(MAX_LIMIT) }))
  t.equal(r.positions.length, 5)
})

t.test('bodies: upstream bytes joined, or redacted records', async (t) => {
  const r = applyListingQuery(customers, parse(customersFacts, { q: 'example' }))
  const plain = r.body()
  t.same(JSON.parse(plain.toString()), r.records)
  t.equal(r.records, r.records, 'records are parsed once')
  const redacted = JSON.parse(r.body(['PhoneNumber', 'Email']).toString()) as Record<string, unknown>[]
  t.equal(redacted.length, 3)
  for (const rec of redacted) {
    t.equal(rec.PhoneNumber, '***')
    t.equal(rec.Email, '***')
  }
  t.not(r.records[0]?.PhoneNumber, '***', 'the parsed records are not mutated')
})

t.test('a larger listing spans several index chunks', async (t) => {
  const records = makeCustomers(10_000, 7)
  const entry = buildListingEntry(toRaw(records), customersFacts)
  const target = records[9_321]
  if (target === undefined) throw new Error('fixture')
  const exact = applyListingQuery(entry, parse(customersFacts, { Email: target.Email.toUpperCase() }))
  t.same(exact.positions, [9_321])
  const byQ = applyListingQuery(entry, parse(customersFacts, { q: target.Email }))
  t.same(byQ.positions, [9_321])
  const byPhone = applyListingQuery(entry, parse(customersFacts, { PhoneNumber: target.PhoneNumber }))
  t.ok(byPhone.positions.includes(9_321))
  const all = applyListingQuery(
    entry,
    parse(customersFacts, { q: 'example.com', limit: '3', offset: '9998' }),
  )
  t.equal(all.total, 10_000)
  t.same(all.positions, [9_998, 9_999])
  const sharma = records.flatMap((c, i) => (c.Name.toLowerCase().includes('sharma') ? [i] : []))
  t.same(applyListingQuery(entry, parse(customersFacts, { q: 'SHARMA' })).positions, sharma)
})

t.test('across loop turns: the same answers, and the loop gets turns meanwhile', async (t) => {
  const records = makeCustomers(60_000, 11)
  const entry = buildListingEntry(toRaw(records), customersFacts)
  const queries: Record<string, string>[] = [
    { q: 'sharma' },
    { q: 'example.com', Email: (records[123]?.Email ?? '').toUpperCase() },
    { PhoneNumber: records[59_999]?.PhoneNumber ?? '', limit: '2' },
    { q: 'no such text anywhere' },
    { UserID: records[7]?.UserID ?? '', q: 'a' },
    { q: 'a', limit: '5', offset: '40000' },
  ]
  for (const query of queries) {
    const parsed = parse(customersFacts, query)
    const once = applyListingQuery(entry, parsed)
    let turns = 0
    const ticker = setInterval(() => turns++, 0)
    // A slice of 0 ms: a turn after every step, as a busy machine would make it.
    const yielding = await applyListingQueryYielding(entry, parsed, 0)
    clearInterval(ticker)
    t.same(yielding.positions, once.positions, `${JSON.stringify(query)}: the same page`)
    t.equal(yielding.total, once.total, `${JSON.stringify(query)}: the same total`)
    // A UserID is looked up in the key table: no scan, nothing to cut.
    if (!('UserID' in query)) t.ok(turns > 0, `${JSON.stringify(query)}: timers ran meanwhile (${turns})`)
  }
})

t.test('the canonical text ignores parameter order', async (t) => {
  const a = parse(customersFacts, { q: 'x', limit: '5' })
  const b = parse(customersFacts, { limit: '5', q: 'x' })
  t.equal(a.canonical, b.canonical)
  t.not(parse(customersFacts, { q: 'y', limit: '5' }).canonical, a.canonical)
})

t.test('every invalid parameter is a 400 with a message naming it', async (t) => {
  const long = 'x'.repeat(MAX_VALUE_LENGTH + 1)
  const table: [ResourceFacts, Record<string, unknown>, RegExp][] = [
    [
      customersFacts,
      { foo: '1' },
      /unknown query parameter "foo" \(allowed: UserID, Email, PhoneNumber, q, limit, offset\)/,
    ],
    [customersFacts, { ip: '10.0.0.1' }, /unknown query parameter "ip"/],
    [customersFacts, { ['y'.repeat(100)]: '1' }, /unknown query parameter "y{64}…"/],
    [customersFacts, { UserID: ['a', 'b'] }, /"UserID" is repeated/],
    [customersFacts, { q: 5 }, /"q" must be a string/],
    [customersFacts, { q: '' }, /"q" must not be empty/],
    [customersFacts, { q: long }, /"q" is longer than 1024 characters/],
    [customersFacts, { q: 'a\u0000b' }, /q must not contain control characters/],
    [customersFacts, { Email: 'a\nb@c' }, /Email must not contain control characters/],
    [customersFacts, { PhoneNumber: '1\u007f' }, /PhoneNumber must not contain control characters/],
    [customersFacts, { limit: '0' }, /limit must be an integer from 1 to 10000/],
    [customersFacts, { limit: '10001' }, /limit must be an integer/],
    [customersFacts, { limit: '-1' }, /limit must be an integer/],
    [customersFacts, { limit: '1.5' }, /limit must be an integer/],
    [customersFacts, { limit: '1e3' }, /limit must be an integer/],
    [customersFacts, { limit: ' 5' }, /limit must be an integer/],
    [customersFacts, { limit: 'abc' }, /limit must be an integer/],
    [customersFacts, { offset: '-1' }, /offset must be a non-negative integer/],
    [customersFacts, { offset: '1.0' }, /offset must be a non-negative integer/],
    [customersFacts, { offset: 'x' }, /offset must be a non-negative integer/],
    [customersFacts, { offset: '1234567890123456' }, /offset must be a non-negative integer/],
    [mappingsFacts, { q: 'x' }, /unknown query parameter "q"/],
    [mappingsFacts, { ip: 'abc' }, /ip must be an IPv4 or IPv6 address/],
    [mappingsFacts, { ip: '10.0.0.0/24' }, /ip must be an IPv4 or IPv6 address/],
    [mappingsFacts, { ip: '1.2.3' }, /ip must be an IPv4 or IPv6 address/],
    [mappingsFacts, { ipsubnet: '10.0.0.0/33' }, /ipsubnet must be an IPv4 or IPv6 address or CIDR subnet/],
    [mappingsFacts, { ipsubnet: 'nope' }, /ipsubnet must be/],
    [mappingsFacts, { at: '-5' }, /at must be a non-negative integer \(Unix seconds\)/],
    [mappingsFacts, { at: '1.5' }, /at must be a non-negative integer/],
    [mappingsFacts, { at: 'now' }, /at must be a non-negative integer/],
    [mappingsFacts, { ip: '10.0.0.1', at: '' }, /"at" must not be empty/],
    [mappingsFacts, { ipdr_customer_id: 'x' }, /ipdr_customer_id must be a non-negative integer/],
    [mappingsFacts, { ipdr_customer_id: '-1' }, /ipdr_customer_id must be a non-negative integer/],
    [mappingsFacts, { ip: ['10.0.0.1', '10.0.0.2'] }, /"ip" is repeated/],
  ]
  for (const [facts, query, message] of table) {
    const parsed = parseListingQuery(facts, query)
    t.equal(parsed.ok, false, `${facts.name} ${JSON.stringify(query)}`)
    if (!parsed.ok) t.match(parsed.message, message)
  }
  const several = parseListingQuery(customersFacts, { limit: '0', offset: 'x', foo: '1' })
  t.equal(several.ok, false)
  if (!several.ok) t.match(several.message, /^Invalid query: .*foo.*; limit.*; offset/)
})

t.test('boundary values are accepted', async (t) => {
  t.equal(parse(customersFacts, { limit: '1' }).limit, 1)
  t.equal(parse(customersFacts, { limit: '10000' }).limit, 10_000)
  t.equal(parse(customersFacts, { offset: '0' }).offset, 0)
  t.equal(parse(customersFacts, { q: 'x'.repeat(MAX_VALUE_LENGTH) }).filters.length, 1)
  t.same(parse(mappingsFacts, { at: '0' }).filters, [{ kind: 'at', name: 'at', at: 0 }])
  t.equal(parse(mappingsFacts, { ip: '::1' }).filters[0]?.kind, 'ipContains')
  t.equal(parse(mappingsFacts, { ip: '10.0.0.1/32' }).filters[0]?.kind, 'ipContains')
})

t.test('a query applies only to a listing of its resource', async (t) => {
  t.throws(() => applyListingQuery(mappings, parse(customersFacts, { q: 'x' })), TypeError)
})

t.test('the fast IPv4 path agrees with parseIpRange', async (t) => {
  const samples = [
    '0.0.0.0',
    '255.255.255.255',
    '10.1.2.3',
    '10.1.2.3/0',
    '10.1.2.3/1',
    '10.1.2.3/8',
    '192.168.1.23/24',
    '192.168.1.23/31',
    '192.168.1.23/32',
    '256.1.1.1',
    '1.2.3.4/33',
    '010.1.1.1',
    '1.2.3.4/032',
    '1.2.3',
    ' 1.2.3.4',
  ]
  for (const text of samples) {
    const range = parseIpRange(text)
    const fast = fastIpv4(text)
    if (fast === null) continue
    t.ok(range?.version === 4, `${text} is IPv4 for both`)
    t.same(fast, [Number(range?.start), Number(range?.end)], text)
  }
  t.equal(fastIpv4('010.1.1.1'), null, 'leading zeros are left to parseIpRange')
  t.equal(fastIpv4('256.1.1.1'), null)
})
