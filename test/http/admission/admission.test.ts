/**
 * The admission step (src/http/admission/admission.ts): every API route resolves the
 * credentials, applies the policy, checks the body and charges the budget in
 * one `preValidation` step, in the order the separate hooks had: a refused
 * request (bad UserID, bad credentials, a denied operation, an invalid body)
 * costs no budget, and every admitted one costs exactly one unit, whether the
 * listing fast path admitted it or the route did.
 */
import t from 'tap'
import { makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../../helpers/gateway.js'
import { CREDENTIALS, CUSTOMERS } from '../../helpers/listing-fast-path-fixtures.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

const RECORD = CUSTOMERS[0] as Record<string, unknown>

t.test(
  'every API, Query API and sync route is admitted before its body (onRequest), then in at most one preValidation step',
  async (t) => {
    const policy = await makePolicy(t)
    const gw = await startGateway(t, { policy, upstreamUrl: 'http://127.0.0.1:9', listen: false })
    const tree = gw.app.printRoutes({ includeHooks: true, commonPrefix: false })
    // Each route prints as its path line followed by one "• (hook) [names]" line per hook.
    const routes: { name: string; onRequest: string[]; preValidation: string[] }[] = []
    for (const line of tree.split('\n')) {
      const hook = /• \((\w+)\) \[(.*)\]/.exec(line)
      if (hook === null) {
        const name = line.replace(/^[│ ├└─]+/, '').trim()
        if (name) routes.push({ name, onRequest: [], preValidation: [] })
      } else if (hook[1] === 'preValidation') routes.at(-1)?.preValidation.push(hook[2] ?? '')
      else if (hook[1] === 'onRequest')
        routes.at(-1)?.onRequest.push(...(JSON.parse(hook[2] ? `[${hook[2]}]` : '[]') as string[]))
    }
    const OTHERS = /^(\/openapi\.json|\/healthz|\/readyz|\/metrics|\*) \(/
    const globalOnRequest = routes.find((r) => r.name.startsWith('/healthz'))?.onRequest ?? []
    const api = routes.filter((route) => !OTHERS.test(route.name))
    t.equal(api.length, 19, `the API, query and sync routes, each method set and HEAD (${api.length})`)
    for (const { name, onRequest, preValidation } of api) {
      t.same(
        onRequest.slice(globalOnRequest.length),
        ['onRequest()'],
        `${name}: one admission step in onRequest`,
      )
      t.ok(preValidation.length <= 1, `${name}: at most one preValidation step`)
      if (preValidation.length === 1)
        t.equal(
          preValidation[0]?.split(',').length,
          1,
          `${name}: one preValidation step (${preValidation[0]})`,
        )
    }
  },
)

t.test('one unit of budget per admitted request, none for a refused one', async (t) => {
  const upstream = await startRecordingUpstream((req) =>
    req.method === 'GET' ? { kind: 'json', body: CUSTOMERS } : { kind: 'json', body: RECORD },
  )
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    consumers: { default: { ...PERMISSIVE_DEFAULT, rateLimit: { max: 8, timeWindow: '1 minute' } } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, listen: false })
  const alice = CREDENTIALS.alice as Record<string, string>
  const send = (method: string, url: string, headers: Record<string, string>, body?: unknown) =>
    gw.app.inject({
      method: method as 'GET',
      url,
      headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    })
  const remaining = (res: { headers: Record<string, unknown> }) => res.headers['ratelimit-remaining']

  const miss = await send('GET', '/api/ipdrcustomers', alice)
  t.equal(miss.headers['x-cache'], 'MISS', 'admitted by the fast path, filled by the route')
  t.equal(remaining(miss), '7', 'counted once')

  const refused = [
    await send('GET', '/api/ipdrcustomers/bad%2Fid', alice),
    await send('GET', '/api/ipdrcustomers', {}),
    await send('GET', '/api/ipdrcustomers', CREDENTIALS.malformed as Record<string, string>),
    await send('POST', '/api/ipdrcustomers', alice, { UserID: 'U9', Name: 'N', Colour: 'blue' }),
    await send('POST', '/api/ipdrcustomers', alice, { Name: 'no UserID' }),
    await send('PUT', '/api/ipdrcustomers/U1', alice, { UserID: 'U2', Name: 'N' }),
  ]
  t.same(
    refused.map((r) => r.statusCode),
    [400, 401, 401, 400, 400, 400],
    'a bad UserID, missing or malformed credentials, unknown or missing fields',
  )
  for (const r of refused) t.equal(remaining(r), undefined, `${r.json().code}: not charged`)

  const admitted = [
    await send('GET', '/api/ipdrcustomers', alice),
    await send('GET', '/api/ipdrcustomers?limit=1', alice),
    await send('GET', `/api/ipdrcustomers/${RECORD.UserID}`, alice),
    // Body credentials (form 4) are out of the body before it is checked: unknown fields are refused.
    await send(
      'PATCH',
      `/api/ipdrcustomers/${RECORD.UserID}`,
      {},
      {
        api_token: 'tokA',
        username: 'alice',
        Name: 'Renamed',
      },
    ),
    await send('POST', '/api/ipdrcustomers', alice, { UserID: 'U9', Name: 'New' }),
  ]
  t.same(
    admitted.map((r) => r.statusCode),
    [200, 200, 200, 200, 200],
    'a hit, a filtered listing, a read, a write with body credentials, a create',
  )
  t.same(admitted.map(remaining), ['6', '5', '4', '3', '2'], 'one unit each, in order')
  const patch = upstream.requests.find((r) => r.method === 'PATCH')
  t.equal(patch?.body?.Name, 'Renamed', 'the checked body is the one forwarded')

  const last = await send('GET', '/api/ipdrcustomers', alice)
  t.equal(remaining(last), '1')
  const next = await send('GET', '/api/ipdrcustomers', alice)
  t.equal(remaining(next), '0')
  const over = await send('GET', `/api/ipdrcustomers/${RECORD.UserID}`, alice)
  t.equal(over.statusCode, 429, 'over budget: the rate-limit plugin answers as it always has')
  t.equal(over.json().code, 'IPDR_GW_RATE_LIMITED')
  t.ok(Number(over.headers['retry-after']) > 0, 'with Retry-After')
  t.equal(remaining(over), '0')
  const writes = upstream.requests.filter((r) => r.method !== 'GET').map((r) => r.method)
  t.same(writes, ['PATCH', 'POST'], 'no refused write reached the upstream')
})
