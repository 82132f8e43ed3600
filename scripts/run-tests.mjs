#!/usr/bin/env node
// Installs (or names) what the tests need from the machine (scripts/test-prerequisites.mjs), then
// runs tap over test/ and ends the output with the line `N passed, N failed`,
// which tap itself does not print. Exits non-zero when any assertion fails or
// when tap fails for another reason (coverage below the .taprc thresholds, a
// test file that crashed, a timeout).
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

import { ensurePrerequisites } from './test-prerequisites.mjs'

if (!ensurePrerequisites()) {
  process.stdout.write('0 passed, 1 failed\n')
  process.exit(1)
}

const require = createRequire(import.meta.url)
const tapBin = join(dirname(require.resolve('tap/package.json')), 'dist/esm/run.mjs')

const child = spawn(process.execPath, [tapBin, '--reporter=tap', ...process.argv.slice(2)], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: process.env,
})

let pass = 0
let fail = 0
let seenSummary = false
let pending = ''
// tap closes its stream with `# { total: N, pass: N, fail: N, ... }`.
const summary = /^# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?/
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk)
  pending += chunk.toString('utf8')
  const lines = pending.split('\n')
  pending = lines.pop() ?? ''
  for (const line of lines) {
    const m = summary.exec(line)
    if (m) {
      seenSummary = true
      pass = Number(m[2] ?? 0)
      fail = Number(m[3] ?? 0)
    }
  }
})

child.on('close', (code, signal) => {
  if (!seenSummary) fail = Math.max(fail, 1)
  if (code !== 0 && fail === 0) {
    process.stdout.write(`# tap exited with ${code ?? signal} (coverage thresholds or a crashed file)\n`)
  }
  process.stdout.write(`${pass} passed, ${fail} failed\n`)
  process.exitCode = code === 0 && fail === 0 ? 0 : 1
})
