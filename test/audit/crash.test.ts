/**
 * kill -9 in the middle of a burst of writes (shared/SPEC.md 11): the file's
 * chain verifies up to at most a torn last line, every write a client saw
 * answered has both its lines, and the next start closes a torn line by
 * appending, after which the whole chain verifies.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Agent, request } from 'undici'
import { trailFiles } from '../../src/audit/files.js'
import { verifyTrail } from '../../src/audit/verify.js'
import { AuditTrail } from '../../src/audit/writer.js'
import { runCli } from '../helpers/child.js'
import { tempDir, writePolicyDir } from '../helpers/gateway.js'
import { startRecordingUpstream } from '../helpers/recording-upstream.js'

const HEADERS = {
  authorization: 'Bearer tok',
  'x-trisul-username': 'alice',
  'content-type': 'application/json',
}

t.test(
  'kill -9 during a burst of writes leaves a chain that verifies up to a reported torn tail',
  async (t) => {
    const up = await startRecordingUpstream(() => ({
      kind: 'json',
      body: { id: 1, UserID: 'K1', Name: 'K' },
    }))
    t.teardown(() => up.close())
    const dir = tempDir(t)
    const file = join(dir, 'audit.jsonl')
    const policies = writePolicyDir(join(dir, 'policies'), {
      gateway: { audit: { file, maxBytes: 65_536 }, rateLimit: { max: 1_000_000 } },
    })
    const child = runCli(t, ['serve', '--policies', policies, '--port', '0', '--upstream', up.url])
    const listening = await child.waitFor(/"address":"(http:\/\/[^"]+)","upstream"/)
    const base = listening[1] as string
    const agent = new Agent({ connections: 16 })
    t.teardown(() => agent.close())

    const answered: string[] = []
    let killed = false
    const writer = async (w: number) => {
      for (let i = 0; i < 200 && !killed; i++) {
        try {
          const res = await request(`${base}/api/ipdrcustomers/K${w}x${i}`, {
            method: 'PATCH',
            headers: HEADERS,
            body: JSON.stringify({ Name: `Name ${w}.${i}`, Address: 'a'.repeat(200) }),
            dispatcher: agent,
          })
          await res.body.dump()
          if (res.statusCode === 200) answered.push(String(res.headers['x-request-id']))
        } catch {
          return // the gateway is gone
        }
      }
    }
    const burst = Promise.all(Array.from({ length: 12 }, (_, w) => writer(w)))
    const deadline = Date.now() + 30_000
    while (answered.length < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    child.proc.kill('SIGKILL')
    killed = true
    t.equal((await child.exited).signal, 'SIGKILL')
    await burst
    t.ok(answered.length >= 150, `${answered.length} writes answered before the kill`)

    const all = await trailFiles(file)
    t.ok(all.length >= 2, 'the burst rotated the file at least once')
    const report = await verifyTrail(all)
    t.ok(
      report.ok || report.chains[0]?.problem?.tornTail === true,
      `intact, or torn at the very end: ${report.chains[0]?.problem?.message ?? 'intact'}`,
    )

    const lines = all.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { phase: string; requestId: string; seq: number; intent?: number }]
          } catch {
            return [] // the torn fragment
          }
        }),
    )
    const phases = new Map<string, string[]>()
    for (const l of lines) phases.set(l.requestId, [...(phases.get(l.requestId) ?? []), l.phase])
    const missing = answered.filter((id) => (phases.get(id) ?? []).join() !== 'intent,outcome')
    t.same(missing, [], 'every write answered before the kill has its intent and its outcome')
    const intents = new Set(lines.filter((l) => l.phase === 'intent').map((l) => l.seq))
    t.ok(
      lines.filter((l) => l.phase === 'outcome').every((l) => intents.has(l.intent as number)),
      'no outcome without its intent',
    )

    // The next start: a torn line (if any) is closed by appending a repair line.
    const reopened = await AuditTrail.open({ file })
    await reopened.append({ phase: 'intent', note: 'after the restart' })
    await reopened.close()
    const after = await verifyTrail(await trailFiles(file))
    t.equal(after.ok, true, after.chains[0]?.problem?.message ?? 'the chain verifies after the restart')
  },
)
