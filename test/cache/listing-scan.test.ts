/**
 * The byte-level listing validator (src/cache/listing-scan.ts) agrees with
 * `JSON.parse` on every input: it accepts exactly the JSON arrays of objects,
 * and each range it returns is one element's exact text. Random JSON, random
 * whitespace, and random corruptions of both; plus the documented cases.
 */
import fc from 'fast-check'
import t from 'tap'
import { ListingScanError, scanListing } from '../../src/cache/listing-scan.js'

function judge(text: string): { ok: true; elements: unknown[] } | { ok: false } {
  try {
    const v: unknown = JSON.parse(text)
    if (!Array.isArray(v)) return { ok: false }
    if (!v.every((e) => e !== null && typeof e === 'object' && !Array.isArray(e))) return { ok: false }
    return { ok: true, elements: v }
  } catch {
    return { ok: false }
  }
}

function scanned(text: string): { ok: true; slices: string[] } | { ok: false } {
  const raw = Buffer.from(text, 'utf8')
  try {
    const offsets = scanListing(raw)
    const slices: string[] = []
    for (let i = 0; i < offsets.length; i += 2)
      slices.push(raw.subarray(offsets[i], offsets[i + 1]).toString('utf8'))
    return { ok: true, slices }
  } catch (err) {
    if (!(err instanceof ListingScanError)) throw err
    return { ok: false }
  }
}

const WS = fc.constantFrom('', ' ', '\n', '\t', '\r\n  ')
const record = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 })

/** JSON text of a listing with random whitespace between tokens. */
const spaced = fc
  .tuple(fc.array(record, { maxLength: 6 }), fc.array(WS, { minLength: 8, maxLength: 8 }))
  .map(
    ([records, ws]) =>
      `${ws[0]}[${ws[1]}${records.map((r) => JSON.stringify(r, null, ws[2] === '' ? 0 : 1)).join(`${ws[3]},${ws[4]}`)}${ws[5]}]${ws[6]}`,
  )

t.test('agrees with JSON.parse on listings, values and corruptions of both', async (t) => {
  let accepted = 0
  let rejected = 0
  const inputs = fc.oneof(
    spaced,
    fc.json({ maxDepth: 4 }),
    fc
      .tuple(
        spaced,
        fc.nat(),
        fc.constantFrom('', '"', '\\', ',', ']', '}', '{', 'x', '\u0001', '-', '0', 'e'),
      )
      .map(([text, at, insert]) => {
        const p = text.length === 0 ? 0 : at % text.length
        return text.slice(0, p) + insert + text.slice(p + 1)
      }),
  )
  fc.assert(
    fc.property(inputs, (text) => {
      const expected = judge(text)
      const got = scanned(text)
      if (expected.ok !== got.ok) return false
      if (!expected.ok || !got.ok) {
        rejected++
        return true
      }
      accepted++
      return (
        got.slices.length === expected.elements.length &&
        got.slices.every((s, i) => JSON.stringify(JSON.parse(s)) === JSON.stringify(expected.elements[i]))
      )
    }),
    { numRuns: 3000 },
  )
  t.ok(
    accepted > 300 && rejected > 300,
    `both answers exercised (${accepted} accepted, ${rejected} rejected)`,
  )
})

t.test('the documented cases', async (t) => {
  t.same([...scanListing(Buffer.from('[]'))], [])
  t.same([...scanListing(Buffer.from(' [ {"a":1} , {"b":"x\\"}"} ] \n'))], [3, 10, 13, 25])
  const cases: [string, RegExp][] = [
    ['{}', /not a JSON array at byte 0/],
    ['[1]', /non-object element at index 0/],
    ['[{},[]]', /non-object element at index 1/],
    ['[{"a":"x}]', /unterminated string/],
    ['[{"a":"x\u0001"}]', /control character in string/],
    ['[{"a":"\\q"}]', /bad escape/],
    ['[{"a":"\\u12"}]', /bad \\u escape/],
    ['[{"a":01}]', /expected ',' or a closing }/],
    ['[{"a":1.}]', /bad number/],
    ['[{"a":tru}]', /unexpected token/],
    ['[{"a":1}', /unexpected end/],
    ['[{"a":1}] x', /data after the array/],
    ['[{"a" 1}]', /expected ':'/],
    ['[{,}]', /expected a key/],
  ]
  for (const [text, re] of cases) t.throws(() => scanListing(Buffer.from(text)), re, text)
  // Deep nesting inside a record is fine (no recursion), and so is multi-byte UTF-8.
  const deep = `[{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}},{"Name":"Ünïcødé \u{1F600}"}]`
  t.equal(scanListing(Buffer.from(deep)).length, 4)
})

t.test('read through a moving window (as past 512 MiB): the same offsets and the same errors', async (t) => {
  let compared = 0
  const inputs = fc.oneof(
    spaced,
    fc
      .tuple(spaced, fc.nat(), fc.constantFrom('', '"', '\\', ',', ']', '}', '{', 'x', ' '))
      .map(([text, at, insert]) => {
        const p = text.length === 0 ? 0 : at % text.length
        return text.slice(0, p) + insert + text.slice(p + 1)
      }),
  )
  const outcome = (raw: Buffer, windowBytes?: number): string => {
    try {
      return [...scanListing(raw, windowBytes)].join(',')
    } catch (err) {
      if (!(err instanceof ListingScanError)) throw err
      return `error: ${err.message}`
    }
  }
  fc.assert(
    fc.property(inputs, fc.constantFrom(2, 5, 16, 64), (text, windowBytes) => {
      const raw = Buffer.from(text, 'utf8')
      compared++
      return outcome(raw, windowBytes) === outcome(raw)
    }),
    { numRuns: 2000 },
  )
  // Whitespace that runs past a window's end between two records, and a record longer than a window.
  const wide = Buffer.from(`[{"a":1}${' '.repeat(40)},{"b":"${'x'.repeat(100)}"}   ]`)
  t.equal(outcome(wide, 16), outcome(wide))
  t.equal(outcome(Buffer.from('[{"a":1}, 7]'), 4), 'error: non-object element at index 1')
  t.match(outcome(Buffer.from(`[{"a":1},${' '.repeat(30)}{"a":x}]`), 8), /unexpected token at byte 44/)
  t.ok(compared >= 2000)
})
