/**
 * What a write's answer becomes as a change (src/cache/write-change.ts): only a record the gateway can
 * read with certainty, never one carrying credentials, and the same thing after a trip through an
 * announcement.
 */
import t from 'tap'
import {
  changeOfWrite,
  decodeChange,
  encodeChange,
  MAX_CHANGE_BYTES,
  writeKeys,
} from '../../src/cache/write-change.js'

const customer = {
  id: 7,
  Name: 'A',
  Address: '',
  Email: '',
  PhoneNumber: '',
  AltPhoneNumber: '',
  UserID: 'U7',
}
const mapping = {
  id: 3,
  ipdr_customer_id: 7,
  ipsubnet: '10.0.0.1',
  starttime: 0,
  endtime: null,
  terminalid: '',
}

t.test('answers become changes; what cannot be read with certainty does not', async (t) => {
  const base = { resource: 'customers' as const, operation: 'update' as const, pathUserId: 'U7', fields: {} }
  t.match(changeOfWrite({ ...base, answer: customer }), { op: 'upsert', id: 7, userId: 'U7' })
  t.match(changeOfWrite({ ...base, operation: 'delete', answer: customer }), {
    op: 'remove',
    id: 7,
    record: null,
  })
  t.equal(changeOfWrite({ ...base, answer: { ...customer, id: '7' } }), null, 'a string id')
  t.equal(changeOfWrite({ ...base, answer: { ...customer, id: -1 } }), null)
  t.equal(changeOfWrite({ ...base, answer: { ...customer, UserID: 7 } }), null)
  t.equal(
    changeOfWrite({ ...base, answer: { ...customer, api_token: 'secret' } }),
    null,
    'an echoed token never travels',
  )
  t.equal(changeOfWrite({ ...base, answer: { ...customer, username: 'alice' } }), null)
  const m = {
    resource: 'mappings' as const,
    operation: 'create' as const,
    pathUserId: null,
    fields: { UserID: 'U7' },
  }
  t.match(changeOfWrite({ ...m, answer: mapping }), {
    resource: 'mappings',
    op: 'upsert',
    id: 3,
    userId: 'U7',
  })
  t.equal(changeOfWrite({ ...m, fields: {}, answer: mapping }), null, 'no UserID to name the customer by')
  t.equal(changeOfWrite({ ...m, answer: { ...mapping, ipdr_customer_id: 'x' } }), null)
})

t.test('a change survives its announcement; anything else read back is no change', async (t) => {
  const change = changeOfWrite({
    resource: 'customers',
    operation: 'create',
    pathUserId: null,
    fields: {},
    answer: customer,
  })
  t.same(decodeChange(encodeChange(change!)!), change)
  for (const bad of [
    '',
    'null',
    '[]',
    '{"resource":"x"}',
    '{"resource":"customers","op":"upsert","id":1,"record":null,"userId":"U"}',
    '{"resource":"mappings","op":"remove","id":1,"record":null,"userId":null}',
  ]) {
    t.equal(decodeChange(bad), null, bad)
  }
  const huge = { ...customer, Address: 'x'.repeat(MAX_CHANGE_BYTES) }
  t.equal(encodeChange({ resource: 'customers', op: 'upsert', id: 7, record: huge, userId: 'U7' }), null)
})

t.test('the customers a write touches', async (t) => {
  t.same(writeKeys('U1', {}), ['U1'])
  t.same(writeKeys(null, { UserID: 'U2' }), ['U2'])
  t.same(writeKeys('U1', { UserID: 'U1' }), ['U1'])
  t.same(writeKeys('U1', { UserID: 'U2' }), ['U1', 'U2'])
})
