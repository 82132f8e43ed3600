import { readFileSync } from 'node:fs'
import t from 'tap'
import { ERRORS, errorBody, GatewayError } from '../src/errors.js'

t.test('every error code is documented with its status', async (t) => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
  for (const [code, def] of Object.entries(ERRORS)) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${code}\` |`))
    t.ok(row, `${code} is in docs/errors.md`)
    t.match(row ?? '', new RegExp(`\\| ${def.status} \\|`), `${code} documented as ${def.status}`)
  }
})

t.test('error bodies', async (t) => {
  t.same(errorBody('IPDR_GW_NOT_FOUND'), {
    statusCode: 404,
    error: 'Not Found',
    code: 'IPDR_GW_NOT_FOUND',
    message: 'Not found',
  })
  const e = new GatewayError('IPDR_GW_CIRCUIT_OPEN', undefined, {
    headers: { 'retry-after': '3' },
    cause: new Error('x'),
  })
  t.equal(e.statusCode, 503)
  t.same(e.headers, { 'retry-after': '3' })
  t.same(e.toBody(), {
    statusCode: 503,
    error: 'Service Unavailable',
    code: 'IPDR_GW_CIRCUIT_OPEN',
    message: e.message,
  })
  t.notMatch(JSON.stringify(e.toBody()), /cause|stack/)
})
