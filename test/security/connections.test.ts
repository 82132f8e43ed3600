/**
 * SPEC 13, per-address connections and forwarded addresses: one host holding connections up to
 * (and past) `server.maxConnectionsPerAddress` cannot starve the others (127.0.0.2 still gets
 * /healthz), a trusted address (a load balancer) is exempt, and behind a trusted proxy an
 * `X-Forwarded-For` value that is not one IP address is never taken as the client address.
 */
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { logCapture, makePolicy, PERMISSIVE_DEFAULT, startGateway } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'
import { probe } from './hostile-client.js'

/** Opens `n` connections from `localAddress`; resolves once each is connected or closed. */
async function open(port: number, n: number, localAddress: string): Promise<Socket[]> {
  const sockets = Array.from({ length: n }, () => connect({ port, host: '127.0.0.1', localAddress }))
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          s.once('connect', () => resolve())
          s.once('error', () => resolve())
          s.once('close', () => resolve())
        }),
    ),
  )
  return sockets
}

t.test('one address holds its maximum; the others are still served', async (t) => {
  const upstream = await startRecordingUpstream()
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { server: { maxConnectionsPerAddress: 20, trustedAddresses: ['127.0.0.3/32'] } },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })
  const port = Number(new URL(gw.url).port)

  const hog = await open(port, 60, '127.0.0.1')
  t.teardown(() => {
    for (const s of hog) s.destroy()
  })
  // A connection past the cap is closed at once by the gateway.
  await new Promise((r) => setTimeout(r, 300))
  const alive = hog.filter((s) => !s.destroyed && s.readyState === 'open')
  t.equal(alive.length, 20, `the address keeps exactly its maximum (${alive.length} open)`)
  t.equal(await probe(port, '/healthz', '127.0.0.1'), 0, 'a 61st connection from it is closed unanswered')
  t.equal(await probe(port, '/healthz', '127.0.0.2'), 200, '/healthz answers another address')

  const balancer = await open(port, 40, '127.0.0.3')
  t.teardown(() => {
    for (const s of balancer) s.destroy()
  })
  await new Promise((r) => setTimeout(r, 300))
  t.equal(
    balancer.filter((s) => !s.destroyed && s.readyState === 'open').length,
    40,
    'a trusted address is exempt',
  )
  t.equal(await probe(port, '/healthz', '127.0.0.3'), 200)

  for (const s of hog) s.destroy()
  await new Promise((r) => setTimeout(r, 200))
  t.equal(await probe(port, '/healthz', '127.0.0.1'), 200, 'closed connections give their places back')
})

t.test('behind a trusted proxy, a forwarded value that is not one IP address is ignored', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t, {
    gateway: { trustProxy: ['127.0.0.1'] },
    consumers: {
      default: PERMISSIVE_DEFAULT,
      // Only requests from 10.9.9.9 may use this consumer: a forged range or name must not pass for it.
      office: { usernames: ['office'], operations: { customers: ['list'] }, allowIPs: ['10.0.0.0/8'] },
    },
  })
  const logs = logCapture()
  const gw = await startGateway(t, {
    policy,
    upstreamUrl: upstream.url,
    logger: { level: 'info', stream: logs.stream },
  })
  const get = (forwarded: string) =>
    fetch(`${gw.url}/api/ipdrcustomers`, {
      headers: { authorization: 'Bearer tok', 'x-trisul-username': 'office', 'x-forwarded-for': forwarded },
    })
  t.equal((await get('10.9.9.9')).status, 200, 'a single address is taken')
  for (const forged of ['10.0.0.0/8', 'office.example.net', '10.0.0.0/8, 10.1.2.3/32', 'unknown']) {
    const r = await get(forged)
    t.equal(r.status, 403, `${forged}: not the client address (the proxy's own is)`)
  }
  t.equal((await get('evil/8, 10.9.9.9')).status, 200, 'the one real address of a list is kept')
})
