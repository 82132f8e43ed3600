/**
 * Paths the router itself refuses before any route runs (found by the fuzz):
 * a path parameter over `maxParamLength` and a path that is not valid
 * percent-encoding. They used to get Fastify's own 414/400 bodies
 * (`FST_ERR_MAX_PARAM_LENGTH`, `FST_ERR_BAD_URL`, echoing the URL) without an
 * `X-Request-Id`; they now get the gateway's error shape like everything else.
 */
import t from 'tap'
import { AUTH, robustGateway, send } from './harness.js'

const CASES: readonly [string, number, string][] = [
  [`/api/ipdrcustomers/${'a'.repeat(300)}`, 400, 'IPDR_GW_INVALID_USER_ID'],
  [`/api/ipdrcustomers_mapping/${'b'.repeat(257)}`, 400, 'IPDR_GW_INVALID_USER_ID'],
  ['/api/ipdrcustomers/%ZZ', 404, 'IPDR_GW_NOT_FOUND'],
  ['/api/ipdrcustomers/%', 404, 'IPDR_GW_NOT_FOUND'],
  ['/api/ipdrcustomers/%C0%AE%C0%AE', 404, 'IPDR_GW_NOT_FOUND'],
  ['/api/ipdrcustomers%ZZ', 404, 'IPDR_GW_NOT_FOUND'],
  ['/%ZZ/admin', 404, 'IPDR_GW_NOT_FOUND'],
]

t.test('router rejections get the gateway error shape and a request id', async (t) => {
  const h = await robustGateway(t)
  for (const method of ['GET', 'DELETE'] as const) {
    for (const [path, status, code] of CASES) {
      const a = await send(h.gw, method, path, { headers: { ...AUTH, 'x-request-id': 'probe-1' } })
      t.equal(a.status, status, `${method} ${path.slice(0, 40)}: ${a.text.slice(0, 120)}`)
      t.same(Object.keys(a.json ?? {}).sort(), ['code', 'error', 'message', 'statusCode'])
      t.equal(a.json?.code, code)
      t.equal(a.json?.statusCode, status)
      t.equal(a.headers['x-request-id'], 'probe-1', 'the request id is kept')
      t.notOk(a.text.includes('aaaa'), 'the URL is not echoed back')
    }
  }
  t.equal(h.upstream.requests.length, 0, 'none reached the upstream')
  const ok = await send(h.gw, 'GET', '/api/ipdrcustomers/U1', { headers: AUTH })
  t.equal(ok.status, 200, 'and ordinary reads are unaffected')
})
