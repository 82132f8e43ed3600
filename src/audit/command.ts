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
import { createPublicKey, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { SHIPPED_POLICIES_DIR } from '../config.js'
import { loadPolicy } from '../policy/load.js'
import { trailFiles } from './files.js'
import {
  readShippedCopy,
  SEARCH_CSV_COLUMNS,
  type SearchQuery,
  searchCsvRow,
  searchTrail,
  verifyTrail,
} from './verify.js'

export interface AuditIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: Readonly<Record<string, string | undefined>>
}

export const AUDIT_USAGE = `Usage: ipdr-gateway audit verify [--partial] [--public-key FILE] [--shipped COPY] FILE…
       ipdr-gateway audit search [--user-id ID] [--consumer NAME] [--phase P]
                                 [--since ISO] [--until ISO] [--format json|csv] [FILE…]

verify checks the hash chain of the audit files, each instance's on its own
(any order: rotated files are put in chain order). Exit status: 0 intact; 1
broken, naming the first broken line, or a gap (the trail was found shorter
than its last checkpoint); 3 intact up to an incomplete last line (a crash while
writing it; the gateway's next start closes it); 2 bad usage or unreadable
file. --partial: the first line may continue earlier files that are not given
(a file that begins with a checkpoint needs no --partial). --public-key FILE
(Ed25519, PEM): every checkpoint's signature is checked, so a line changed
before the last checkpoint fails even with the chain recomputed. --shipped COPY
(what the syslog receiver stored, one message per line): a line that differs
from its shipped copy, and a trail that ends before the last line shipped or is
empty, are reported (exit 1).

search prints the audit lines that match (JSON lines or CSV), from every file
given (several instances' and rotated ones) merged by time: who saw or changed
a customer (--user-id matches a write's UserID and an access line's userIds),
when, from where, with what. --phase access|intent|outcome|checkpoint|gap. Without FILE it reads the
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
  const { values, positionals } = parse(args, {
    partial: { type: 'boolean' },
    'public-key': { type: 'string' },
    shipped: { type: 'string' },
  })
  if (positionals.length === 0) throw new UsageError('missing FILE')
  let publicKey: KeyObject | null = null
  if (typeof values['public-key'] === 'string') {
    try {
      // A private key file gives its public half too.
      publicKey = createPublicKey(await readFile(values['public-key']))
    } catch (err) {
      throw new UsageError(`--public-key: not an Ed25519 key in PEM (${(err as Error).message})`)
    }
    if (publicKey.asymmetricKeyType !== 'ed25519') throw new UsageError('--public-key: not an Ed25519 key')
  }
  const shipped = typeof values.shipped === 'string' ? await readShippedCopy(values.shipped) : null
  const report = await verifyTrail(positionals, { partial: values.partial === true, publicKey, shipped })
  let status = 0
  for (const chain of report.chains) {
    const who = report.chains.length > 1 && chain.instance !== '' ? `${chain.instance}: ` : ''
    const { problem, head } = chain
    const files = `${chain.files.length} ${chain.files.length === 1 ? 'file' : 'files'}`
    if (problem === null) {
      const signed =
        publicKey === null
          ? ''
          : chain.checkpoints === 0
            ? '; no signed checkpoint'
            : `; ${chain.checkpoints} signed checkpoints verified, ${chain.sinceCheckpoint} lines after the last`
      if (publicKey !== null && chain.checkpoints === 0) {
        io.stdout(`${who}no signed checkpoint: nothing proves these ${chain.lines} lines (${files})\n`)
        status = Math.max(status, 1)
        continue
      }
      io.stdout(
        `${who}audit trail intact: ${chain.lines} lines in ${files}; head seq ${head.seq} sha256 ${head.hash}${signed}\n`,
      )
      continue
    }
    io.stderr(`${problem.file}:${problem.line}: ${problem.message}\n`)
    if (problem.tornTail) {
      io.stdout(
        `${who}audit trail intact up to the torn last line; head seq ${head.seq} sha256 ${head.hash}\n`,
      )
      status = status === 1 ? 1 : 3
      continue
    }
    io.stdout(`${who}audit trail broken at ${problem.file}:${problem.line} (intact up to seq ${head.seq})\n`)
    status = 1
  }
  return status
}

async function search(args: readonly string[], io: AuditIo): Promise<number> {
  const { values, positionals } = parse(args, {
    'user-id': { type: 'string' },
    consumer: { type: 'string' },
    phase: { type: 'string' },
    since: { type: 'string' },
    until: { type: 'string' },
    format: { type: 'string' },
    policies: { type: 'string' },
    'audit-file': { type: 'string' },
  })
  const time = (name: 'since' | 'until'): number | undefined => {
    const value = values[name]
    if (typeof value !== 'string') return undefined
    const ms = Date.parse(value)
    if (!Number.isFinite(ms))
      throw new UsageError(`--${name}: not an ISO 8601 time: ${JSON.stringify(value)}`)
    return ms
  }
  const format = values.format ?? 'json'
  if (format !== 'json' && format !== 'csv') throw new UsageError('--format: json or csv')
  const query: SearchQuery = {
    ...(typeof values['user-id'] === 'string' && values['user-id'] !== ''
      ? { userId: values['user-id'] }
      : {}),
    ...(typeof values.consumer === 'string' ? { consumer: values.consumer } : {}),
    ...(typeof values.phase === 'string' ? { phase: values.phase } : {}),
    ...(time('since') === undefined ? {} : { since: time('since') as number }),
    ...(time('until') === undefined ? {} : { until: time('until') as number }),
  }
  if (Object.keys(query).length === 0)
    throw new UsageError('name at least one of --user-id, --consumer, --phase, --since, --until')
  const files = positionals.length > 0 ? positionals : await configuredFiles(values, io)
  if (files === null) return 2
  if (format === 'csv') io.stdout(`${SEARCH_CSV_COLUMNS.join(',')}\n`)
  let n = 0
  for await (const record of searchTrail(files, query)) {
    io.stdout(format === 'csv' ? `${searchCsvRow(record)}\n` : `${JSON.stringify(record)}\n`)
    n += 1
  }
  const about = query.userId === undefined ? '' : ` about UserID ${query.userId}`
  io.stderr(
    `${n} ${n === 1 ? 'line' : 'lines'}${about} in ${files.length} ${files.length === 1 ? 'file' : 'files'}\n`,
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
