/**
 * Runs `promtool` (Debian package `prometheus`; `npm test` installs it). A
 * missing promtool is a failure, not a skip: these checks are part of the
 * metrics contract (shared/SPEC.md section 5).
 */
import { execFile, spawnSync } from 'node:child_process'

export const PROMTOOL_MISSING =
  'promtool not found on PATH: install it with `apt-get install -y --no-install-recommends prometheus` ' +
  '(then `pkill -x prometheus` if it started a server); npm test does this as root'

/** The absolute path of promtool, or null when `which` cannot find it. */
export function findPromtool(): string | null {
  const found = spawnSync('which', ['promtool'], { encoding: 'utf8', timeout: 10_000 })
  const path = found.status === 0 ? found.stdout.trim() : ''
  return path === '' ? null : path
}

export interface PromtoolResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs promtool with `args`, feeding `input` on stdin; bounded by a timeout generous for a busy machine. */
export function runPromtool(promtool: string, args: string[], input?: string): Promise<PromtoolResult> {
  return new Promise((resolve) => {
    const child = execFile(
      promtool,
      args,
      { encoding: 'utf8', timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0
        resolve({ code, stdout, stderr })
      },
    )
    child.stdin?.end(input ?? '')
  })
}
