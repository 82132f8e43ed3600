/**
 * `ipdr-gateway audit verify FILE…` and `ipdr-gateway audit search --user-id X
 * [--since ISO] [FILE…]` (shared/SPEC.md 11). Without files, search reads the
 * trail of the policy's `audit.file` (`--policies DIR`, else POLICIES_DIR, else
 * the shipped policy) or of `--audit-file` / `AUDIT_FILE`, rotated files included.
 *
 * verify exit status: 0 intact, 1 broken (a line edited, deleted, moved or not
 * a record), 3 intact up to an incomplete last line (a crash while writing it;
 * the gateway's next start closes it with a repair line), 2 bad usage or an
 * unreadable file.
 */
import { resolve } from 'node:path'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { SHIPPED_POLICIES_DIR } from '../config.js'
import { loadPolicy } from '../policy/load.js'
import { trailFiles } from './files.js'
import { searchTrail, verifyTrail } from './verify.js'

export interface AuditIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: Readonly<Record<string, string | undefined>>
}

export const AUDIT_USAGE = `Usage: ipdr-gateway audit verify [--partial] FILE…
       ipdr-gateway audit search --user-id ID [--since ISO-8601] [FILE…]

verify checks the hash chain of the audit files (any order: rotated files are
put in chain order). Exit status: 0 intact; 1 broken, naming the first broken
line; 3 intact up to an incomplete last line (a crash while writing it; the
gateway's next start closes it); 2 bad usage or unreadable file. --partial: the
first line may continue earlier files that are not given.

search prints the audit lines about one UserID (JSON lines, oldest first): who
touched this customer, when, from where, with what. Without FILE it reads the
trail of --audit-file / AUDIT_FILE, else of the policy's audit.file
(--policies DIR / POLICIES_DIR, else the shipped policy).
`

export async function runAudit(argv: readonly string[], io: AuditIo): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '--help' || sub === '-h' || rest.includes('--help')) {
    io.stdout(AUDIT_USAGE)
    return sub === undefined ? 2 : 0
  }
  try {
    if (sub === 'verify') return await verify(rest, io)
    if (sub === 'search') return await search(rest, io)
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`audit ${sub}: ${err.message}\n\n${AUDIT_USAGE}`)
      return 2
    }
    const e = err as NodeJS.ErrnoException
    io.stderr(`audit ${sub}: ${e.code && !e.message.startsWith(e.code) ? `${e.code}: ` : ''}${e.message}\n`)
    return 2
  }
  io.stderr(`audit: unknown command ${JSON.stringify(sub)}\n\n${AUDIT_USAGE}`)
  return 2
}

// A CLI usage mistake (exit status 2), never an HTTP answer.
class UsageError extends Error {}

function parse(args: readonly string[], options: NonNullable<ParseArgsConfig['options']>) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: true })
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

async function verify(args: readonly string[], io: AuditIo): Promise<number> {
  const { values, positionals } = parse(args, { partial: { type: 'boolean' } })
  if (positionals.length === 0) throw new UsageError('missing FILE')
  const report = await verifyTrail(positionals, { partial: values.partial === true })
  const { problem, head } = report
  if (problem === null) {
    io.stdout(
      `audit trail intact: ${report.lines} lines in ${report.files.length} ${report.files.length === 1 ? 'file' : 'files'}; head seq ${head.seq} sha256 ${head.hash}\n`,
    )
    return 0
  }
  io.stderr(`${problem.file}:${problem.line}: ${problem.message}\n`)
  if (problem.tornTail) {
    io.stdout(`audit trail intact up to the torn last line; head seq ${head.seq} sha256 ${head.hash}\n`)
    return 3
  }
  io.stdout(`audit trail broken at ${problem.file}:${problem.line} (intact up to seq ${head.seq})\n`)
  return 1
}

async function search(args: readonly string[], io: AuditIo): Promise<number> {
  const { values, positionals } = parse(args, {
    'user-id': { type: 'string' },
    since: { type: 'string' },
    policies: { type: 'string' },
    'audit-file': { type: 'string' },
  })
  const userId = values['user-id']
  if (typeof userId !== 'string' || userId === '') throw new UsageError('missing --user-id')
  let since: number | undefined
  if (typeof values.since === 'string') {
    since = Date.parse(values.since)
    if (!Number.isFinite(since))
      throw new UsageError(`--since: not an ISO 8601 time: ${JSON.stringify(values.since)}`)
  }
  const files = positionals.length > 0 ? positionals : await configuredFiles(values, io)
  if (files === null) return 2
  let n = 0
  for await (const record of searchTrail(files, { userId, ...(since === undefined ? {} : { since }) })) {
    io.stdout(`${JSON.stringify(record)}\n`)
    n += 1
  }
  io.stderr(
    `${n} ${n === 1 ? 'line' : 'lines'} about UserID ${userId} in ${files.length} ${files.length === 1 ? 'file' : 'files'}\n`,
  )
  return 0
}

async function configuredFiles(values: Record<string, unknown>, io: AuditIo): Promise<string[] | null> {
  let file = typeof values['audit-file'] === 'string' ? values['audit-file'] : io.env.AUDIT_FILE || null
  if (!file) {
    const dir =
      typeof values.policies === 'string' ? values.policies : io.env.POLICIES_DIR || SHIPPED_POLICIES_DIR
    const loaded = await loadPolicy(dir, io.env)
    if (!loaded.ok) {
      io.stderr(
        `audit search: the policy in ${dir} is invalid:\n${loaded.problems.map((p) => `  ${p}\n`).join('')}`,
      )
      return null
    }
    file = loaded.policy.gateway.audit.file
    if (file === null) {
      io.stderr(`audit search: the policy in ${dir} has no audit.file; name the files\n`)
      return null
    }
  }
  return trailFiles(resolve(file))
}
