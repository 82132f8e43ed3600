// Pure value checks: durations, regular expressions, problem paths.
import t from 'tap'
import { applyDefaults } from '../../src/policy/apply-defaults.js'
import { DURATION_PATTERN, parseDuration } from '../../src/policy/duration.js'
import { checkPattern } from '../../src/policy/pattern-check.js'
import { formatPath, formatSchemaErrors } from '../../src/policy/schema-errors.js'

t.test('parseDuration', async (t) => {
  const ok: Array<[unknown, number]> = [
    [1, 1],
    [60000, 60000],
    ['60000', 60000],
    ['500 ms', 500],
    ['500ms', 500],
    ['1 millisecond', 1],
    ['30 seconds', 30_000],
    ['1 second', 1000],
    ['5s', 5000],
    ['10 secs', 10_000],
    ['1 minute', 60_000],
    ['2 minutes', 120_000],
    ['15 min', 900_000],
    ['1m', 60_000],
    ['1.5 minutes', 90_000],
    ['2 hours', 7_200_000],
    ['1 hour', 3_600_000],
    ['1h', 3_600_000],
    ['1 day', 86_400_000],
    ['30 days', 30 * 86_400_000],
  ]
  const re = new RegExp(DURATION_PATTERN, 'u')
  for (const [input, ms] of ok) {
    t.same(parseDuration(input), { ok: true, ms }, JSON.stringify(input))
    if (typeof input === 'string') t.ok(re.test(input), `the schema pattern accepts ${input}`)
  }
  const bad: unknown[] = [
    0,
    -5,
    1.5,
    '',
    '1 fortnight',
    '1 Minute',
    'minute',
    '1.5',
    ' 1 minute',
    '1  minute',
    '31 days',
    '0 seconds',
    null,
    true,
    {},
  ]
  for (const input of bad) {
    const r = parseDuration(input)
    t.equal(r.ok, false, `${JSON.stringify(input)} is refused`)
  }
  for (const input of ['1 fortnight', '1 Minute', '1.5', ' 1 minute']) {
    t.notOk(re.test(input), `the schema pattern refuses ${input}`)
  }
})

t.test('checkPattern', async (t) => {
  const fine = [
    '^[A-Za-z0-9._@:+-]{1,64}$',
    '^[0-9+() -]{4,20}$',
    '^(?:[a-z]{2}|[0-9]{3})$',
    '^[a-z]+(?:-[0-9])?$',
    '^(?:ab)+$',
    '^(a|b)*$',
    '^[(+*]+$',
    '^\\(a+\\)+$',
    '^(?:a?){3}$',
    '^\\$[0-9]+$',
  ]
  for (const p of fine) t.same(checkPattern(p), [], p)
  const nested = 'nested quantifiers (a repeated group that repeats inside) can backtrack catastrophically'
  const unanchored = 'must be anchored: start with ^ and end with $'
  const cases: Array<[string, string[]]> = [
    ['^(a+)+$', [nested]],
    ['^(?:[a-z]*)*$', [nested]],
    ['^(a{1,3}){2,}$', [nested]],
    ['^((ab)+c)+$', [nested]],
    ['^(?:x(?:a+))*$', [nested]],
    ['[a-z]+', [unanchored]],
    ['^[a-z]+', [unanchored]],
    ['[a-z]+$', [unanchored]],
    ['^[a-z]+\\$', [unanchored]],
    ['^a|b$', ['a top-level | escapes the anchors: wrap the alternatives, as in ^(?:a|b)$']],
  ]
  for (const [p, problems] of cases) t.same(checkPattern(p), problems, p)
  t.match(checkPattern('^(a$'), [/^does not compile: /])
  t.match(checkPattern('^\\p{Nope}$'), [/^does not compile: /], 'compiled with the u flag, as ajv does')
})

t.test('formatPath', async (t) => {
  t.equal(formatPath([]), '(root)')
  t.equal(formatPath(['upstream', 'circuit', 'failures']), 'upstream.circuit.failures')
  t.equal(formatPath(['allowIPs', 2]), 'allowIPs[2]')
  t.equal(formatPath(['weird key', 'x']), '["weird key"].x')
  t.equal(formatPath([0]), '[0]')
})

t.test('formatSchemaErrors falls back to ajv messages', async (t) => {
  t.same(formatSchemaErrors(null), [])
  t.same(
    formatSchemaErrors([
      {
        keyword: 'maxItems',
        instancePath: '/a/0/x~1b~0',
        schemaPath: '#',
        params: {},
        message: 'must NOT have more than 2 items',
      },
      { keyword: 'pattern', instancePath: '/x', schemaPath: '#', params: { pattern: '^z$' }, message: 'm' },
      {
        keyword: 'additionalProperties',
        instancePath: '',
        schemaPath: '#',
        params: { additionalProperty: 'q' },
      },
      { keyword: 'not', instancePath: '', schemaPath: '#', params: {} },
    ]),
    [
      { path: 'a[0]["x/b~"]', message: 'must not have more than 2 items' },
      { path: 'x', message: 'must match the pattern ^z$' },
      { path: 'q', message: 'unknown key' },
      { path: '(root)', message: 'is invalid' },
    ],
  )
})

t.test('applyDefaults leaves non-objects and undeclared keys alone', async (t) => {
  const schema = { properties: { a: { default: 1 }, b: { properties: { c: { default: 2 } } }, d: true } }
  t.same(applyDefaults(schema, { b: {}, z: 9 }), { a: 1, b: { c: 2 }, z: 9 })
  t.equal(applyDefaults(schema, 'text'), 'text')
  t.same(applyDefaults({}, { x: 1 }), { x: 1 })
  const input = { b: { c: 5 } }
  applyDefaults(schema, input)
  t.same(input, { b: { c: 5 } }, 'the input is not modified')
})
