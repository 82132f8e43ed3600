// The emulator's flags (shared/SPEC.md section 7) and the validation of its options, as pure functions.
import t from 'tap'
import { EMULATOR_HELP, parseEmulatorArgs } from '../../src/emulator/index.js'
import { type EmulatorOptions, resolveEmulatorOptions } from '../../src/emulator/options.js'

t.test('defaults', async (t) => {
  t.strictSame(parseEmulatorArgs([]), {
    port: 3000,
    host: '127.0.0.1',
    db: './data/emulator.sqlite',
    dialect: 'v2',
    users: [],
    seed: 0,
  })
})

t.test('every flag', async (t) => {
  const opts = parseEmulatorArgs([
    '--port',
    '0',
    '--host',
    '0.0.0.0',
    '--db',
    ':memory:',
    '--dialect',
    'v1',
    '--user',
    'demo:demotoken',
    '--user',
    'crm:crmtoken:ipdr,default',
    '--contexts',
    'default,ipdr',
    '--seed',
    '1000',
  ])
  t.strictSame(opts, {
    port: 0,
    host: '0.0.0.0',
    db: ':memory:',
    dialect: 'v1',
    users: [
      { name: 'demo', token: 'demotoken', contexts: null },
      { name: 'crm', token: 'crmtoken', contexts: ['ipdr', 'default'] },
    ],
    contexts: ['default', 'ipdr'],
    seed: 1000,
  })
  t.equal(parseEmulatorArgs(['--port=8081']).port, 8081)
})

t.test('bad flags throw errors that name the flag', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--port', 'abc'], /--port "abc": expected an integer 0-65535/],
    [['--port', '70000'], /--port "70000"/],
    [['--port', '-1'], /--port/],
    [['--dialect', 'v3'], /--dialect "v3": expected v1 or v2/],
    [['--user', 'nocolon'], /--user "nocolon": expected NAME:TOKEN/],
    [['--user', 'a:b:c:d'], /--user "a:b:c:d"/],
    [['--user', ':tok'], /the user name is empty/],
    [['--user', 'a:'], /the token is empty/],
    [['--user', 'a:tok:'], /empty context name/],
    [['--user', 'a:tok:x,,y'], /empty context name/],
    [['--contexts', 'a,,b'], /--contexts "a,,b": empty name/],
    [['--seed', 'many'], /--seed "many"/],
    [['--seed', '99999999'], /--seed "99999999": expected an integer 0-10000000/],
    [['--host', ''], /--host: must not be empty/],
    [['--db', ''], /--db: must not be empty/],
    [['--verbose'], /^Unknown option '--verbose'/],
    [['extra'], /^Unexpected argument 'extra'/],
    [['--port'], /^Option '--port <value>' argument missing/],
    [['--user', 'a:t:bad ctx'], /^users\[0\]\.contexts\[0\]: context name "bad ctx"/],
    [
      ['--user', 'a:t:x', '--contexts', 'default'],
      /^users: context "x" is named by a user but not listed in contexts/,
    ],
    [['--contexts', 'ipdr', '--seed', '5'], /^seed: seeded customers go into the context "default"/],
    [['--user', 'a:t', '--user', 'a:u'], /user "a" is given twice/],
  ]
  for (const [argv, message] of cases) t.throws(() => parseEmulatorArgs(argv), { message }, argv.join(' '))
})

t.test('resolved options', async (t) => {
  const base: EmulatorOptions = {
    db: ':memory:',
    dialect: 'v2',
    users: [{ name: 'u', token: 't', contexts: ['x'] }],
  }
  let r = resolveEmulatorOptions(base)
  t.same([...r.contexts], ['default', 'x'], 'default plus every context a user names')
  t.equal(r.bodyLimit, 1024 * 1024)
  t.equal(r.seed, 0)
  t.equal(r.logger, false)
  t.ok(Object.isFrozen(r))
  t.notOk(JSON.stringify([...r.users.values()]).includes('"t"'), 'the token is kept only as a digest')
  r = resolveEmulatorOptions({ ...base, dialect: 'v1', contexts: ['a', 'b'] })
  t.same([...r.contexts], ['default'], 'v1 has the one context default')

  const bad: [Partial<EmulatorOptions> | null, RegExp][] = [
    [null, /options must be an object/],
    [{ db: '' }, /db:/],
    [{ dialect: 'v3' as 'v1' }, /dialect:/],
    [{ users: 'u' as unknown as [] }, /users: must be an array/],
    [{ users: [null as unknown as EmulatorOptions['users'][0]] }, /users\[0\]: must be an object/],
    [{ users: [{ name: 'a:b', token: 't', contexts: null }] }, /users\[0\]\.name/],
    [{ users: [{ name: 'a', token: '', contexts: null }] }, /users\[0\]\.token/],
    [{ users: [{ name: 'a', token: 't', contexts: [] }] }, /users\[0\]\.contexts: a non-empty array/],
    [{ contexts: [] }, /contexts: a non-empty array/],
    [{ contexts: ['ok', 'not ok'] }, /contexts\[1\]: context name "not ok"/],
    [{ seed: -1 }, /seed: an integer/],
    [{ seed: 1.5 }, /seed: an integer/],
    [{ bodyLimit: 10 }, /bodyLimit: an integer 64-/],
    [{ logger: 'yes' as unknown as boolean }, /logger:/],
  ]
  for (const [patch, message] of bad) {
    const opts = patch === null ? null : { ...base, users: [], ...patch }
    t.throws(() => resolveEmulatorOptions(opts as EmulatorOptions), { message }, String(message))
  }
})

t.test('the help text names every flag', async (t) => {
  for (const flag of ['--port', '--host', '--db', '--dialect', '--user', '--contexts', '--seed', '--help']) {
    t.match(EMULATOR_HELP, flag)
  }
})
