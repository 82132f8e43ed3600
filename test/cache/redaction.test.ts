import t from 'tap'
import { normalizeFieldList, REDACTED_VALUE, redactRecord } from '../../src/cache/redaction.js'

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
