/**
 * `ipdr-gateway audit verify FILE…` and `audit search` over the same files
 * (shared/SPEC.md 11). Files may be given in any order: they are put in chain
 * order by the `seq` of their first line, so a shell glob such as
 * `data/audit.jsonl*` works.
 */
import type { KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { type ChainProblem, ChainVerifier, lineHash, parseLine, trailName } from './chain.js'
import { fileLines } from './files.js'

export interface ChainReport {
  /** The instance whose chain this is (`instance` of its lines); '' when no line names one. */
  readonly instance: string
  /** The chain over every line of its files is intact. */
  readonly ok: boolean
  /** The first problem; `tornTail` when it is only an incomplete last line. */
  readonly problem: ChainProblem | null
  readonly lines: number
  /** The files in the order checked. */
  readonly files: readonly string[]
  /** Seq and hash of the last good line. */
  readonly head: { seq: number; hash: string }
  /** Checkpoint lines checked (signatures too, with a public key). */
  readonly checkpoints: number
  /** Lines after the last checkpoint, which no signature covers. */
  readonly sinceCheckpoint: number
}

export interface VerifyReport {
  /** Every instance's chain is intact. */
  readonly ok: boolean
  /** One per instance, each verified on its own (SPEC 14): rotated files continue their instance's chain. */
  readonly chains: readonly ChainReport[]
}

/** The first line's seq and instance of each file (a file with no readable first line: seq 0, instance ''). */
async function firstLines(files: readonly string[]) {
  return Promise.all(
    files.map(async (file) => {
      for await (const { bytes } of fileLines(file)) {
        const parsed = parseLine(bytes)
        const instance = typeof parsed?.record.instance === 'string' ? parsed.record.instance : ''
        return { file, seq: parsed?.seq ?? 0, instance }
      }
      return { file, seq: 0, instance: '' }
    }),
  )
}

/** The files sorted by the seq of their first line (a file with no readable first line goes first). */
export async function inChainOrder(files: readonly string[]): Promise<string[]> {
  return (await firstLines(files)).sort((a, b) => a.seq - b.seq).map((f) => f.file)
}

/** What the off-host copy holds: per instance, each shipped line's hash by seq, and the last seq. */
export interface ShippedCopy {
  readonly byInstance: ReadonlyMap<
    string,
    { readonly hashes: ReadonlyMap<number, string>; readonly last: number }
  >
}

/**
 * Reads a syslog receiver's copy (`audit verify --shipped`): one received message per line, as RFC
 * 5424 text the way rsyslog stores it or the bare line; the audit line is what starts at `{"seq":`.
 */
export async function readShippedCopy(path: string): Promise<ShippedCopy> {
  const byInstance = new Map<string, { hashes: Map<number, string>; last: number }>()
  const marker = Buffer.from('{"seq":')
  for await (const { bytes } of fileLines(path)) {
    const at = bytes.indexOf(marker)
    if (at < 0) continue
    const line = bytes.subarray(at)
    const parsed = parseLine(line)
    if (!parsed) continue
    const instance = typeof parsed.record.instance === 'string' ? parsed.record.instance : ''
    let of = byInstance.get(instance)
    if (!of) {
      of = { hashes: new Map(), last: 0 }
      byInstance.set(instance, of)
    }
    of.hashes.set(parsed.seq, lineHash(line))
    of.last = Math.max(of.last, parsed.seq)
  }
  return { byInstance }
}

export async function verifyTrail(
  files: readonly string[],
  options: { partial?: boolean; publicKey?: KeyObject | null; shipped?: ShippedCopy | null } = {},
): Promise<VerifyReport> {
  const firsts = await firstLines(files)
  const byInstance = new Map<string, { file: string; seq: number }[]>()
  for (const f of firsts) byInstance.set(f.instance, [...(byInstance.get(f.instance) ?? []), f])
  // A file whose first line names no instance (unreadable, empty): checked with the others when it
  // is the only group, else on its own, where it is reported.
  const chains: ChainReport[] = []
  for (const [instance, group] of [...byInstance].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const ordered = group.sort((a, b) => a.seq - b.seq).map((f) => f.file)
    const verifier = new ChainVerifier(options)
    const shipped = options.shipped?.byInstance.get(instance)
    let differs: ChainProblem | null = null
    for (const file of ordered) {
      verifier.startFile(file)
      let lineNo = 0
      for await (const { bytes, terminated } of fileLines(file)) {
        lineNo += 1
        verifier.line(bytes, terminated)
        if (verifier.problem) break
        // The head is the line just accepted: compared with its shipped copy in the same pass.
        const { seq, hash } = verifier.head
        const copy = shipped?.hashes.get(seq)
        if (copy !== undefined && copy !== hash) {
          differs = {
            file,
            line: lineNo,
            message: `seq ${seq} differs from the off-host copy (the line was changed after it was shipped)`,
            tornTail: false,
          }
          break
        }
      }
      if (verifier.problem || differs) break
    }
    const last = verifier.head.seq
    const problem =
      verifier.finish() ??
      differs ??
      (shipped && last < shipped.last
        ? {
            file: ordered[ordered.length - 1] ?? '',
            line: 0,
            message: `truncated: the trail ends at seq ${last}, the off-host copy holds lines up to seq ${shipped.last}`,
            tornTail: false,
          }
        : null) ??
      (await truncation(ordered, last))
    chains.push({
      instance,
      ok: problem === null,
      problem,
      lines: verifier.lines,
      files: ordered,
      head: verifier.head,
      checkpoints: verifier.checkpoints,
      sinceCheckpoint: verifier.sinceCheckpoint,
    })
  }
  // An instance the copy holds lines of, and no file given does: its trail is gone or emptied.
  for (const [instance, shipped] of options.shipped?.byInstance ?? []) {
    if (chains.some((c) => c.instance === instance)) continue
    const empty = firsts.filter((f) => f.instance === '').map((f) => f.file)
    chains.push({
      instance,
      ok: false,
      problem: {
        file: empty[0] ?? '(no file)',
        line: 0,
        message: `truncated: the off-host copy holds ${instance}'s lines up to seq ${shipped.last}; the files given hold none${empty.length > 0 ? ' (empty)' : ''}`,
        tornTail: false,
      },
      lines: 0,
      files: empty,
      head: { seq: 0, hash: '' },
      checkpoints: 0,
      sinceCheckpoint: 0,
    })
  }
  return { ok: chains.every((c) => c.ok), chains }
}

/**
 * A trail that ends before the head its writer kept beside it (`.NAME.head`, at each checkpoint and
 * clean stop): its last lines were deleted, or the file emptied. The off-host copy answers the same
 * question when the head file went too.
 */
async function truncation(ordered: readonly string[], lastSeq: number): Promise<ChainProblem | null> {
  const last = ordered[ordered.length - 1]
  if (last === undefined) return null
  const headFile = join(dirname(last), `.${trailName(basename(last))}.head`)
  let seq: unknown
  try {
    seq = (JSON.parse(await readFile(headFile, 'utf8')) as { seq?: unknown }).seq
  } catch {
    return null
  }
  if (typeof seq !== 'number' || seq <= lastSeq) return null
  return {
    file: last,
    line: 0,
    message: `truncated: the trail ends at seq ${lastSeq}, but its writer recorded seq ${seq} (${headFile}): lines were deleted`,
    tornTail: false,
  }
}

export interface SearchQuery {
  /** A customer: lines whose `UserID` is it, or whose `userIds` name it (an access line). */
  readonly userId?: string
  readonly consumer?: string
  /** `access`, `intent`, `outcome`, … */
  readonly phase?: string
  /** Only lines at or after this instant (ms since the epoch). */
  readonly since?: number
  /** Only lines before this instant. */
  readonly until?: number
}

function matches(record: Record<string, unknown>, query: SearchQuery): boolean {
  if (query.userId !== undefined) {
    const ids = record.userIds
    const named = Array.isArray(ids) && ids.includes(query.userId)
    if (record.UserID !== query.userId && !named) return false
  }
  if (query.consumer !== undefined && record.consumer !== query.consumer) return false
  if (query.phase !== undefined && record.phase !== query.phase) return false
  if (query.since !== undefined || query.until !== undefined) {
    const time = Date.parse(String(record.time))
    if (query.since !== undefined && !(time >= query.since)) return false
    if (query.until !== undefined && !(time < query.until)) return false
  }
  return true
}

/**
 * The audit records that match, from every file given (several instances', rotated ones), merged
 * by time, oldest first (lines of one instance keep their order); lines that are not records are
 * passed over. Only the matches are held.
 */
export async function* searchTrail(
  files: readonly string[],
  query: SearchQuery,
): AsyncGenerator<Record<string, unknown>> {
  const found: { time: number; order: number; record: Record<string, unknown> }[] = []
  for (const file of await inChainOrder(files)) {
    for await (const { bytes } of fileLines(file)) {
      const parsed = parseLine(bytes)
      if (!parsed || !matches(parsed.record, query)) continue
      found.push({
        time: Date.parse(String(parsed.record.time)) || 0,
        order: found.length,
        record: parsed.record,
      })
    }
  }
  found.sort((a, b) => a.time - b.time || a.order - b.order)
  for (const f of found) yield f.record
}

/** The columns of `audit search --format csv`. */
export const SEARCH_CSV_COLUMNS = [
  'time',
  'instance',
  'seq',
  'phase',
  'consumer',
  'client',
  'trisulUser',
  'context',
  'resource',
  'operation',
  'UserID',
  'count',
  'status',
  'requestId',
] as const

/** One record as a CSV row (RFC 4180) of {@link SEARCH_CSV_COLUMNS}. */
export function searchCsvRow(record: Record<string, unknown>): string {
  return SEARCH_CSV_COLUMNS.map((c) => {
    const v = record[c]
    const text = v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v)
    return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
  }).join(',')
}
