/** The upstream body (src/upstream/body.ts): the fields in their order, then the credentials, which no field overrides. */
import t from 'tap'
import { RESOURCE_BY_NAME } from '../../src/resources.js'
import { upstreamBody } from '../../src/upstream/body.js'

const auth = { username: 'alice', token: 'tok', context: 'ctx1' }

t.test('fields in order, credentials last and unoverridable; v1 sends no context', async (t) => {
  const fields = { UserID: 'A1', Name: 'N', api_token: 'forged', username: 'mallory' }
  const body = upstreamBody(RESOURCE_BY_NAME.customers, 'v2', auth, fields)
  t.equal(
    JSON.stringify(body),
    '{"UserID":"A1","Name":"N","api_token":"tok","username":"alice","contextname":"ctx1"}',
  )
  t.same(
    fields,
    { UserID: 'A1', Name: 'N', api_token: 'forged', username: 'mallory' },
    'the fields are not changed',
  )
  t.same(upstreamBody(RESOURCE_BY_NAME.customers, 'v1', auth, { UserID: 'A1' }), {
    UserID: 'A1',
    api_token: 'tok',
    username: 'alice',
  })
})

t.test('a field named __proto__ stays data: the prototype is never set from a body', async (t) => {
  const fields = JSON.parse('{"UserID":"A1","__proto__":{"polluted":true}}') as Record<string, unknown>
  const body = upstreamBody(RESOURCE_BY_NAME.customers, 'v2', auth, fields)
  t.equal(Object.getPrototypeOf(body), Object.prototype)
  t.equal((body as { polluted?: boolean }).polluted, undefined)
  t.match(JSON.stringify(body), /"__proto__":\{"polluted":true\}/)
})
