import { readFileSync } from 'node:fs'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Readiness } from '../../src/upstream/readiness.js'
import { selfSignedLoopbackCert } from '../helpers/certs.js'
import { makePolicy, startGateway } from '../helpers/gateway.js'
import { closedPort, startRecordingUpstream } from '../helpers/recording-upstream.js'

const AUTH = { authorization: 'Bearer tok', 'x-trisul-username': 'alice' }

t.test('the probe: a TCP connect; any response since the last probe also counts', async (t) => {
  const upstream = await startRecordingUpstream()
  const r = new Readiness({ url: new URL(upstream.url), intervalMs: 60_000, connectTimeoutMs: 500 })
  t.teardown(() => r.stop())
  t.equal(r.up, false, 'unknown until the first probe')
  t.equal(await r.start(), true)
  t.equal(r.up, true)
  await upstream.close()
  t.equal(await r.probe(), false)
  t.equal(r.up, false)
  r.markResponse()
  t.equal(r.up, true, 'a response since the probe')
  t.equal(await r.probe(), false)
  t.equal(r.up, false, 'until the next failed probe')
})

t.test('/readyz follows the upstream; /healthz does not', async (t) => {
  const port = await closedPort()
  const policy = await makePolicy(t)
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: `http://127.0.0.1:${port}`,
    listen: false,
    probe: true,
  })
  // The first probe runs at start; wait for it to settle.
  for (let i = 0; i < 50 && (await gw.app.inject({ url: '/readyz' })).statusCode !== 503; i++) {
    await new Promise((r) => setTimeout(r, 20))
  }
  const down = await gw.app.inject({ url: '/readyz' })
  t.equal(down.statusCode, 503)
  t.equal((await gw.app.inject({ url: '/healthz' })).statusCode, 200)
  const metrics = (await gw.app.inject({ url: '/metrics' })).body
  t.match(metrics, /ipdr_gateway_upstream_up 0/)

  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const gw2 = await startGateway(t, { policy, upstreamUrl: upstream.url, listen: false, probe: true })
  let ready = 0
  for (let i = 0; i < 50 && ready !== 200; i++) {
    ready = (await gw2.app.inject({ url: '/readyz' })).statusCode
    if (ready !== 200) await new Promise((r) => setTimeout(r, 20))
  }
  t.equal(ready, 200)
  t.match((await gw2.app.inject({ url: '/metrics' })).body, /ipdr_gateway_upstream_up 1/)
})

t.test('an https upstream is verified against upstream.caFile', async (t) => {
  const { cert, key } = selfSignedLoopbackCert(t)
  const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('[{"id":1,"UserID":"TLS1"}]')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  const trusted = await makePolicy(t, { gateway: { upstream: { caFile: cert } } })
  const ok = await startGateway(t, { policy: trusted, upstreamUrl: url, listen: false })
  const res = await ok.app.inject({ url: '/api/ipdrcustomers', headers: AUTH })
  t.equal(res.statusCode, 200)
  t.same(res.json(), [{ id: 1, UserID: 'TLS1' }])

  const untrusted = await makePolicy(t)
  const refused = await startGateway(t, { policy: untrusted, upstreamUrl: url, listen: false })
  const bad = await refused.app.inject({ url: '/api/ipdrcustomers', headers: AUTH })
  t.equal(bad.statusCode, 502, 'an unknown CA is never accepted by default')
  t.equal(bad.json().code, 'IPDR_GW_UPSTREAM_UNAVAILABLE')
})
