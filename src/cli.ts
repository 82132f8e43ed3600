/**
 * The `ipdr-gateway` command: `serve` (default), `emulator`, `check-policies`.
 * With the server it is the only code that reads process.env and argv. It is
 * also the composition root that may start the emulator in front of which the
 * gateway runs (`npm start` with no upstream configured); the gateway itself
 * never imports the emulator.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, parseServeConfig } from './config.js'
import { runCheckPolicies } from './policy/check-command.js'
import { loadPolicy } from './policy/load.js'

export const HELP = `ipdr-gateway — a gateway in front of Trisul's IPDR customers API

Usage:
  ipdr-gateway [serve] [options]        run the gateway (default)
  ipdr-gateway emulator [options]       run the Trisul API emulator (see: ipdr-gateway emulator --help)
  ipdr-gateway check-policies DIR       validate a policy directory; exit 1 on problems
  ipdr-gateway check-policies --schema  print the policy JSON Schema
  ipdr-gateway sync FILE --gateway URL [--apply] [--delete]   reconcile Trisul with a CRM list
  ipdr-gateway audit verify FILE…       check the audit trail's hash chain (exit 0 intact)
  ipdr-gateway audit search --user-id X [--since ISO] [FILE…]   who touched this customer
  ipdr-gateway --help                   this text

serve options (flags override environment variables):
  --port N             PORT          listen port (default 8080)
  --host H             HOST          listen address (default 127.0.0.1)
  --upstream URL       UPSTREAM_URL  Trisul base URL (default: the policy's upstream.url;
                                     if the policy names none, an embedded emulator with demo data)
  --policies DIR       POLICIES_DIR  policy directory (default: the shipped policies/)
  --log-level L        LOG_LEVEL     fatal|error|warn|info|debug|trace|silent (default info)
  --metrics-port N     METRICS_PORT  serve /metrics on a separate port instead of the main one
  --shutdown-timeout MS SHUTDOWN_TIMEOUT_MS  bound on finishing in-flight requests (default 10000)
  --redis URL          REDIS_URL     shared store for several instances (redis://, rediss:// or redis+sentinel://);
                                     default: the policy's store.redis, else none (SPEC 8)
  --audit-file PATH    AUDIT_FILE    this instance's audit trail (default: the policy's audit.file)
  --tls-cert FILE      TLS_CERT_FILE  serve HTTPS (TLS 1.2+) with this PEM certificate ...
  --tls-key FILE       TLS_KEY_FILE   ... and key (default: the policy's server.tls; SIGHUP reloads them)
                       OTEL_EXPORTER_OTLP_ENDPOINT  export spans to this OTLP/HTTP collector (default:
                                     the policy's telemetry.otlp.endpoint, else none; SPEC 18)

Signals: SIGTERM/SIGINT stop gracefully; SIGHUP reloads the policy (a change of the files does too).
`

type Io = { stdout: (s: string) => void; stderr: (s: string) => void }

/** A demo token kept under ./data so the printed curl line stays valid across restarts. */
function demoToken(dataDir: string): string {
  const file = join(dataDir, 'demo-token')
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim()
    if (/^[a-f0-9]{32}$/.test(t)) return t
  }
  const t = randomBytes(16).toString('hex')
  writeFileSync(file, `${t}\n`, { mode: 0o600 })
  return t
}

async function serve(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  let config: ReturnType<typeof parseServeConfig>
  try {
    config = parseServeConfig(argv, env)
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`ipdr-gateway: ${err.message}\n`)
      return 2
    }
    throw err
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout(HELP)
    return 0
  }
  const loaded = await loadPolicy(config.policiesDir, env)
  if (!loaded.ok) {
    io.stderr(`ipdr-gateway: the policy in ${config.policiesDir} is invalid:\n`)
    for (const p of loaded.problems) io.stderr(`  ${p}\n`)
    return 1
  }
  const { runServer } = await import('./server.js')
  let upstreamUrl = config.upstreamUrl ?? undefined
  let afterClose: (() => Promise<void>) | undefined
  let demo: { token: string } | null = null
  if (!upstreamUrl && !loaded.policy.gateway.upstream.urlFromPolicy) {
    // No upstream anywhere: the demo. The emulator runs on a loopback port
    // with SQLite under ./data and 25 demo customers.
    const { startEmulator } = await import('./emulator/index.js')
    const dataDir = join(process.cwd(), 'data')
    mkdirSync(dataDir, { recursive: true })
    const token = demoToken(dataDir)
    const emu = await startEmulator({
      // Not emulator.sqlite: `ipdr-gateway emulator` keeps its own default database.
      db: join(dataDir, 'demo.sqlite'),
      dialect: loaded.policy.gateway.upstream.dialect,
      // demo-lea: the shipped lea-demo consumer, the one allowed the IPDR Query API.
      users: [
        { name: 'demo', token, contexts: null },
        { name: 'demo-lea', token, contexts: null },
      ],
      seed: 25,
      seedMappings: true,
      port: 0,
      host: '127.0.0.1',
      logger: false,
    })
    upstreamUrl = emu.url
    afterClose = () => emu.close()
    demo = { token }
  }
  const server = await runServer({
    config,
    policy: loaded.policy,
    env,
    ...(upstreamUrl ? { upstreamUrl } : {}),
    ...(afterClose ? { afterClose } : {}),
    swaggerUi: demo !== null,
  })
  if (demo) {
    const base = server.address.replace('://[::1]', '://localhost')
    io.stdout(
      `\nipdr-gateway is listening on ${base}, in front of an embedded Trisul emulator (demo data).\n` +
        `Try:\n\n  curl -s ${base}/api/ipdrcustomers -H 'Authorization: Bearer ${demo.token}' -H 'X-Trisul-Username: demo'\n\n` +
        `Who had 10.0.0.7 on 1 March 2024 (IPDR Query API, docs/queries.md):\n\n` +
        `  curl -s -X POST ${base}/api/ipdr_query/new -u 'demo-lea:${demo.token}' -H 'Content-Type: application/json' \\\n` +
        `    -d '{"ip":"10.0.0.7","from_time":"01-03-2024 00:00:00","to_time":"02-03-2024 00:00:00"}'\n` +
        `  curl -s '${base}/api/ipdr_query/result?query_id=1&wait=10&headers=UserID,SubscriberID,StartTime,DestIP' -u 'demo-lea:${demo.token}'\n\n` +
        `The README's curl lines (paste this first):\n\n  GW=${base} TOKEN=${demo.token}\n\n` +
        `API documentation: ${base}/docs (Swagger UI) and ${base}/openapi.json\n` +
        'Press Ctrl-C to stop.\n',
    )
  }
  return -1
}

/** Runs the command; resolves to an exit code, or -1 when a server keeps running. */
export async function main(argv: string[], env: NodeJS.ProcessEnv, io: Io): Promise<number> {
  const [first, ...rest] = argv
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout(HELP)
    return 0
  }
  if (first === 'emulator') {
    const { parseEmulatorArgs, startEmulator, EMULATOR_HELP } = await import('./emulator/index.js')
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout(EMULATOR_HELP)
      return 0
    }
    let opts: ReturnType<typeof parseEmulatorArgs>
    try {
      opts = parseEmulatorArgs(rest)
    } catch (err) {
      io.stderr(`ipdr-gateway emulator: ${(err as Error).message}\n`)
      return 2
    }
    const emu = await startEmulator({ ...opts, logger: { level: env.LOG_LEVEL ?? 'info' } })
    io.stdout(`Trisul API emulator (${opts.dialect}) listening on ${emu.url}\n`)
    const stop = () => void emu.close().then(() => process.exit(0))
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
    return -1
  }
  if (first === 'check-policies') return runCheckPolicies(rest, { ...io, env })
  if (first === 'sync') {
    const { runSync } = await import('./sync/command.js')
    return runSync(rest, { ...io, env, tty: process.stderr.isTTY === true })
  }
  if (first === 'audit') {
    const { runAudit } = await import('./audit/command.js')
    return runAudit(rest, { ...io, env })
  }
  if (first === 'serve') return serve(rest, env, io)
  if (first === undefined || first.startsWith('-')) return serve(argv, env, io)
  io.stderr(`ipdr-gateway: unknown command ${JSON.stringify(first)}\n\n${HELP}`)
  return 2
}

const io: Io = {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
}

// Run when executed (bin/ipdr-gateway.js or `node dist/cli.js`), not when imported by tests.
const invoked = process.argv[1] ?? ''
if (/(?:cli\.(?:js|ts)|ipdr-gateway(?:\.js)?)$/.test(invoked)) {
  main(process.argv.slice(2), process.env, io).then(
    (code) => {
      if (code >= 0) process.exitCode = code
    },
    (err: unknown) => {
      process.stderr.write(`ipdr-gateway: ${(err as Error)?.message ?? String(err)}\n`)
      process.exitCode = 1
    },
  )
}
