/**
 * The gateway as it was at another revision, built beside this checkout for an A/B in the same run
 * (row 14: the cost of SPEC 13's admission checks on a cached hit against the build before them).
 * A git worktree in the system's temp directory (outside this checkout, so neither tsc nor biome
 * reads it), sharing this checkout's node_modules, compiled once.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, symlinkSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The script (an absolute path) that starts the gateway of `rev`, building it first when needed. */
export function baseGatewayScript(rev) {
  const dir = join(tmpdir(), `ipdr-gateway-bench-base-${rev}`)
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
  return join(dir, 'bench', 'servers', 'gateway.mjs')
}
