/**
 * Sync jobs behind a load balancer (SPEC 15, issue 37): a job started through one instance is
 * read, waited on and cancelled through another; a second apply of the same consumer and context
 * is 409 wherever it lands; a stopping instance ends its jobs `cancelled` and logs them; a job whose
 * instance is killed reads `failed` everywhere once its lease has run out.
 */
import t, { type Test } from 'tap'
import { runCli } from '../helpers/child.js'
import { logCapture, makePolicy, startGateway, tempDir, writePolicyDir } from '../helpers/gateway.js'
import { startRedis } from '../helpers/redis-server.js'
import { ALICE, call, startInstances, startTestEmulator } from './cluster.js'

const SYNC_OPS = { customers: ['list', 'read', 'create', 'update', 'sync'] }
const records = (n: number, from = 0) =>
  Array.from({ length: n }, (_, i) => ({ UserID: `JOB${from + i}`, Name: `Customer ${from + i}` }))

async function pair(t: Test) {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 0)
  const gws = await startInstances(t, {
    n: 2,
    redis,
    upstreamUrl: emu.url,
    spec: {
      gateway: { sync: { maxWritesPerSecond: 5, concurrency: 1 }, rateLimit: { max: 100_000 } },
      consumers: { default: { operations: SYNC_OPS } },
    },
  })
  return { redis, emu, a: gws[0]!, b: gws[1]! }
}

const started = (text: string) => JSON.parse(text) as { id: string; state: string }

t.test('a job started through A is read, waited on and cancelled through B', async (t) => {
  const { a, b } = await pair(t)
  const r = await call(a.url, 'POST', '/sync/customers?mode=apply', ALICE, records(40))
  t.equal(r.status, 202)
  const location = r.headers.location as string
  const seen = await call(b.url, 'GET', location)
  t.equal(seen.status, 200, 'B knows the job')
  t.match(started(seen.text), { id: started(r.text).id })
  const second = await call(b.url, 'POST', '/sync/customers?mode=apply', ALICE, records(2, 100))
  t.equal(second.status, 409, 'a second apply of the same consumer and context is refused through B')
  t.match(JSON.parse(second.text), { code: 'IPDR_GW_SYNC_APPLY_RUNNING' })
  const plan = await call(b.url, 'POST', '/sync/customers?mode=plan', ALICE, records(2, 100))
  t.equal(plan.status, 202, 'a plan alongside is fine')
  await new Promise((res) => setTimeout(res, 1500))
  t.equal((await call(b.url, 'DELETE', location)).status, 200, 'cancelled through B')
  const waited = await call(b.url, 'GET', `${location}?wait=10`)
  const doc = JSON.parse(waited.text) as { state: string; progress: { done: number; total: number } }
  t.equal(doc.state, 'cancelled', 'the job, run by A, ended cancelled; B waited for it')
  t.ok(doc.progress.done < doc.progress.total, `stopped at ${doc.progress.done} of ${doc.progress.total}`)
  t.equal((await call(b.url, 'GET', '/sync/jobs/not-a-job-id')).status, 404)
  const other = { authorization: 'Bearer tokB', 'x-trisul-username': 'bob' }
  t.equal((await call(b.url, 'GET', location, other)).status, 404, "another consumer's job is not found")
})

t.test('a stopping instance ends its jobs cancelled, publishes and logs them', async (t) => {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 0)
  const policy = await makePolicy(t, {
    gateway: {
      sync: { maxWritesPerSecond: 5, concurrency: 1 },
      store: { redis: { url: redis.url, leaseMs: 1000 } },
    },
    consumers: { default: { operations: SYNC_OPS } },
  })
  const logs = logCapture()
  const a = await startGateway(t, {
    policy,
    upstreamUrl: emu.url,
    logger: { level: 'info', stream: logs.stream },
  })
  const b = await startGateway(t, { policy, upstreamUrl: emu.url })
  const r = await call(a.url, 'POST', '/sync/customers?mode=apply', ALICE, records(40))
  const { id } = started(r.text)
  await new Promise((res) => setTimeout(res, 1200))
  await a.app.close()
  t.match(
    logs.text(),
    new RegExp(`"syncJob":"${id}".*sync job stopped with the gateway`),
    'the job id is logged',
  )
  const doc = JSON.parse((await call(b.url, 'GET', `/sync/jobs/${id}`)).text) as { state: string }
  t.equal(doc.state, 'cancelled', 'the other instance reads it cancelled')
})

t.test('a job whose instance is killed reads failed everywhere once its lease has run out', async (t) => {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 0)
  const dir = writePolicyDir(tempDir(t), {
    gateway: { sync: { maxWritesPerSecond: 2, concurrency: 1 } },
    consumers: { default: { operations: SYNC_OPS } },
  })
  const child = runCli(t, [
    'serve',
    '--policies',
    dir,
    '--port',
    '0',
    '--upstream',
    emu.url,
    '--redis',
    redis.url,
  ])
  await child.waitFor(/"msg":"gateway listening"/, 20_000)
  const line = child
    .stdout()
    .split('\n')
    .find((l) => l.includes('gateway listening')) as string
  const base = (JSON.parse(line) as { address: string }).address
  const policy = await makePolicy(t, {
    gateway: { store: { redis: { url: redis.url } } },
    consumers: { default: { operations: SYNC_OPS } },
  })
  const b = await startGateway(t, { policy, upstreamUrl: emu.url })
  const r = await call(base, 'POST', '/sync/customers?mode=apply', ALICE, records(40))
  t.equal(r.status, 202)
  const location = r.headers.location as string
  await new Promise((res) => setTimeout(res, 1500))
  child.proc.kill('SIGKILL')
  await child.exited
  const killedAt = Date.now()
  let doc = { state: 'applying', errors: [] as { code: string }[] }
  while (['planning', 'applying'].includes(doc.state) && Date.now() - killedAt < 20_000) {
    doc = JSON.parse((await call(b.url, 'GET', `${location}?wait=2`)).text)
  }
  t.equal(doc.state, 'failed', `failed after ${Math.round((Date.now() - killedAt) / 1000)} s`)
  t.match(doc.errors.at(-1), { code: 'IPDR_GW_SYNC_JOB_LOST' })
})
