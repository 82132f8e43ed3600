// The policy engine: findConsumer() and evaluate(), table-driven.
import t from 'tap'
import { evaluate, findConsumer, type Identity } from '../../src/policy/evaluate.js'
import type { Operation, ResourceName } from '../../src/resources.js'
import { CRM_KEY, CRM_YAML, DEFAULT_YAML, OPS_KEY, OPS_YAML, sha256, validPolicy } from './fixtures.js'

t.test('findConsumer', async (t) => {
  const withDefault = await validPolicy(t, {
    'consumers/crm.yaml': CRM_YAML,
    'consumers/ops.yaml': OPS_YAML,
    'consumers/default.yaml': DEFAULT_YAML,
  })
  const cases: Array<[string, Identity, string | null]> = [
    ['key of crm', { kind: 'key', keyHash: sha256(CRM_KEY) }, 'crm'],
    ['key of ops', { kind: 'key', keyHash: sha256(OPS_KEY) }, 'ops'],
    ['unknown key is not default', { kind: 'key', keyHash: sha256('nope') }, null],
    ['upper-case hash is not a key', { kind: 'key', keyHash: sha256(CRM_KEY).toUpperCase() }, null],
    ['malformed hash', { kind: 'key', keyHash: 'abc' }, null],
    ['the raw key is not its hash', { kind: 'key', keyHash: CRM_KEY }, null],
    ['username of crm', { kind: 'username', username: 'crm' }, 'crm'],
    ['second username of ops', { kind: 'username', username: 'noc' }, 'ops'],
    ['usernames are case-sensitive', { kind: 'username', username: 'CRM' }, 'default'],
    ['unknown username → default', { kind: 'username', username: 'alice' }, 'default'],
  ]
  for (const [name, identity, expected] of cases) {
    t.equal(findConsumer(withDefault, identity)?.name ?? null, expected, name)
  }

  const noDefault = await validPolicy(t, { 'consumers/crm.yaml': CRM_YAML })
  t.equal(
    findConsumer(noDefault, { kind: 'username', username: 'alice' }),
    null,
    'no default consumer → null',
  )
  t.equal(findConsumer(noDefault, { kind: 'username', username: 'crm' })?.name, 'crm')
})

t.test('evaluate', async (t) => {
  const policy = await validPolicy(t, {
    'consumers/crm.yaml': CRM_YAML,
    'consumers/ops.yaml': OPS_YAML,
    'consumers/default.yaml': DEFAULT_YAML,
    'consumers/closed.yaml': 'allowIPs: []\noperations: { customers: [list] }\n',
  })
  const byName = (n: string) => policy.consumers.find((c) => c.name === n) ?? null
  const cases: Array<[string, string | null, ResourceName, Operation, string, string | true]> = [
    ['no consumer', null, 'customers', 'list', '127.0.0.1', 'IPDR_GW_NO_CONSUMER'],
    ['crm lists customers from loopback', 'crm', 'customers', 'list', '127.0.0.1', true],
    ['crm from 10/8', 'crm', 'customers', 'delete', '10.20.30.40', true],
    ['crm from an IPv4-mapped IPv6 address', 'crm', 'customers', 'read', '::ffff:10.1.2.3', true],
    ['crm from its IPv6 range', 'crm', 'mappings', 'list', '2001:db8::1', true],
    ['crm from another address', 'crm', 'customers', 'list', '192.168.1.5', 'IPDR_GW_ADDRESS_FORBIDDEN'],
    [
      'crm from 127.0.0.2 (only /32 allowed)',
      'crm',
      'customers',
      'list',
      '127.0.0.2',
      'IPDR_GW_ADDRESS_FORBIDDEN',
    ],
    ['crm from a garbage address', 'crm', 'customers', 'list', 'not-an-ip', 'IPDR_GW_ADDRESS_FORBIDDEN'],
    [
      'address is checked before the operation',
      'crm',
      'mappings',
      'delete',
      '192.168.1.5',
      'IPDR_GW_ADDRESS_FORBIDDEN',
    ],
    ['crm may not write mappings', 'crm', 'mappings', 'create', '127.0.0.1', 'IPDR_GW_OPERATION_FORBIDDEN'],
    ['ops: no customers at all', 'ops', 'customers', 'list', '203.0.113.9', 'IPDR_GW_OPERATION_FORBIDDEN'],
    ['ops: any address', 'ops', 'mappings', 'update', '203.0.113.9', true],
    ['ops may not delete mappings', 'ops', 'mappings', 'delete', '::1', 'IPDR_GW_OPERATION_FORBIDDEN'],
    ['default reads', 'default', 'customers', 'read', '::1', true],
    ['default may not create', 'default', 'customers', 'create', '::1', 'IPDR_GW_OPERATION_FORBIDDEN'],
    [
      'an empty allowIPs refuses every address',
      'closed',
      'customers',
      'list',
      '127.0.0.1',
      'IPDR_GW_ADDRESS_FORBIDDEN',
    ],
  ]
  for (const [name, consumer, resource, operation, clientIp, expected] of cases) {
    const d = evaluate(policy, {
      consumer: consumer === null ? null : byName(consumer),
      resource,
      operation,
      clientIp,
    })
    if (expected === true) t.same(d, { allow: true }, name)
    else {
      t.equal(d.allow, false, name)
      if (!d.allow) {
        t.equal(d.code, expected, `${name}: ${expected}`)
        t.type(d.message, 'string')
      }
    }
  }
  const denied = evaluate(policy, {
    consumer: byName('crm'),
    resource: 'mappings',
    operation: 'create',
    clientIp: '127.0.0.1',
  })
  t.same(denied, {
    allow: false,
    code: 'IPDR_GW_OPERATION_FORBIDDEN',
    message: 'The policy does not allow create on mappings',
  })
})

t.test('a consumer object from another policy version is still judged by its own allowIPs', async (t) => {
  const a = await validPolicy(t, { 'consumers/crm.yaml': CRM_YAML })
  const b = await validPolicy(t, { 'consumers/other.yaml': '{}' })
  const crm = a.consumers[0]!
  t.same(evaluate(b, { consumer: crm, resource: 'customers', operation: 'list', clientIp: '10.0.0.1' }), {
    allow: true,
  })
  t.equal(
    evaluate(b, { consumer: crm, resource: 'customers', operation: 'list', clientIp: '11.0.0.1' }).allow,
    false,
  )
})
