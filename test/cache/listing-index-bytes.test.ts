/**
 * The index reads each record's members from its bytes (`MemberPicker`, no
 * `JSON.parse` of the record) and copies plain ASCII strings byte for byte.
 * Whatever the record holds — escapes, non-ASCII and upper-case text, control
 * characters, numbers, null, nested values, a member written twice, a name
 * written with escapes, members missing — every indexed column, key, address
 * and time must be what `JSON.parse` of the record gives.
 */
import fc from 'fast-check'
import t from 'tap'
import { buildListingEntry } from '../../src/cache/listing-entry.js'
import { buildIndexParts, canonicalInteger, indexPlan } from '../../src/cache/listing-index.js'
import { scanListing } from '../../src/cache/listing-scan.js'
import { RESOURCE_BY_NAME } from '../../src/resources.js'
import { parseIpRange } from '../../src/shared/ip-range.js'

/** The index's normalization, restated: the oracle for a column's text. */
function expectedText(value: unknown, normalize: 'lower' | 'none'): string {
  let s: string
  if (typeof value === 'string') s = value
  else if (typeof value === 'number' || typeof value === 'boolean') s = String(value)
  else return ''
  if (normalize === 'lower') s = s.toLowerCase()
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the index turns control characters into spaces.
  return s.replace(/[\u0000-\u001f]/g, ' ')
}

const stringValue = fc.oneof(
  fc.constantFrom(
    'Asha RAO',
    'B68t19',
    'asha@Example.IN',
    '+91 98000 00001',
    '',
    'Ünïcødé Ç',
    'नमस्ते',
    'a"b\\c',
  ),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 6 }),
)
/** A member value as JSON text: mostly strings, sometimes anything. */
const valueText = fc.oneof(
  { weight: 6, arbitrary: stringValue.map((v) => JSON.stringify(v)) },
  {
    weight: 1,
    arbitrary: stringValue.map((v) =>
      JSON.stringify(v).replace(/[A-Za-z]/, (c) => `\\u00${c.charCodeAt(0).toString(16)}`),
    ),
  },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.constantFrom('12', '-0', '1e3', '0.5', 'true', 'null', '[]', '{"UserID":"x"}') },
)
/** A member name as JSON text: one the index reads (sometimes written with an escape), or another. */
function nameText(fields: readonly string[]) {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...fields).map((n) => JSON.stringify(n)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...fields).map((n) => `"\\u00${n.charCodeAt(0).toString(16)}${n.slice(1)}"`),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 6 }).map((n) => JSON.stringify(n)) },
  )
}
function recordText(fields: readonly string[]) {
  const ws = fc.constantFrom('', ' ', '\n  ')
  return fc
    .array(fc.tuple(nameText(fields), valueText, ws), { maxLength: 9 })
    .map((members) => `{${members.map(([n, v, w]) => `${w}${n}${w}:${w}${v}`).join(',')}}`)
}

for (const resource of ['customers', 'mappings'] as const) {
  const facts = RESOURCE_BY_NAME[resource]
  const plan = indexPlan(facts)
  const fields = [
    plan.key.field,
    ...plan.text.map((c) => c.field),
    ...(plan.ipField ? [plan.ipField] : []),
    ...(plan.timeFields ?? []),
  ]
  t.test(`${resource}: every indexed value is what JSON.parse of the record gives`, async (t) => {
    let checked = 0
    fc.assert(
      fc.property(fc.array(recordText(fields), { maxLength: 12 }), (records) => {
        const raw = Buffer.from(`[${records.join(',')}]`, 'utf8')
        const parsed = JSON.parse(raw.toString('utf8')) as Record<string, unknown>[]
        const entry = buildListingEntry(raw, facts)
        const index = entry.index
        for (let pos = 0; pos < parsed.length; pos++) {
          const record = parsed[pos] as Record<string, unknown>
          for (const column of plan.text) {
            const want = expectedText(record[column.field], column.normalize)
            if (index.textAt(pos, column.tag) !== want) return false
          }
          checked++
          const key = record[plan.key.field]
          const canonical =
            plan.key.kind === 'integer'
              ? canonicalInteger(key)
              : typeof key === 'string'
                ? key
                : typeof key === 'number' && Number.isFinite(key)
                  ? String(key)
                  : null
          if (canonical !== null && !index.positionsForKey(canonical).includes(pos)) return false
          const ip = plan.ipField ? record[plan.ipField] : undefined
          const range = typeof ip === 'string' ? parseIpRange(ip) : null
          if (range && !index.ipEqualsAt(pos, range)) return false
          if (plan.timeFields) {
            const [from, to] = plan.timeFields
            const start = record[from]
            if (typeof start === 'number' && Number.isFinite(start) && record[to] === null) {
              if (!index.validAt(pos, start)) return false
            }
          }
        }
        return true
      }),
      { numRuns: 300 },
    )
    t.ok(checked > 1000, `${checked} records compared`)
  })
}

t.test('a member written twice: the last one counts, as in JSON.parse', async (t) => {
  const raw = Buffer.from(
    '[{"UserID":"OLD","Name":"First","UserID":"NEW","Name":"Second"},{"\\u0055serID":"ESC","Name":"\\u0041sha"}]',
  )
  const entry = buildListingEntry(raw, RESOURCE_BY_NAME.customers)
  t.same(entry.lookup('NEW'), [0])
  t.same(entry.lookup('OLD'), [])
  t.same(entry.lookup('ESC'), [1], 'a name written with an escape is the same name')
  const name = indexPlan(RESOURCE_BY_NAME.customers).text.find((c) => c.field === 'Name')
  if (!name) throw new Error('customers index Name')
  t.equal(entry.index.textAt(0, name.tag), 'second')
  t.equal(entry.index.textAt(1, name.tag), 'asha')
})

t.test('read through a moving window (as past 512 MiB): the same index', async (t) => {
  const records = Array.from({ length: 300 }, (_, i) => ({
    id: i,
    UserID: `U${i}`,
    Name: i % 7 ? `Näme ${i}` : `Name ${i}`,
    Email: `u${i}@Example.in`,
    Address: 'x'.repeat(i % 50),
  }))
  const raw = Buffer.from(JSON.stringify(records))
  const offsets = scanListing(raw)
  const whole = buildIndexParts(raw, offsets, RESOURCE_BY_NAME.customers)
  // Windows smaller than some records too: the window then stretches to the record.
  for (const windowBytes of [64, 200, 1000, 4096]) {
    const windowed = buildIndexParts(raw, offsets, RESOURCE_BY_NAME.customers, windowBytes)
    t.same(windowed, whole, `a window of ${windowBytes} bytes`)
  }
})
