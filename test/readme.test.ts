/**
 * The README's curl lines, pasted in order (issue 32): against `npm start`'s
 * demo (after the `GW=… TOKEN=…` line it prints) and against
 * `ipdr-gateway emulator`, every line answers 2xx with what its comment says.
 * The lines run through bash exactly as the README has them; only `curl` is
 * wrapped, to keep each answer and its status.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { runCli } from './helpers/child.js'
import { tempDir } from './helpers/gateway.js'

const README = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8')

/** The README's `sh` blocks that run curl against `$variable`. */
function curlBlocks(variable: string): string[] {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string)
  return blocks.filter((b) => b.includes('curl ') && b.includes(`$${variable}`))
}

interface Answer {
  readonly line: string
  readonly status: number
  readonly body: string
}

/**
 * Runs `script` in bash with `curl` wrapped: each call's status and body are kept in `dir`.
 * Continuation lines (`\`) stay one command, as a shell pasting them would.
 */
async function runPasted(dir: string, script: string): Promise<Answer[]> {
  const wrapper = [
    'set -u',
    'n=0',
    `curl() { n=$((n+1)); command curl -sS -o "${dir}/$n.body" -w '%{http_code}\\n' "$@" >> "${dir}/status"; }`,
    script,
  ].join('\n')
  await promisify(execFile)('bash', ['-c', wrapper], { timeout: 60_000 })
  const statuses = readFileSync(join(dir, 'status'), 'utf8').trim().split('\n').map(Number)
  const lines = script
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => /^\s*curl /.test(l))
  return statuses.map((status, i) => ({
    line: lines[i] ?? '?',
    status,
    body: readFileSync(join(dir, `${i + 1}.body`), 'utf8'),
  }))
}

t.test('the Using it lines, against npm start', async (t) => {
  const cwd = tempDir(t)
  const child = runCli(t, ['serve', '--port', '0'], { cwd })
  const printed = await child.waitFor(/^ {2}(GW=http:\/\/\S+ TOKEN=[0-9a-f]{32})$/m)
  const blocks = curlBlocks('GW')
  t.equal(blocks.length, 2, 'the credential forms and one line per operation')
  // The placeholder line is the README's own instruction to paste the printed one.
  const script = [printed[1] as string, ...blocks.map((b) => b.replace(/^GW=.*TOKEN=….*$/m, ''))].join('\n')
  const answers = await runPasted(tempDir(t), script)
  t.equal(answers.length, 14, 'every curl line ran')
  for (const a of answers)
    t.ok(a.status >= 200 && a.status < 300, `${a.status}: ${a.line.trim().slice(0, 90)}`)
  const json = (i: number) => JSON.parse(answers[i]?.body ?? 'null')
  for (const i of [0, 1, 2]) t.equal(json(i).length, 25, `form ${i + 2}: the 25 demo customers`)
  t.equal(json(3).length, 25, 'the listing')
  t.match(answers[4]?.body, /X-Total-Count: [1-9]/i, 'the filter finds somebody')
  t.equal(json(5).UserID, 'J38g18', 'the read')
  t.equal(json(10)[0]?.UserID, 'NB4002', 'who had the IP, by UserID')
  t.equal(json(11).length, 1, "the customer's mapping")
  child.proc.kill('SIGINT')
  t.equal((await child.exited).code, 0)
})

t.test('the emulator lines, against ipdr-gateway emulator', async (t) => {
  const child = runCli(t, [
    'emulator',
    '--port',
    '0',
    '--db',
    ':memory:',
    '--user',
    'demo:demotoken',
    '--seed',
    '100',
  ])
  const [, url] = await child.waitFor(/listening on (http:\/\/\S+)/)
  const [block] = curlBlocks('E')
  t.ok(block, 'the emulator block')
  const script = (block as string)
    .split('\n')
    .filter((l) => !l.startsWith('npx ipdr-gateway emulator'))
    .join('\n')
    .replaceAll('http://127.0.0.1:3000', url as string)
  const answers = await runPasted(tempDir(t), script)
  t.equal(answers.length, 8, 'every curl line ran')
  for (const a of answers) {
    t.equal(a.status, 200, a.line.trim().slice(0, 90))
    const body = JSON.parse(a.body)
    t.not(String(body?.status).toLowerCase(), 'error', `no error envelope: ${a.body.slice(0, 120)}`)
  }
  t.equal(JSON.parse(answers[0]?.body ?? '[]').length, 100, 'the seeded listing')
})
