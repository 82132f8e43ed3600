/**
 * `ipdr-gateway audit verify FILE…` and `audit search` over the same files
 * (shared/SPEC.md 11). Files may be given in any order: they are put in chain
 * order by the `seq` of their first line, so a shell glob such as
 * `data/audit.jsonl*` works.
 */
import { type ChainProblem, ChainVerifier, parseLine } from './chain.js'
import { fileLines } from './files.js'

export interface VerifyReport {
  /** The chain over every line of every file is intact. */
  readonly ok: boolean
  /** The first problem; `tornTail` when it is only an incomplete last line. */
  readonly problem: ChainProblem | null
  readonly lines: number
  /** The files in the order checked. */
  readonly files: readonly string[]
  /** Seq and hash of the last good line. */
  readonly head: { seq: number; hash: string }
}

/** The files sorted by the seq of their first line (a file with no readable first line goes first). */
export async function inChainOrder(files: readonly string[]): Promise<string[]> {
  const firsts = await Promise.all(
    files.map(async (file) => {
      for await (const { bytes } of fileLines(file)) return parseLine(bytes)?.seq ?? 0
      return 0
    }),
  )
  return files
    .map((file, i) => ({ file, seq: firsts[i] as number }))
    .sort((a, b) => a.seq - b.seq)
    .map((f) => f.file)
}

export async function verifyTrail(
  files: readonly string[],
  options: { partial?: boolean } = {},
): Promise<VerifyReport> {
  const ordered = await inChainOrder(files)
  const verifier = new ChainVerifier(options)
  for (const file of ordered) {
    verifier.startFile(file)
    for await (const { bytes, terminated } of fileLines(file)) {
      verifier.line(bytes, terminated)
      if (verifier.problem) break
    }
    if (verifier.problem) break
  }
  const problem = verifier.finish()
  return { ok: problem === null, problem, lines: verifier.lines, files: ordered, head: verifier.head }
}

export interface SearchQuery {
  readonly userId: string
  /** Only lines at or after this instant (ms since the epoch). */
  readonly since?: number
}

/** The audit records about `userId`, oldest first; lines that are not records are passed over. */
export async function* searchTrail(
  files: readonly string[],
  query: SearchQuery,
): AsyncGenerator<Record<string, unknown>> {
  for (const file of await inChainOrder(files)) {
    for await (const { bytes } of fileLines(file)) {
      const parsed = parseLine(bytes)
      if (!parsed || parsed.record.UserID !== query.userId) continue
      if (query.since !== undefined) {
        const time = Date.parse(String(parsed.record.time))
        if (!(time >= query.since)) continue
      }
      yield parsed.record
    }
  }
}
