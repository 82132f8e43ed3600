/**
 * The gateway as a process: flags, refusal to start on a bad policy, graceful
 * shutdown with a request in flight, SIGHUP reloads, and the `npm start` demo.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { seedUserId } from '../src/emulator/seed.js'
import { runCli } from './helpers/child.js'
import { ALL_OPERATIONS, PERMISSIVE_DEFAULT, tempDir, writePolicyDir } from './helpers/gateway.js'
import { startRecordingUpstream } from './helpers/recording-upstream.js'

const AUTH = { authorization: 'Bearer tok', 'x-trisul-username': 'alice' }
const LISTENING = /"msg":"gateway listening"/

function addressOf(stdout: string): string {
  for (const line of stdout.split('\n')) {
    if (!line.includes('gateway listening')) continue
    return (JSON.parse(line) as { address: string }).address
  }
  throw new Error('no address logged')
}

/** `serve` on port 0 in front of `upstreamUrl`, with the policy in `dir`; resolves once it listens. */
async function serveGateway(t: Test, dir: string, upstreamUrl: string, extra: string[] = []) {
  const child = runCli(t, ['serve', '--policies', dir, '--port', '0', '--upstream', upstreamUrl, ...extra])
  await child.waitFor(LISTENING)
  return { child, base: addressOf(child.stdout()) }
}

t.test('--help and bad flags', async (t) => {
  const help = runCli(t, ['--help'])
  t.equal((await help.exited).code, 0)
  t.match(help.stdout(), /check-policies DIR/)
  const bad = runCli(t, ['serve', '--port', 'eighty'])
  t.equal((await bad.exited).code, 2)
  t.match(bad.stderr(), /--port: must be a port number/)
  const unknown = runCli(t, ['frobnicate'])
  t.equal((await unknown.exited).code, 2)
})

t.test('an invalid policy or a missing token variable stops the start, naming the problem', async (t) => {
  const dir = writePolicyDir(tempDir(t), {
    consumers: {
      default: PERMISSIVE_DEFAULT,
      crm: {
        keys: ['a'.repeat(64)],
        upstream: { username: 'crm', tokenEnv: 'CRM_TRISUL_TOKEN_FOR_TEST', context: null },
        operations: ALL_OPERATIONS,
      },
    },
  })
  const child = runCli(t, ['serve', '--policies', dir, '--port', '0', '--upstream', 'http://127.0.0.1:9'])
  t.equal((await child.exited).code, 1)
  t.match(child.stderr(), /CRM_TRISUL_TOKEN_FOR_TEST/)
  const check = runCli(t, ['check-policies', dir])
  t.equal((await check.exited).code, 1)
  t.match(check.stderr(), /consumers\/crm\.json: .*CRM_TRISUL_TOKEN_FOR_TEST/)
  const ok = runCli(t, ['check-policies', dir], { env: { CRM_TRISUL_TOKEN_FOR_TEST: 'x' } })
  t.equal((await ok.exited).code, 0)
})

t.test('SIGTERM lets the in-flight request finish, then exits 0', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [{ id: 1 }], delayMs: 700 }))
  t.teardown(() => upstream.close())
  const dir = writePolicyDir(tempDir(t), {})
  const { child, base } = await serveGateway(t, dir, upstream.url, ['--log-level', 'info'])
  const inFlight = request(`${base}/api/ipdrcustomers`, { headers: AUTH })
  // Wait until the upstream has the request, then ask the gateway to stop.
  for (let i = 0; i < 100 && upstream.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(upstream.requests.length, 1)
  child.proc.kill('SIGTERM')
  const res = await inFlight
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), [{ id: 1 }])
  t.same(await child.exited, { code: 0, signal: null })
  t.match(child.stdout(), /shutting down/)
})

t.test('SIGHUP reloads the policy; an invalid reload keeps the old one and is counted', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const dir = writePolicyDir(tempDir(t), {})
  const { child, base } = await serveGateway(t, dir, upstream.url)
  t.equal((await request(`${base}/api/ipdrcustomers`, { headers: AUTH })).statusCode, 200)

  // Invalid: an unknown key. The old policy stays in force.
  writeFileSync(
    join(dir, 'consumers', 'default.json'),
    JSON.stringify({ operations: ALL_OPERATIONS, bogus: 1 }),
  )
  child.proc.kill('SIGHUP')
  await child.waitFor(/bogus/)
  t.equal((await request(`${base}/api/ipdrcustomers`, { headers: AUTH })).statusCode, 200)
  const metrics = await (await request(`${base}/metrics`)).body.text()
  t.match(metrics, /ipdr_gateway_policy_reloads_total\{result="invalid"\} [1-9]/)

  // Valid: listing no longer allowed.
  writeFileSync(
    join(dir, 'consumers', 'default.json'),
    JSON.stringify({ operations: { customers: ['read'] } }),
  )
  child.proc.kill('SIGHUP')
  let status = 0
  for (let i = 0; i < 100; i++) {
    const res = await request(`${base}/api/ipdrcustomers`, { headers: AUTH })
    status = res.statusCode
    await res.body.dump()
    if (status === 403) break
    await new Promise((r) => setTimeout(r, 50))
  }
  t.equal(status, 403, 'the new policy is in force')
  child.proc.kill('SIGTERM')
  t.equal((await child.exited).code, 0)
})

t.test('SIGHUP re-reads a token file (SPEC 16): the rotated Trisul token is the one sent', async (t) => {
  const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
  t.teardown(() => upstream.close())
  const key = 'gk_test_rotation_0123456789abcdef'
  const { createHash } = await import('node:crypto')
  const dir = writePolicyDir(tempDir(t), {
    consumers: {
      crm: {
        keys: [createHash('sha256').update(key).digest('hex')],
        upstream: { username: 'crm', tokenFile: 'crm-token' },
        operations: ALL_OPERATIONS,
      },
    },
  })
  writeFileSync(join(dir, 'crm-token'), 'first-trisul-token\n')
  const { child, base } = await serveGateway(t, dir, upstream.url)
  const write = async () => {
    const res = await request(`${base}/api/ipdrcustomers/U1`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: '{"Name":"x"}',
    })
    await res.body.dump()
  }
  await write()
  writeFileSync(join(dir, 'crm-token'), 'second-trisul-token\n')
  child.proc.kill('SIGHUP')
  await child.waitFor(/policy reloaded/)
  await write()
  t.same(
    upstream.requests.map((r) => r.body?.api_token),
    ['first-trisul-token', 'second-trisul-token'],
  )
  child.proc.kill('SIGTERM')
  t.equal((await child.exited).code, 0)
})

t.test('npm start demo: no upstream configured → embedded emulator, a curl line that works', async (t) => {
  const cwd = tempDir(t)
  const child = runCli(t, ['serve', '--port', '0'], { cwd })
  const m = await child.waitFor(
    /curl -s (\S+) -H 'Authorization: Bearer ([0-9a-f]{32})' -H 'X-Trisul-Username: demo'/,
  )
  const res = await request(m[1] as string, {
    headers: { authorization: `Bearer ${m[2]}`, 'x-trisul-username': 'demo' },
  })
  t.equal(res.statusCode, 200)
  const customers = (await res.body.json()) as unknown[]
  t.equal(customers.length, 25, 'the 25 demo customers')
  const docs = await request(`${m[1]?.replace('/api/ipdrcustomers', '')}/docs/`)
  t.equal(docs.statusCode, 200, 'Swagger UI is on in the demo')
  await docs.body.dump()
  // "Who had 10.0.0.7 at time T", end to end, with the printed lines (SPEC 12).
  const create = await child.waitFor(
    /curl -s -X POST (\S+) -u '(demo-lea:[0-9a-f]{32})' .*\n\s+-d '(\{.*\})'/,
  )
  const lea = `Basic ${Buffer.from(create[2] as string).toString('base64')}`
  const created = await request(create[1] as string, {
    method: 'POST',
    headers: { authorization: lea, 'content-type': 'application/json' },
    body: create[3] as string,
  })
  t.equal(created.statusCode, 200, 'the demo desk may submit a lookup')
  const { query_id } = (await created.body.json()) as { query_id: number }
  const result = await child.waitFor(/curl -s '(\S+result\?\S+)' -u/)
  const url = (result[1] as string).replace('query_id=1', `query_id=${query_id}`)
  const answer = await request(url, { headers: { authorization: lea } })
  t.equal(answer.statusCode, 200, 'the result, waited for')
  const body = (await answer.body.json()) as { rows: { UserID: string; SubscriberID: string }[] }
  t.ok(body.rows.length > 0, 'somebody had 10.0.0.7 then')
  t.same(
    [...new Set(body.rows.map((r) => `${r.UserID} ${r.SubscriberID}`))],
    [`${seedUserId(7)} T0007`],
    'demo customer 7 had it',
  )
  const denied = await request(url, {
    headers: { authorization: `Bearer ${m[2]}`, 'x-trisul-username': 'demo' },
  })
  t.equal(denied.statusCode, 403, 'the default consumer may not look up')
  await denied.body.dump()
  child.proc.kill('SIGINT')
  t.equal((await child.exited).code, 0)
})

t.test(
  '--metrics-port moves /metrics off the main port; a port in use stops the start cleanly',
  async (t) => {
    const upstream = await startRecordingUpstream(() => ({ kind: 'json', body: [] }))
    t.teardown(() => upstream.close())
    const { closedPort } = await import('./helpers/recording-upstream.js')
    const metricsPort = await closedPort()
    const dir = writePolicyDir(tempDir(t), {})
    const { child, base } = await serveGateway(t, dir, upstream.url, ['--metrics-port', String(metricsPort)])
    const main = await request(`${base}/metrics`)
    t.equal(main.statusCode, 404)
    await main.body.dump()
    const side = await request(`http://127.0.0.1:${metricsPort}/metrics`)
    t.equal(side.statusCode, 200)
    t.match(await side.body.text(), /ipdr_gateway_http_requests_total/)
    // A second gateway cannot take the same metrics port: it exits non-zero, naming the problem.
    const second = runCli(t, [
      'serve',
      '--policies',
      dir,
      '--port',
      '0',
      '--upstream',
      upstream.url,
      '--metrics-port',
      String(metricsPort),
    ])
    t.not((await second.exited).code, 0)
    t.match(second.stderr(), /EADDRINUSE/)
    child.proc.kill('SIGTERM')
    t.equal((await child.exited).code, 0)
  },
)
