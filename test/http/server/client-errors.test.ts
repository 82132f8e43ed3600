/**
 * Requests Node's HTTP parser refuses get the gateway's error shape and a
 * request id, and nothing of them reaches the upstream.
 */
import t from 'tap'
import { clientErrorResponse } from '../../../src/http/server/client-errors.js'
import { makePolicy, startGateway } from '../../helpers/gateway.js'
import { rawHttp } from '../../helpers/raw-http.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

function parse(reply: string) {
  const [head = '', body = ''] = reply.split('\r\n\r\n')
  return { status: Number(head.split(' ')[1]), head, json: JSON.parse(body) as Record<string, unknown> }
}

t.test('malformed request line and oversized headers', async (t) => {
  const upstream = await startRecordingUpstream()
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const port = Number(new URL(gw.url).port)

  const bad = parse(await rawHttp(port, 'GET /api/ipdrcustomers HTTP/1.1 extra\r\nHost: x\r\n\r\n'))
  t.equal(bad.status, 400)
  t.same(bad.json, {
    statusCode: 400,
    error: 'Bad Request',
    code: 'IPDR_GW_BAD_REQUEST',
    message: 'Malformed HTTP request',
  })
  t.match(bad.head, /\r\nX-Request-Id: [0-9a-f-]{36}\r\n/i)

  const big = parse(
    await rawHttp(port, `GET /api/ipdrcustomers HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
  )
  t.equal(big.status, 431)
  t.equal(big.json.code, 'IPDR_GW_HEADERS_TOO_LARGE')
  t.notMatch(JSON.stringify(big.json), /aaaa/, 'nothing of the request is echoed')
  t.equal(upstream.requests.length, 0)
})

t.test('timeouts map to 408', async (t) => {
  const err = Object.assign(new Error('timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' })
  const reply = clientErrorResponse(err, 'rid-1')
  t.match(reply, /^HTTP\/1\.1 408 Request Timeout\r\n/)
  t.match(reply, /"code":"IPDR_GW_REQUEST_TIMEOUT"/)
  t.match(reply, /\r\nX-Request-Id: rid-1\r\n/)
  t.match(reply, /\r\nConnection: close\r\n/)
})
