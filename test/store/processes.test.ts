/**
 * Several instances on one host, as docs/operations.md runs them: two `serve`
 * processes with `--redis` (and one with REDIS_URL), in front of one emulator.
 * One budget, read-your-writes, and the Redis password kept out of the logs.
 */
import t, { type Test } from 'tap'
import { runCli } from '../helpers/child.js'
import { PERMISSIVE_DEFAULT, tempDir, writePolicyDir } from '../helpers/gateway.js'
import { findRedisServer, REDIS_MISSING, startRedis } from '../helpers/redis-server.js'
import { ALICE, call, startTestEmulator } from './cluster.js'

if (!findRedisServer()) t.fail(REDIS_MISSING)

const LISTENING = /"msg":"gateway listening"/

function addressOf(stdout: string): string {
  const line = stdout.split('\n').find((l) => l.includes('gateway listening'))
  if (!line) throw new Error('no address logged')
  return (JSON.parse(line) as { address: string }).address
}

async function serve(
  t: Test,
  dir: string,
  upstream: string,
  extra: string[],
  env: Record<string, string> = {},
) {
  const child = runCli(t, ['serve', '--policies', dir, '--port', '0', '--upstream', upstream, ...extra], {
    env,
  })
  t.teardown(() => {
    child.proc.kill('SIGTERM')
  })
  await child.waitFor(LISTENING, 20_000)
  return { child, base: addressOf(child.stdout()) }
}

/** Every API answer of the test's budget, by status. */
const answered: number[] = []
async function counted(...args: Parameters<typeof call>) {
  const r = await call(...args)
  answered.push(r.status)
  return r
}

async function untilHit(base: string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    if ((await counted(base, 'GET', '/api/ipdrcustomers_mapping')).headers['x-cache'] === 'HIT') return
    if (Date.now() > deadline) throw new Error(`${base} never served a cached listing`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

t.test('two serve processes with --redis behave as one gateway', async (t) => {
  const redis = await startRedis(t)
  const emu = await startTestEmulator(t, 5)
  const dir = writePolicyDir(tempDir(t), {
    gateway: { cache: { ttlSeconds: 300 }, rateLimit: { max: 40, timeWindow: '1 hour' } },
    consumers: { default: PERMISSIVE_DEFAULT },
  })
  const one = await serve(t, dir, emu.url, ['--redis', redis.url])
  const two = await serve(t, dir, emu.url, [], { REDIS_URL: redis.url })
  await untilHit(one.base)
  await untilHit(two.base)
  const created = await counted(one.base, 'POST', '/api/ipdrcustomers', ALICE, {
    UserID: 'PROC1',
    Name: 'Two processes',
  })
  t.equal(created.status, 200)
  t.equal(
    (await counted(two.base, 'GET', '/api/ipdrcustomers/PROC1')).status,
    200,
    'the other process sees the write',
  )
  // The budget (40 per hour, some spent above) is one for both processes.
  await Promise.all(
    Array.from({ length: 60 }, (_, i) => counted(i % 2 ? one.base : two.base, 'GET', '/api/ipdrcustomers')),
  )
  t.ok(answered.length > 60, `${answered.length} requests in all`)
  t.equal(answered.filter((s) => s === 200).length, 40, 'exactly the budget admitted over both processes')
  t.equal(answered.filter((s) => s === 429).length, answered.length - 40, 'the rest refused')
  for (const p of [one, two])
    t.match(p.child.stdout(), /"msg":"shared store"/, 'the store is named in the log')
})

t.test('a Redis password never reaches the log', async (t) => {
  const redis = await startRedis(t)
  const upstream = 'http://127.0.0.1:9'
  const dir = writePolicyDir(tempDir(t), { consumers: { default: PERMISSIVE_DEFAULT } })
  const withPassword = redis.url.replace('redis://', 'redis://:sekrit-pass@')
  const p = await serve(t, dir, upstream, ['--redis', withPassword])
  await new Promise((r) => setTimeout(r, 300))
  t.match(p.child.stdout(), /redis:\/\/\*\*\*@127\.0\.0\.1/, 'logged redacted')
  t.notMatch(p.child.stdout() + p.child.stderr(), /sekrit-pass/, 'the password is nowhere in the output')
})
