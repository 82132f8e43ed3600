// `ipdr-gateway check-policies`: exit codes and output.
import Ajv2020 from 'ajv/dist/2020.js'
import t from 'tap'
import { runCheckPolicies } from '../../src/policy/check-command.js'
import { policyJsonSchema } from '../../src/policy/schema.js'
import { runCommand } from '../helpers/command-io.js'
import { CRM_YAML, DEFAULT_YAML, ENV, policyDir } from './fixtures.js'

const run = (argv: string[], env: Record<string, string> = ENV) => runCommand(runCheckPolicies, argv, env)

t.test('a valid directory: 0 and a summary', async (t) => {
  const dir = policyDir(t, { 'consumers/crm.yaml': CRM_YAML, 'consumers/default.yaml': DEFAULT_YAML })
  const r = await run([dir])
  t.equal(r.code, 0)
  t.match(r.stdout, /^policy OK: 2 consumers \(version [0-9a-f]{12}\)\n$/)
  t.equal(r.stderr, '')
  const one = await run(['check-policies', new URL('../../policies', import.meta.url).pathname], {})
  t.equal(one.code, 0, 'the shipped policy passes, the leading command word is tolerated')
  t.match(one.stdout, /^policy OK: 2 consumers \(/)
})

t.test('an invalid directory: 1 and every problem on its own line', async (t) => {
  const dir = policyDir(t, {
    'gateway.yaml': 'cache: { ttlSeconds: x }\n',
    'consumers/crm.yaml': CRM_YAML,
  })
  const r = await run([dir], {})
  t.equal(r.code, 1)
  t.equal(r.stdout, '')
  t.same(r.stderr.trimEnd().split('\n'), [
    `${dir}/gateway.yaml: cache.ttlSeconds: must be an integer`,
    `${dir}/consumers/crm.yaml: upstream.tokenEnv: environment variable CRM_TOKEN is not set (or is empty)`,
    'policy invalid: 2 problems',
  ])
  t.notMatch(r.stderr, /fake-crm-token/, 'no credential is printed')
  const single = await run([dir], { CRM_TOKEN: 'x' })
  t.match(single.stderr, /\npolicy invalid: 1 problem\n$/)
})

t.test('a missing directory: 1', async (t) => {
  const r = await run(['/nonexistent/policies'])
  t.equal(r.code, 1)
  t.match(r.stderr, /^\/nonexistent\/policies: \(directory\): cannot read the policy directory \(ENOENT\)\n/)
})

t.test('bad usage: 2 with the usage text', async (t) => {
  for (const argv of [[], ['a', 'b'], ['--frob'], ['--schema', 'x'], ['']]) {
    const r = await run(argv)
    t.equal(r.code, 2, JSON.stringify(argv))
    t.match(r.stderr, /^check-policies: .*\n\nUsage: ipdr-gateway check-policies DIR/)
    t.equal(r.stdout, '')
  }
})

t.test('--help', async (t) => {
  const r = await run(['--help'])
  t.equal(r.code, 0)
  t.match(r.stdout, /^Usage: ipdr-gateway check-policies DIR/)
})

t.test('--schema prints the schema as JSON, which ajv compiles', async (t) => {
  const r = await run(['--schema'])
  t.equal(r.code, 0)
  const schema = JSON.parse(r.stdout) as Record<string, unknown>
  t.same(schema, policyJsonSchema())
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema')
  // Strict ajv (union types are part of the published schema: `integer | string` windows).
  const ajv = new Ajv2020.default({ strict: true, allowUnionTypes: true })
  const validate = ajv.compile(schema)
  t.ok(
    validate({
      gateway: { upstream: { url: 'http://127.0.0.1:3000' }, rateLimit: { max: 5, timeWindow: '1 minute' } },
      consumers: { crm: { usernames: ['crm'], operations: { customers: ['list'] } } },
    }),
    JSON.stringify(validate.errors),
  )
  t.notOk(validate({ consumers: { CRM: {} } }), 'consumer names follow the file-stem grammar')
  t.notOk(validate({ gateway: { nope: 1 } }), 'unknown keys are refused')
})
