import t from 'tap'
import { startEmulator } from '../src/emulator/index.js'
import { makePolicy, startGateway } from './helpers/gateway.js'
import { call } from './store/cluster.js'
t.test('dbg', async (t) => {
  const emu = await startEmulator({ db: ':memory:', dialect: 'v2', users: [{ name: 'alice', token: 'tokA', contexts: null }], seed: 100000, port: 0, host: '127.0.0.1', logger: false })
  t.teardown(() => emu.close())
  const g = await startGateway(t, { policy: await makePolicy(t, { gateway: { cache: { ttlSeconds: 300 }, rateLimit: { max: 100000, timeWindow: '1 minute' } } }), upstreamUrl: emu.url })
  const c = JSON.parse((await call(g.url, 'GET', '/api/ipdrcustomers')).text)
  for (let i = 0; i < 6; i++) {
    const r = await call(g.url, 'PATCH', `/api/ipdrcustomers/${c[1 + i].UserID}`, undefined, { Name: `Warm ${i}` })
    const m = await call(g.url, 'GET', '/api/ipdrcustomers')
    const p = await call(g.url, 'GET', '/api/ipdrcustomers')
    console.log('W', r.ms.toFixed(1), 'R', m.ms.toFixed(1), m.headers['x-cache'], 'plain', p.ms.toFixed(1))
  }
})
