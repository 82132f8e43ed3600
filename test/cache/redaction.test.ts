import t from 'tap'
import { strongEtag } from '../../src/cache/etag.js'
import { scanListing } from '../../src/cache/listing-scan.js'
import {
  normalizeFieldList,
  REDACTED_VALUE,
  redactedListingSteps,
  redactRecord,
} from '../../src/cache/redaction.js'

t.test('redactRecord replaces present fields and never mutates', async (t) => {
  const record = { UserID: 'U1', PhoneNumber: '+91 1', AltPhoneNumber: '', Email: null }
  const out = redactRecord(record, ['PhoneNumber', 'AltPhoneNumber', 'Email', 'Missing'])
  t.same(out, { UserID: 'U1', PhoneNumber: REDACTED_VALUE, AltPhoneNumber: '***', Email: '***' })
  t.notOk(Object.hasOwn(out, 'Missing'), 'absent fields stay absent')
  t.same(record, { UserID: 'U1', PhoneNumber: '+91 1', AltPhoneNumber: '', Email: null }, 'input untouched')
  t.equal(redactRecord(record, []), record, 'no fields: the same object')
})

t.test('redactRecord passes non-records through and handles __proto__', async (t) => {
  t.equal(redactRecord(null, ['a']), null)
  t.equal(redactRecord('x', ['a']), 'x')
  const arr = [1]
  t.equal(redactRecord(arr, ['0']), arr)
  const tricky = JSON.parse('{"__proto__": "secret", "a": 1}') as Record<string, unknown>
  const out = redactRecord(tricky, ['__proto__'])
  t.equal(JSON.stringify(out), '{"__proto__":"***","a":1}')
  t.equal(Object.getPrototypeOf(out), Object.prototype)
})

t.test('normalizeFieldList sorts and dedupes', async (t) => {
  t.same(normalizeFieldList(['b', 'a', 'b']), ['a', 'b'])
})

/** The listing with `fields` redacted as one whole-body parse and stringify gives it, and the steps taken. */
function bothWays(text: string, fields: string[]) {
  const raw = Buffer.from(text)
  const whole = Buffer.from(
    JSON.stringify((JSON.parse(text) as unknown[]).map((r) => redactRecord(r, fields))),
  )
  const steps = redactedListingSteps(raw, scanListing(raw), fields)
  let cuts = 0
  for (;;) {
    const next = steps.next()
    if (next.done) return { whole, made: next.value, cuts }
    cuts++
  }
}

t.test('a listing redacted record by record is the whole-body result, byte for byte', async (t) => {
  const cases = [
    '[]',
    '[{"UserID":"U1","PhoneNumber":"1"}]',
    // Whitespace, escapes, multi-byte text, numbers JSON.stringify writes differently, __proto__.
    String.raw` [ {"UserID" : "U\u0031", "Name":"N\u00e4me \"q\" 名前 \ud83d\ude00 \/", "PhoneNumber":null},
	{"__proto__":"x","PhoneNumber":"2","n":1e21,"m":1.50,"o":-0} ] `,
    JSON.stringify(
      Array.from({ length: 3000 }, (_, i) => ({
        UserID: `U${i}`,
        Name: 'Ä'.repeat(400),
        PhoneNumber: `${i}`,
      })),
    ),
  ]
  for (const text of cases) {
    const { whole, made } = bothWays(text, ['PhoneNumber', '__proto__'])
    t.ok(made.body.equals(whole), `${text.slice(0, 40)}…: the same bytes`)
    t.equal(made.etag, strongEtag(whole), 'the strong ETag of those bytes')
  }
  const big = bothWays(cases[3] as string, ['PhoneNumber'])
  t.ok(big.whole.length > 2 * 1024 * 1024, 'the large case spans several pieces')
  t.ok(big.cuts >= 3000 / 256, `the work can be cut every few hundred records (${big.cuts} points)`)
})
