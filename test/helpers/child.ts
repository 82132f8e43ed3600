/**
 * Runs the CLI (src/cli.ts, through tap's TypeScript loader) as a child
 * process, for tests of what only a real process shows: listening, signals,
 * exit codes, printed output.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const require = createRequire(import.meta.url)
const TS_IMPORT = join(dirname(require.resolve('@tapjs/typescript/package.json')), 'dist/esm/import.mjs')
export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url))

export interface Child {
  readonly proc: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first stdout text matching `re` (rejects after `ms`). */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export function runCli(
  t: Test,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string } = {},
): Child {
  const proc = spawn(process.execPath, ['--import', TS_IMPORT, CLI, ...args], {
    cwd: opts.cwd ?? process.cwd(),
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = []
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString()
    for (const w of [...waiters]) {
      const m = w.re.exec(out)
      if (m) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(m)
      }
    }
  })
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal })),
  )
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  })
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(re, ms = 30_000) {
      const m = re.exec(out)
      if (m) return Promise.resolve(m)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${re}; stdout: ${out}; stderr: ${err}`)),
          ms,
        )
        waiters.push({
          re,
          resolve: (match) => {
            clearTimeout(timer)
            resolve(match)
          },
        })
        void exited.then(() => {
          clearTimeout(timer)
          const late = re.exec(out)
          if (late) resolve(late)
          else reject(new Error(`exited before ${re}; stdout: ${out}; stderr: ${err}`))
        })
      })
    },
  }
}
