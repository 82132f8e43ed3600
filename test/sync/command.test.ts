/**
 * `ipdr-gateway sync FILE` (src/sync/command.ts) against a gateway in front of
 * the emulator: plan, apply, the exit codes, credentials from the environment.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runSync } from '../../src/sync/command.js'
import { startUsersEmulator } from '../helpers/emulator.js'
import { makePolicy, startGateway, tempDir } from '../helpers/gateway.js'

t.test('plan, apply, and what the exit status says', async (t) => {
  const emu = await startUsersEmulator(t, { alice: 'tokA' })
  const policy = await makePolicy(t, {
    gateway: { sync: { maxWritesPerSecond: 10_000 } },
    consumers: {
      default: {
        operations: {
          customers: ['list', 'create', 'update', 'delete', 'sync'],
          mappings: ['list', 'create', 'update', 'delete'],
        },
      },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const dir = tempDir(t)
  const json = join(dir, 'crm.json')
  writeFileSync(
    json,
    JSON.stringify([
      { UserID: 'S1', Name: 'One' },
      { UserID: 'S2', Name: 'Two' },
    ]),
  )
  const env = { TRISUL_USERNAME: 'alice', TRISUL_TOKEN: 'tokA' }
  const run = async (argv: string[], e: Record<string, string> = env, tty = false) => {
    let stdout = ''
    let stderr = ''
    const code = await runSync(argv, {
      stdout: (s) => {
        stdout += s
      },
      stderr: (s) => {
        stderr += s
      },
      env: e,
      tty,
    })
    return { code, stdout, stderr }
  }

  const plan = await run([json, '--gateway', gw.url])
  t.equal(plan.code, 0, plan.stderr)
  t.match(
    plan.stdout,
    /sync plan done\ncustomers: 2 to create, 0 to update, 0 absent \(not deleted\), 0 unchanged, 0 invalid/,
  )
  const applied = await run([json, '--gateway', gw.url, '--apply'], env, true)
  t.equal(applied.code, 0, applied.stderr)
  t.match(applied.stdout, /writes: 2 of 2 done, 0 failed/)
  const again = await run([json, '--gateway', gw.url, '--apply', '--json'])
  t.equal(again.code, 0)
  t.match(JSON.parse(again.stdout), { state: 'done', plan: { unchanged: 2 }, progress: { done: 0 } })

  const csv = join(dir, 'crm.csv')
  writeFileSync(csv, '10.5.0.1,Three,,,,,S3,,,T\nbad-ip,Four,,,,,S4,,,\n')
  const partial = await run([csv, '--gateway', gw.url, '--apply'], { IPDR_GATEWAY_URL: gw.url, ...env })
  t.equal(partial.code, 1, 'an invalid record: exit 1')
  t.match(partial.stdout, /S4 \(line 2\): 400 IPDR_GW_VALIDATION bad-ip: ipsubnet is not valid/)

  t.equal((await run([json, '--gateway', gw.url], {})).code, 2, 'no credentials')
  const refused = await run([json, '--gateway', gw.url], { TRISUL_USERNAME: 'alice', TRISUL_TOKEN: 'wrong' })
  t.equal(refused.code, 1, 'a bad token: the job fails on its listing')
  t.equal((await run([join(dir, 'missing.json'), '--gateway', gw.url])).code, 2)
  t.equal((await run([json])).code, 2, 'no gateway')
  t.equal((await run([json, '--gateway', 'not a url'])).code, 2)
  t.equal((await run([json, '--bogus'])).code, 2)
  t.equal((await run(['--help'])).code, 0)
  const forbidden = await run([json, '--gateway', gw.url], { IPDR_GATEWAY_KEY: 'unknown-key' })
  t.equal(forbidden.code, 2, 'the gateway refused the request')
  t.match(forbidden.stderr, /answered 40[13]/)
})
