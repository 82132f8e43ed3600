/**
 * The emulated IPDR Query API (SPEC 12, src/emulator/queries.ts) on a fake
 * clock: the status progression, cancel, the headers selection and its
 * errors, the context rules, and rows from the mapping that held the address.
 */
import t from 'tap'
import { EnvelopeError } from '../../src/emulator/envelopes.js'
import { resolveEmulatorOptions } from '../../src/emulator/options.js'
import { FLOW_COLUMNS, QueryBook } from '../../src/emulator/queries.js'
import { parseSubnet } from '../../src/emulator/request-body.js'
import { EmulatorStore } from '../../src/emulator/store.js'
import type { IpRange } from '../../src/shared/ip-range.js'

const ZONE = 'Asia/Kolkata'

function setup(querySeconds = 3, dialect: 'v1' | 'v2' = 'v2') {
  const opts = resolveEmulatorOptions({
    db: ':memory:',
    dialect,
    users: [
      { name: 'lea', token: 'lt', contexts: null },
      { name: 'narrow', token: 'nt', contexts: ['ipdr'] },
    ],
    ...(dialect === 'v2' ? { contexts: ['default', 'ipdr'] } : {}),
    querySeconds,
    timeZone: ZONE,
  })
  const store = new EmulatorStore(':memory:')
  let now = 1_000_000
  const book = new QueryBook(store, opts, () => now)
  const lea = { api_token: 'lt', username: 'lea' }
  return {
    store,
    book,
    lea,
    advance: (ms: number) => {
      now += ms
    },
    close: () => store.close(),
  }
}

function refusal(fn: () => unknown): {
  message: string
  status: number | null
  extra: Record<string, unknown>
} {
  try {
    fn()
  } catch (err) {
    if (err instanceof EnvelopeError) {
      return { message: err.message, status: err.queryHttpStatus, extra: { ...err.extra } }
    }
    throw err
  }
  throw new Error('expected an envelope')
}

const WINDOW = { from_time: '01-03-2024 00:00:00', to_time: '02-03-2024 00:00:00' }

t.test('NEW → INPROGRESS → COMPLETED over querySeconds; cancel only before completion', async (t) => {
  const s = setup(3)
  t.teardown(s.close)
  const created = s.book.run('create', { ...s.lea, ip: '10.0.0.7', ...WINDOW })
  t.same(created, { status: 'SUCCESS', message: 'Query submitted successfully', query_id: 1 })
  const status = () => s.book.run('status', { ...s.lea, query_id: 1 }).CurrentStatus
  t.equal(status(), 'NEW')
  const early = refusal(() => s.book.run('result', { ...s.lea, query_id: 1 }))
  t.equal(early.message, 'Query is not completed')
  t.equal(early.status, 409)
  t.equal(early.extra.CurrentStatus, 'NEW', 'the envelope carries the status, as Trisul documents')
  s.advance(1500)
  t.equal(status(), 'INPROGRESS')
  s.advance(1500)
  t.equal(status(), 'COMPLETED')
  const late = refusal(() => s.book.run('cancel', { ...s.lea, query_id: 1 }))
  t.equal(late.message, 'Query is not in NEW or INPROGRESS state')
  t.equal(late.status, 409)

  s.book.run('create', { ...s.lea, ip: '10.0.0.8', ...WINDOW })
  const cancelled = s.book.run('cancel', { ...s.lea, query_id: 2 })
  t.same(cancelled, {
    status: 'SUCCESS',
    message: 'Query cancelled successfully',
    ip: '10.0.0.8',
    ...WINDOW,
  })
  s.advance(10_000)
  t.equal(
    s.book.run('status', { ...s.lea, query_id: 2 }).CurrentStatus,
    'CANCELED',
    'cancelled stays cancelled',
  )
  t.same(s.book.run('result', { ...s.lea, query_id: 2 }).rows, [], 'a cancelled query has no rows')
  const list = s.book.run('list', { ...s.lea, count: 1 }).ipdr_controls as {
    id: number
    CurrentStatus: string
  }[]
  t.same(
    list.map((q) => [q.id, q.CurrentStatus]),
    [[2, 'CANCELED']],
    'newest first, count honoured',
  )
})

t.test('rows come from the customer whose mapping held the address in the window', async (t) => {
  const s = setup(0)
  t.teardown(s.close)
  s.store.createCustomer('default', {
    UserID: 'U1',
    Name: 'A',
    Address: '',
    Email: '',
    PhoneNumber: '',
    AltPhoneNumber: '',
  })
  s.store.createCustomer('default', {
    UserID: 'U2',
    Name: 'B',
    Address: '',
    Email: '',
    PhoneNumber: '',
    AltPhoneNumber: '',
  })
  const map = (
    userId: string,
    subnet: string,
    starttime: number,
    endtime: number | null,
    terminalid: string,
  ) =>
    s.store.createMapping('default', userId, {
      ipsubnet: subnet,
      range: parseSubnet(subnet) as IpRange,
      starttime,
      endtime,
      terminalid,
    })
  // U1 held 10.0.0.0/24 until 1 March 2024 12:00 IST; U2 has held 10.0.0.7 since.
  map('U1', '10.0.0.0/24', 1704067200, 1709274600, 'T1')
  map('U2', '10.0.0.7', 1709274600, null, '')
  s.book.run('create', { ...s.lea, ip: '10.0.0.7', ...WINDOW })
  const rows = s.book.run('result', { ...s.lea, query_id: 1 }).rows as Record<string, string>[]
  t.same(new Set(rows.map((r) => r.UserID)), new Set(['U1', 'U2']), 'both holders of the window')
  t.ok(
    rows.every((r) => (r.UserID === 'U1' ? r.SubscriberID === 'T1' : r.SubscriberID === 'U2')),
    'SubscriberID: the terminal id, else the UserID',
  )
  t.ok(
    rows.every((r) =>
      r.UserID === 'U1'
        ? `${r.StartTime}` < '2024-03-01 12:00:00'
        : `${r.StartTime}` >= '2024-03-01 12:00:00',
    ),
    "each row inside its holder's part of the window",
  )
  t.same(Object.keys(rows[0] ?? {}), [...FLOW_COLUMNS])
  t.same(s.book.run('result', { ...s.lea, query_id: 1 }).rows, rows, 'the same rows every time')
  const picked = s.book.run('result', { ...s.lea, query_id: 1, headers: ['UserID', 'SrcIP'] }).rows
  t.same(
    picked,
    rows.map((r) => ({ UserID: r.UserID, SrcIP: r.SrcIP })),
  )

  s.book.run('create', { ...s.lea, ip: '192.0.2.1', ...WINDOW })
  t.same(s.book.run('result', { ...s.lea, query_id: 2 }).rows, [], 'nobody held it: no rows')
  s.book.run('create', {
    ...s.lea,
    ip: '10.0.0.7',
    from_time: '01-01-2020 00:00:00',
    to_time: '02-01-2020 00:00:00',
  })
  t.same(s.book.run('result', { ...s.lea, query_id: 3 }).rows, [], 'before any mapping: no rows')
})

t.test("each of Trisul's documented refusals", async (t) => {
  const s = setup(0)
  t.teardown(s.close)
  s.book.run('create', { ...s.lea, ip: '10.0.0.7', ...WINDOW })
  const cases: [
    string,
    Record<string, unknown>,
    'list' | 'create' | 'status' | 'result' | 'cancel',
    string,
    number,
  ][] = [
    ['bad token', { api_token: 'x', username: 'lea' }, 'list', 'Invalid API token', 200],
    ['unknown context', { ...s.lea, contextname: 'nope' }, 'list', 'Context nope not found', 200],
    [
      'context not allowed',
      { api_token: 'nt', username: 'narrow' },
      'list',
      'You and not allowed to acess the context default',
      200,
    ],
    ['no query id', { ...s.lea }, 'status', 'Query ID is required', 400],
    ['unknown query', { ...s.lea, query_id: 42 }, 'status', 'Query ID not found', 404],
    [
      'another user',
      { api_token: 'nt', username: 'narrow', contextname: 'ipdr', query_id: 1 },
      'status',
      'You are not authorized to access this query',
      403,
    ],
    ['no ip', { ...s.lea, ...WINDOW }, 'create', 'IP address is required', 400],
    ['bad ip', { ...s.lea, ...WINDOW, ip: '10.0.0.999' }, 'create', 'Invalid IP address', 400],
    [
      'no from',
      { ...s.lea, ip: '10.0.0.7', to_time: WINDOW.to_time },
      'create',
      'From time is required',
      400,
    ],
    [
      'bad from',
      { ...s.lea, ip: '10.0.0.7', from_time: '2024-03-01', to_time: WINDOW.to_time },
      'create',
      'Invalid from time. Please use the format DD-MM-YYYY HH:MM:SS',
      400,
    ],
    [
      'no to',
      { ...s.lea, ip: '10.0.0.7', from_time: WINDOW.from_time },
      'create',
      'To time is required',
      400,
    ],
    [
      'bad to',
      { ...s.lea, ip: '10.0.0.7', from_time: WINDOW.from_time, to_time: 'tomorrow' },
      'create',
      'Invalid  to  time. Please use the format DD-MM-YYYY HH:MM:SS',
      400,
    ],
    [
      'headers not an array',
      { ...s.lea, query_id: 1, headers: 'SrcIP' },
      'result',
      'Headers should be an array',
      400,
    ],
    [
      'unknown headers',
      { ...s.lea, query_id: 1, headers: ['SrcIP', 'Foo', 'Bar'] },
      'result',
      'Invalid headers: Foo, Bar',
      400,
    ],
    ['unknown field', { ...s.lea, query_id: 1, port: 80 }, 'status', 'Unknown field : port', 200],
  ]
  for (const [what, body, op, message, status] of cases) {
    const r = refusal(() => s.book.run(op, body))
    t.equal(r.message, message, what)
    t.equal(r.status ?? 200, status, `${what}: HTTP ${status}`)
  }
  t.equal(s.book.run('list', { ...s.lea, contextname: 'context0' }).status, 'SUCCESS', 'context0 is default')
})

t.test('v1: no contexts at all', async (t) => {
  const s = setup(0, 'v1')
  t.teardown(s.close)
  t.equal(s.book.run('create', { ...s.lea, ip: '::1', ...WINDOW }).status, 'SUCCESS')
})
