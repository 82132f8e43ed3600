// Every envelope of shared/SPEC.md sections 2 and 7 with its HTTP status: 200 on the customers API;
// 422 on the mapping API except "not allowed to access the context" (200).
import t from 'tap'
import { cred, mcred, OTHER_TOKEN, startTestEmulator, TOKEN, v1cred } from './harness.js'

const C = '/api/ipdrcustomers'
const M = '/api/ipdrcustomers_mapping'

t.test('credential envelopes (v2)', async (t) => {
  const emu = await startTestEmulator(t)
  const invalidToken = { status: 'ERROR', message: 'Invalid API token' }
  const cases: [string, string, unknown, number, object][] = [
    // bad token, unknown user, missing or non-string credentials, no body at all
    ['GET', C, cred('default', 'admin', 'wrong'), 200, invalidToken],
    ['GET', M, mcred('default', 'admin', 'wrong'), 422, invalidToken],
    ['GET', C, cred('default', 'nobody', TOKEN), 200, invalidToken],
    ['GET', C, cred('default', 'limited', TOKEN), 200, invalidToken],
    ['POST', C, { username: 'admin', contextname: 'default' }, 200, invalidToken],
    ['POST', M, { api_token: 5, username: 'admin', context: 'default' }, 422, invalidToken],
    ['GET', C, undefined, 200, invalidToken],
    ['DELETE', M, undefined, 404, { status: 'Error', message: 'Route not found' }],
    ['DELETE', `${M}/X`, undefined, 422, invalidToken],
    ['GET', C, '   ', 200, invalidToken],
    // unknown context
    ['GET', C, cred('ipdrr'), 200, { status: 'Error', message: 'Invalid Context name - ipdrr' }],
    ['GET', M, mcred('ipdrr'), 422, { status: 'Error', message: 'Invalid Context name - ipdrr' }],
    ['GET', C, { ...cred(), contextname: 7 }, 200, { status: 'Error', message: 'Invalid Context name - 7' }],
    // missing context: the customers API calls it contextname, the mapping API context
    ['GET', C, v1cred(), 200, { status: 'Error', message: 'Missing field : contextname' }],
    ['GET', M, v1cred(), 422, { status: 'Error', message: 'Missing field : context' }],
    [
      'GET',
      M,
      { ...v1cred(), contextname: 'default' },
      422,
      { status: 'Error', message: 'Missing field : context' },
    ],
    // context not allowed: 200 on both APIs
    [
      'GET',
      C,
      cred('default', 'limited', OTHER_TOKEN),
      200,
      { status: 'Error', message: 'The user (limited) is not allowed to access the context default' },
    ],
    [
      'GET',
      M,
      mcred('default', 'limited', OTHER_TOKEN),
      200,
      { status: 'Error', message: 'The user (limited) is not allowed to access the context default' },
    ],
  ]
  for (const [method, path, body, status, envelope] of cases) {
    const r = await emu.call(method, path, body)
    t.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: status`)
    t.strictSame(r.json, envelope, `${method} ${path} ${JSON.stringify(body)}`)
  }
  // an allowed context works for the limited user
  const r = await emu.call('GET', C, cred('ipdr', 'limited', OTHER_TOKEN))
  t.same(r.json, [])
})

t.test('v1 has no contexts: the context fields are unknown there', async (t) => {
  const emu = await startTestEmulator(t, { dialect: 'v1' })
  let r = await emu.call('GET', C, v1cred())
  t.same(r.json, [])
  r = await emu.call('GET', C, cred())
  t.strictSame(r.json, { status: 'Error', message: 'Unknown field : contextname' })
  r = await emu.call('GET', M, mcred())
  t.equal(r.status, 422)
  t.strictSame(r.json, { status: 'Error', message: 'Unknown field : context' })
  // a v1 user's context list means nothing: everyone works in `default`
  r = await emu.call('GET', C, v1cred('limited', OTHER_TOKEN))
  t.same(r.json, [])
  r = await emu.call('GET', C, v1cred('admin', 'wrong'))
  t.strictSame(r.json, { status: 'ERROR', message: 'Invalid API token' })
})

t.test('record envelopes', async (t) => {
  const emu = await startTestEmulator(t)
  await emu.call('POST', C, { ...cred(), UserID: 'U1001', Name: 'Asha' })
  await emu.call('POST', M, { ...mcred(), UserID: 'U1001', ipsubnet: '10.1.1.0/24', starttime: '0' })
  await emu.call('POST', C, { ...cred(), UserID: 'U1002', Name: 'Bala' })
  const cases: [string, string, object, number, string][] = [
    ['POST', C, { ...cred(), UserID: 'U1001', Name: 'Again' }, 200, 'Duplicate UserID : U1001'],
    ['POST', C, { ...cred(), UserID: 'U1003' }, 200, 'Missing field : Name'],
    ['POST', C, { ...cred(), UserID: 'U1003', Name: '' }, 200, 'Missing field : Name'],
    ['POST', C, { ...cred(), Name: 'No id' }, 200, 'Missing field : UserID'],
    ['PUT', `${C}/U1003`, { ...cred(), Name: 'x' }, 200, 'IPDR Customer not found'],
    ['PUT', `${C}/U1001`, { ...cred(), UserID: 'U1001' }, 200, 'Missing field : Name'],
    ['PATCH', `${C}/U1003`, { ...cred(), Name: 'x' }, 200, 'IPDR Customer not found'],
    ['PATCH', `${C}/U1001`, { ...cred() }, 200, 'Nothing to update'],
    ['DELETE', `${C}/U1003`, { ...cred() }, 200, 'IPDR Customer not found'],
    [
      'POST',
      M,
      { ...mcred(), UserID: 'U1003', ipsubnet: '10.2.2.2', starttime: '0' },
      422,
      'IPDR Customer not found',
    ],
    [
      'POST',
      M,
      { ...mcred(), UserID: 'U1002', ipsubnet: '10.1.1.9', starttime: '0' },
      422,
      'Duplicate Mapping for UserID : U1002',
    ],
  ]
  for (const [method, path, body, status, message] of cases) {
    const r = await emu.call(method, path, body)
    t.equal(r.status, status, `${method} ${path}: status`)
    t.strictSame(r.json, { status: 'Error', message }, `${method} ${path} ${message}`)
  }
})

t.test('Invalid JSON on both APIs', async (t) => {
  const emu = await startTestEmulator(t)
  for (const body of ['{"api_token":', 'not json', '[1,2]', '"a string"', 'null', '42']) {
    let r = await emu.call('POST', C, body)
    t.equal(r.status, 200)
    t.strictSame(r.json, { status: 'Error', message: 'Invalid JSON' }, body)
    r = await emu.call('GET', M, body)
    t.equal(r.status, 422)
    t.strictSame(r.json, { status: 'Error', message: 'Invalid JSON' }, body)
  }
})

t.test('routes that do not exist get a 404 envelope', async (t) => {
  const emu = await startTestEmulator(t)
  for (const [method, path] of [
    ['GET', '/'],
    ['GET', '/api/ipdrcustomers/U1'],
    ['POST', '/api/ipdrcustomers/U1'],
    ['PUT', '/api/ipdrcustomers'],
    ['GET', '/api/other'],
  ] as const) {
    const r = await emu.call(method, path, cred())
    t.equal(r.status, 404, `${method} ${path}`)
    t.strictSame(r.json, { status: 'Error', message: 'Route not found' })
  }
})

t.test('no users: every request is refused, and a warning is logged', async (t) => {
  const lines: string[] = []
  const emu = await startTestEmulator(t, {
    users: [],
    logger: { level: 'warn', stream: { write: (s: string) => lines.push(s) } },
  })
  const r = await emu.call('GET', C, cred())
  t.strictSame(r.json, { status: 'ERROR', message: 'Invalid API token' })
  t.ok(lines.some((l) => l.includes('no users configured')))
})
