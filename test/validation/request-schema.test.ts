import t from 'tap'
import { RESOURCE_BY_NAME } from '../../src/resources.js'
import {
  bodySchema,
  bodyValidators,
  DEFAULT_VALIDATION,
  describeSchemaError,
  timeOrderProblem,
  userIdProblem,
} from '../../src/validation/request-schema.js'

const v = bodyValidators(DEFAULT_VALIDATION)
const check = (key: string, body: unknown) => {
  const fn = v.get(key)!
  return fn(body) ? 'ok' : describeSchemaError(fn.errors)
}

t.test('customers', async (t) => {
  t.equal(check('customers:create', { UserID: 'U1', Name: 'A' }), 'ok')
  t.equal(check('customers:create', { Name: 'A' }), 'Missing field: UserID')
  t.equal(check('customers:create', { UserID: 'U1', Name: 'A', Extra: 1 }), 'Unknown field: Extra')
  t.equal(check('customers:create', { UserID: 'U1', Name: 5 }), 'Name must be string')
  t.equal(check('customers:create', { UserID: 'U1', Name: 'x'.repeat(257) }), 'Name is too long')
  t.equal(check('customers:create', { UserID: 'U 1', Name: 'A' }), 'UserID is not valid')
  t.equal(check('customers:create', { UserID: 'U1', Name: 'A', Email: 'nope' }), 'Email is not valid')
  t.equal(check('customers:create', { UserID: 'U1', Name: 'A', Email: '' }), 'ok')
  t.equal(
    check('customers:create', { UserID: 'U1', Name: 'A', PhoneNumber: 'abc' }),
    'PhoneNumber is not valid',
  )
  t.equal(check('customers:create', { UserID: 'U1', Name: 'A', PhoneNumber: '+91 98450 12345' }), 'ok')
  t.equal(check('customers:create', []), 'The body must be a JSON object')
  t.equal(check('customers:replace', { UserID: 'U1', Name: 'A' }), 'Missing field: Address')
  const full = {
    UserID: 'U1',
    Name: 'A',
    Address: 'x',
    Email: 'a@b.in',
    PhoneNumber: '9845012345',
    AltPhoneNumber: '',
  }
  t.equal(check('customers:replace', full), 'ok')
  t.equal(check('customers:update', {}), 'The body must change at least one field')
  t.equal(check('customers:update', { Address: 'y' }), 'ok')
  t.equal(check('customers:delete', {}), 'ok')
  t.equal(check('customers:delete', { Name: 'x' }), 'Unknown field: Name')
})

t.test('mappings', async (t) => {
  t.equal(check('mappings:create', { UserID: 'U1', ipsubnet: '10.0.0.0/24', starttime: '0' }), 'ok')
  t.equal(
    check('mappings:create', { UserID: 'U1', ipsubnet: '2001:db8::/32', starttime: 5, endtime: null }),
    'ok',
  )
  t.equal(
    check('mappings:create', { UserID: 'U1', ipsubnet: '10.0.0.300', starttime: '0' }),
    'ipsubnet is not valid',
  )
  t.equal(
    check('mappings:create', { UserID: 'U1', ipsubnet: '10.0.0.1', starttime: '-1' }),
    'starttime is not valid',
  )
  t.equal(
    check('mappings:create', { UserID: 'U1', ipsubnet: '10.0.0.1', starttime: 1.5 }),
    'starttime is not valid',
  )
  t.equal(check('mappings:update', { ipsubnet: '10.0.0.1' }), 'The body must change at least one field')
  t.equal(check('mappings:update', { ipsubnet: '10.0.0.1', terminalid: 'T' }), 'ok')
  t.equal(check('mappings:delete', {}), 'Missing field: ipsubnet')
  t.equal(check('mappings:delete', { ipsubnet: '10.0.0.1' }), 'ok')
  t.equal(timeOrderProblem({ starttime: '10', endtime: '5' }), 'endtime must be after starttime')
  t.equal(timeOrderProblem({ starttime: '10', endtime: '10' }), 'endtime must be after starttime')
  t.equal(timeOrderProblem({ starttime: '10', endtime: 11 }), null)
  t.equal(timeOrderProblem({ starttime: '10', endtime: null }), null)
})

t.test('policy rules feed the schema', async (t) => {
  const rules = { ...DEFAULT_VALIDATION, maxFieldLength: 4, email: false, phonePattern: '^[0-9]{10}$' }
  const fn = bodyValidators(rules).get('customers:create')!
  t.notOk(fn({ UserID: 'U1', Name: 'Abcde' }))
  t.ok(fn({ UserID: 'U1', Name: 'Ab', Email: 'nope' }))
  t.notOk(fn({ UserID: 'U1', Name: 'Ab', PhoneNumber: '12345' }))
  t.same(bodySchema(RESOURCE_BY_NAME.customers, 'create', rules).required, ['UserID', 'Name'])
  t.equal(bodyValidators(rules), bodyValidators(rules), 'compiled once per rules object')
})

t.test('UserID path rules', async (t) => {
  const re = new RegExp(DEFAULT_VALIDATION.userIdPattern, 'u')
  t.equal(userIdProblem('B68t19', '/api/ipdrcustomers/B68t19', re), null)
  t.ok(userIdProblem('..', '/api/ipdrcustomers/%2e%2e', re))
  t.ok(userIdProblem('.', '/api/ipdrcustomers/.', re))
  t.ok(userIdProblem('a/b', '/api/ipdrcustomers/a%2Fb', re))
  t.ok(userIdProblem('a\\b', '/api/ipdrcustomers/a%5Cb', re))
  t.ok(userIdProblem('a\r\nb', '/api/ipdrcustomers/a%0D%0Ab', re))
  t.ok(userIdProblem('a\u0000', '/api/ipdrcustomers/a%00', re))
  t.ok(userIdProblem('x'.repeat(65), `/api/ipdrcustomers/${'x'.repeat(65)}`, re))
  t.ok(userIdProblem('a b', '/api/ipdrcustomers/a%20b', re))
})
