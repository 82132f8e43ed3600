// What the test suite needs from the machine besides npm packages, and its set-up: a server or tool
// per test group, found by its command on PATH, installed from Debian's apt when missing (as root,
// one `apt-get update` at most), so `npm install && npm test` works on a fresh machine. Anywhere
// else it stops at once, naming the exact packages.
import { spawnSync } from 'node:child_process'

/** The command each test group runs, and the Debian package that provides it. */
export const PREREQUISITES = Object.freeze([
  { command: 'promtool', pkg: 'prometheus', for: 'the metrics and alert-rule checks' },
  { command: 'chromium', pkg: 'chromium', for: 'the Swagger UI browser test' },
  { command: 'openssl', pkg: 'openssl', for: 'the TLS tests' },
  { command: 'redis-server', pkg: 'redis-server', for: 'the shared-store tests' },
  { command: 'rsyslogd', pkg: 'rsyslog', for: "the audit trail's off-host copy test" },
  { command: 'curl', pkg: 'curl', for: "the README's curl lines, run as written" },
])

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

/** The prerequisites whose command is not on PATH. */
export function missingPrerequisites(has = onPath) {
  return PREREQUISITES.filter((p) => !has(p.command))
}

function run(argv, env) {
  const r = spawnSync(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit'], env })
  return r.status === 0
}

/**
 * Installs what is missing when it can (root with apt-get), else prints what to install.
 * Returns true when everything is there afterwards.
 */
export function ensurePrerequisites(log = (line) => process.stderr.write(`${line}\n`)) {
  return ensureCommands(PREREQUISITES, 'the tests', log)
}

/**
 * The same for any list of `{ command, pkg, for }` (the benchmarks' nginx and wrk): installs the
 * missing ones as root with apt-get, else names them. `who` says what needs them.
 */
export function ensureCommands(wanted, who, log = (line) => process.stderr.write(`${line}\n`)) {
  const missingOf = () => wanted.filter((p) => !onPath(p.command))
  let missing = missingOf()
  if (missing.length === 0) return true
  const pkgs = missing.map((p) => p.pkg)
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && onPath('apt-get')) {
    log(`# installing what ${who} need: ${pkgs.join(' ')} (apt-get)`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const installed =
      run(['apt-get', 'update', '-qq'], env) &&
      run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...pkgs], env)
    // Debian's packages start their own servers; the tests start theirs on free ports.
    for (const service of ['prometheus', 'redis-server', 'nginx', 'rsyslog']) {
      spawnSync('sh', ['-c', `systemctl stop ${service} >/dev/null 2>&1 || true`], { stdio: 'ignore' })
    }
    spawnSync('pkill', ['-x', 'prometheus'], { stdio: 'ignore' })
    if (!installed) log('# apt-get failed; see its output above')
    missing = missingOf()
    if (missing.length === 0) return true
  }
  log(`# ${who} need these commands, missing here:`)
  for (const p of missing) log(`#   ${p.command} (Debian package ${p.pkg}) for ${p.for}`)
  log(
    `# install them: sudo apt-get install -y --no-install-recommends ${missing.map((p) => p.pkg).join(' ')}`,
  )
  return false
}
