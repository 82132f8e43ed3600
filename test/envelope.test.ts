import t from 'tap'
import { asEnvelope, classifyEnvelope } from '../src/envelope.js'
import { ERRORS } from '../src/errors.js'

// The table of shared/SPEC.md 3.3, with the documented Trisul messages.
const rows: [string, number][] = [
  ['Invalid API token', 401],
  ['The user (user) is not allowed to access the context ipdr', 403],
  ['Invalid Context name - ipdrr', 400],
  ['IPDR Customer not found', 404],
  ['Duplicate Mapping for UserID : U1001', 409],
  ['Duplicate UserID : X', 409],
  ['Customer already exists', 409],
  ['Missing field : Name', 422],
  ['', 422],
  // First match wins: a token message that also says "not found".
  ['INVALID API TOKEN not found', 401],
]
for (const [message, status] of rows) {
  t.test(`"${message}" → ${status}`, async (t) => {
    const env = asEnvelope({ status: 'Error', message })
    t.ok(env)
    t.equal(ERRORS[classifyEnvelope(env!)].status, status)
  })
}

t.test('what counts as an envelope', async (t) => {
  t.ok(asEnvelope({ status: 'ERROR', message: 'x' }))
  t.ok(asEnvelope({ status: 'error' }))
  t.equal(asEnvelope({ status: 'error' })?.message, '')
  t.equal(asEnvelope({ status: 'ok', message: 'x' }), null)
  t.equal(asEnvelope({ status: 1 }), null)
  t.equal(asEnvelope([{ status: 'error' }]), null)
  t.equal(asEnvelope(null), null)
  t.equal(asEnvelope('error'), null)
  t.equal(asEnvelope({ id: 1, Name: 'x' }), null)
})
