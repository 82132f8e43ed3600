/**
 * Sync input (src/sync/input.ts) and Trisul's times (src/shared/trisul-time.ts):
 * JSON records one at a time, CSV rows in Trisul's import layout with their
 * mappings, header and BOM recognised, bad rows reported with their line.
 */
import t from 'tap'
import { formatTrisulTime, isTimeZone, parseTrisulTime } from '../../src/shared/trisul-time.js'
import { csvInputs, jsonInputs, SyncInputError } from '../../src/sync/input.js'
import type { SyncInput } from '../../src/sync/plan.js'
import { bodyValidators, DEFAULT_VALIDATION } from '../../src/validation/request-schema.js'

const v = bodyValidators(DEFAULT_VALIDATION)
const RULES = {
  customer: v.get('customers:create') as never,
  mapping: v.get('mappings:create') as never,
  timeZone: 'Asia/Kolkata',
}

async function all(gen: AsyncIterable<SyncInput>): Promise<SyncInput[]> {
  const out: SyncInput[] = []
  for await (const x of gen) out.push(x)
  return out
}

t.test('Trisul times in a zone, both ways', async (t) => {
  t.equal(parseTrisulTime('01-01-2026 05:30:00', 'Asia/Kolkata'), Date.UTC(2026, 0, 1) / 1000)
  t.equal(formatTrisulTime(Date.UTC(2026, 0, 1) / 1000, 'Asia/Kolkata'), '01-01-2026 05:30:00')
  t.equal(
    parseTrisulTime('01-07-2026 12:00:00', 'Europe/Berlin'),
    Date.UTC(2026, 6, 1, 10) / 1000,
    'summer time',
  )
  t.equal(
    parseTrisulTime('01-01-2026 12:00:00', 'Europe/Berlin'),
    Date.UTC(2026, 0, 1, 11) / 1000,
    'winter time',
  )
  for (const bad of ['31-02-2026 00:00:00', '2026-01-01 00:00:00', '01-01-2026 24:00:00', '01-01-2026', ''])
    t.equal(parseTrisulTime(bad, 'Asia/Kolkata'), null, `${JSON.stringify(bad)} refused`)
  t.equal(isTimeZone('Asia/Kolkata'), true)
  t.equal(isTimeZone('Mars/Olympus'), false)
})

t.test('JSON: one record at a time, id ignored, errors per record', async (t) => {
  const body = Buffer.from(JSON.stringify([{ id: 1, UserID: 'A1', Name: 'Ann' }, { UserID: 'A2' }]))
  const out = [...jsonInputs(body, RULES)]
  t.same(out, [
    { kind: 'customer', UserID: 'A1', fields: { Name: 'Ann' }, source: 'record 1' },
    { kind: 'invalid', UserID: 'A2', source: 'record 2', message: 'Missing field: Name' },
  ])
  t.throws(() => [...jsonInputs(Buffer.from('{"a":1}'), RULES)], SyncInputError)
})

t.test('CSV: header and BOM recognised, quoted subnets, times, bad rows by line', async (t) => {
  const csv = [
    '\ufeffIP/subnet(s),Name,Address,Email,Phone,Alt Phone,Customer ID,Valid From,Valid To,Terminal ID',
    '"10.0.0.0/24, 10.0.1.1",Ann,"Flat 2, MG Road",ann@example.in,98450,,A1,01-01-2026 05:30:00,02-01-2026 05:30:00,T1',
    ',Bob,,,,,B1,,,',
    '10.0.0.9,Cy,,,,,C1,32-01-2026 00:00:00,,',
    '10.0.0.9,Dee,,,,,D1,,01-01-1970 05:30:00,',
    'nonsense,Eve,,,,,E1,,,',
    'too,few,columns',
    '10.0.0.10,Fay,,not-an-email,,,F1,,,',
  ].join('\r\n')
  const out = await all(csvInputs(Buffer.from(csv), RULES))
  t.same(out[0], {
    kind: 'customer',
    UserID: 'A1',
    fields: {
      Name: 'Ann',
      Address: 'Flat 2, MG Road',
      Email: 'ann@example.in',
      PhoneNumber: '98450',
      AltPhoneNumber: '',
    },
    source: 'line 2',
    mappings: [
      {
        ipsubnet: '10.0.0.0/24',
        starttime: Date.UTC(2026, 0, 1) / 1000,
        endtime: Date.UTC(2026, 0, 2) / 1000,
        terminalid: 'T1',
      },
      {
        ipsubnet: '10.0.1.1',
        starttime: Date.UTC(2026, 0, 1) / 1000,
        endtime: Date.UTC(2026, 0, 2) / 1000,
        terminalid: 'T1',
      },
    ],
  })
  t.match(out[1], { kind: 'customer', UserID: 'B1', mappings: [] }, 'no IP: no mappings wanted')
  t.match(out[2], { kind: 'invalid', UserID: 'C1', source: 'line 4', message: /Valid From/ })
  t.match(out[3], { kind: 'invalid', UserID: 'D1', message: /after Valid From/ })
  t.match(out[4], { kind: 'invalid', UserID: 'E1', message: /nonsense: ipsubnet is not valid/ })
  t.match(out[5], { kind: 'invalid', source: 'line 7', message: /3 columns where 10 were expected/ })
  t.match(out[6], { kind: 'invalid', UserID: 'F1', message: /Email is not valid/ })
  t.equal(out.length, 7)
  await t.rejects(all(csvInputs(Buffer.from('a,"b\nc'), RULES)), SyncInputError, 'an unterminated quote')
})
