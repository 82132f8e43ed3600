/**
 * The gateway as it was at another revision, built beside this checkout for an A/B in the same run
 * (row 14: the cost of SPEC 13's admission checks on a cached hit against the build before them).
 * A git worktree under bench/results/ (ignored), sharing this checkout's node_modules, compiled once.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The script (relative to bench/) that starts the gateway of `rev`, building it first when needed. */
export function baseGatewayScript(rev) {
  const dir = join(ROOT, 'bench', 'results', `base-${rev}`)
  if (!existsSync(join(dir, 'dist', 'app.js'))) {
    if (!existsSync(dir))
      execFileSync('git', ['worktree', 'add', '--detach', '--force', dir, rev], {
        cwd: ROOT,
        stdio: 'ignore',
      })
    if (!existsSync(join(dir, 'node_modules')))
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
    const require = createRequire(import.meta.url)
    const tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc')
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: dir, stdio: 'inherit' })
  }
  return `results/base-${rev}/bench/servers/gateway.mjs`
}
