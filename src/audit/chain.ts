/**
 * The audit trail's line format and hash chain (shared/SPEC.md 11), pure: no
 * file I/O. A line is one JSON object on one line, `seq` then `prev` first, so
 * that even a line torn by a crash still shows where it belonged:
 *
 *     {"seq":7,"prev":"<sha256 hex of line 6's bytes>","time":"…","phase":"intent",…}
 *
 * `prev` of the very first line is 64 zeros; `seq` counts up by one across
 * rotated files. A torn fragment (a crash mid-line) is closed by the next start
 * with a `repair` line whose `prev` is the fragment's hash, so the chain never
 * needs history rewritten (src/audit/writer.ts).
 */
import { hash, type KeyObject, verify as verifySignature } from 'node:crypto'
import { basename } from 'node:path'

/** `prev` of the first line of a trail. */
export const GENESIS = '0'.repeat(64)

/** SHA-256 hex of a line's bytes, without its newline. */
export function lineHash(bytes: Uint8Array | string): string {
  // One-shot (Node 20.12+): no Hash object per line, a third of the cost of one.
  return hash('sha256', bytes, 'hex')
}

/** Everything a line carries but its place in the chain. */
export type AuditFields = Readonly<Record<string, unknown>>

/**
 * A line's fields already in JSON: the members of an object without its braces (`"a":1,"b":2`),
 * for lines that share most of their text (a write's intent and outcome, formatted once). Its
 * maker guarantees plain keys only: none of `seq`, `prev`, `time`, `instance`, none integer-like.
 */
export class JsonMembers {
  constructor(readonly text: string) {}
}

/** The bytes of line `seq` after the line whose hash is `prev`, without the newline. */
export function formatLine(seq: number, prev: string, fields: AuditFields): string {
  if (!('seq' in fields) && !('prev' in fields)) return joinLine(seq, prev, '', JSON.stringify(fields))
  const { seq: _s, prev: _p, ...rest } = fields
  return joinLine(seq, prev, '', JSON.stringify(rest))
}

/**
 * Line `seq` of a record written at `time` by `instance`: what
 * `formatLine(seq, prev, { time, instance, ...fields })` makes, without copying the fields twice
 * per line (issue 35). Integer-like keys come first in any object's order, so first in its JSON:
 * with one, or with a key the line sets itself, the fields are merged as an object merges them.
 */
export function formatRecord(
  seq: number,
  prev: string,
  time: string,
  instance: string,
  fields: AuditFields | JsonMembers,
): string {
  if (fields instanceof JsonMembers) {
    return joinLine(
      seq,
      prev,
      `,"time":${JSON.stringify(time)},"instance":${JSON.stringify(instance)}`,
      `{${fields.text}}`,
    )
  }
  const body = JSON.stringify(fields)
  if (
    'seq' in fields ||
    'prev' in fields ||
    'time' in fields ||
    'instance' in fields ||
    /^\{"\d/.test(body)
  ) {
    return formatLine(seq, prev, { time, instance, ...fields })
  }
  return joinLine(seq, prev, `,"time":${JSON.stringify(time)},"instance":${JSON.stringify(instance)}`, body)
}

/** `{"seq":…,"prev":"…"` then `head` (members, each after a comma) and the members of the JSON object `body`. */
function joinLine(seq: number, prev: string, head: string, body: string): string {
  return `{"seq":${seq},"prev":"${prev}"${head}${body.length > 2 ? `,${body.slice(1)}` : '}'}`
}

/** What a torn fragment must begin with (or be a beginning of) to have been line `seq` after `prev`. */
export function linePrefix(seq: number, prev: string): string {
  return `{"seq":${seq},"prev":"${prev}"`
}

/** True when `fragment` could be the start of line `seq` after `prev`. */
export function fitsAsTornLine(fragment: Buffer, seq: number, prev: string): boolean {
  const prefix = Buffer.from(linePrefix(seq, prev))
  const n = Math.min(prefix.length, fragment.length)
  return n > 0 && fragment.subarray(0, n).equals(prefix.subarray(0, n))
}

export interface ParsedLine {
  readonly seq: number
  readonly prev: string
  readonly phase: unknown
  readonly record: Record<string, unknown>
}

/** The line as an audit record, or null when it is not one (torn, edited into something else). */
export function parseLine(bytes: Buffer): ParsedLine | null {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    return null
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  const record = value as Record<string, unknown>
  const { seq, prev } = record
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return null
  if (typeof prev !== 'string' || !/^[0-9a-f]{64}$/.test(prev)) return null
  return { seq, prev, phase: record.phase, record }
}

/** A problem found by {@link ChainVerifier}: where, and what. */
export interface ChainProblem {
  readonly file: string
  /** 1-based line number in `file`. */
  readonly line: number
  readonly message: string
  /** True for an incomplete last line (a crash while writing it): the chain before it is intact. */
  readonly tornTail: boolean
}

/**
 * Checks lines one after the other, across files given in chain order.
 * Feed it every line (bytes without the newline) with `line()`, call
 * `endFile()` after each file, and `finish()` at the end; the first problem
 * stops it. A line that is not an audit record is accepted only as a torn
 * fragment that the following `repair` line names by its hash; at the very
 * end of the last file (no newline after it) it is reported as a torn tail.
 */
export class ChainVerifier {
  #prev: string
  #seq: number
  #file = ''
  #lineNo = 0
  #torn: { bytes: Buffer; line: number; hash: string } | null = null
  #problem: ChainProblem | null = null
  #lines = 0
  readonly #partial: boolean
  readonly #publicKey: KeyObject | null
  #checkpoints = 0
  /** Lines after the last checkpoint (not covered by a signature). */
  #sinceCheckpoint = 0

  /**
   * `partial`: the first line given may continue an earlier part of the trail
   * (rotated files archived elsewhere); by default it must be the trail's first.
   */
  constructor(options: { partial?: boolean; publicKey?: KeyObject | null } = {}) {
    this.#prev = GENESIS
    this.#seq = 0
    this.#partial = options.partial === true
    this.#publicKey = options.publicKey ?? null
  }

  /** Checkpoint lines checked (their signatures too, with a public key). */
  get checkpoints(): number {
    return this.#checkpoints
  }

  /** Lines after the last checkpoint: not covered by a signature. */
  get sinceCheckpoint(): number {
    return this.#sinceCheckpoint
  }

  get problem(): ChainProblem | null {
    return this.#problem
  }

  /** Lines checked. */
  get lines(): number {
    return this.#lines
  }

  /** The last good line's seq and hash: the head of the chain, worth keeping elsewhere. */
  get head(): { seq: number; hash: string } {
    return { seq: this.#seq, hash: this.#prev }
  }

  startFile(name: string): void {
    this.#file = name
    this.#lineNo = 0
  }

  /** `terminated`: the line ended with a newline. */
  line(bytes: Buffer, terminated: boolean): void {
    if (this.#problem) return
    this.#lineNo += 1
    this.#lines += 1
    const parsed = parseLine(bytes)
    if (this.#torn) {
      const torn = this.#torn
      this.#torn = null
      if (parsed === null || parsed.phase !== 'repair' || parsed.prev !== torn.hash) {
        this.#fail(
          torn.line,
          'not an audit record, and the next line does not repair it (edited or corrupted)',
        )
        return
      }
      this.#accept(parsed, bytes)
      return
    }
    if (parsed === null) {
      if (!fitsAsTornLine(bytes, this.#seq + 1, this.#prev)) {
        this.#fail(this.#lineNo, 'not an audit record of this chain (edited or corrupted)')
        return
      }
      if (!terminated) {
        this.#fail(this.#lineNo, 'torn: the last line is incomplete (a crash while writing it)', true)
        return
      }
      this.#torn = { bytes, line: this.#lineNo, hash: lineHash(bytes) }
      return
    }
    // The first line given may continue earlier files: with --partial, or when it is a checkpoint
    // (the first line of every rotated-to file, so what retention keeps verifies on its own).
    if (this.#lines === 1 && (this.#partial || parsed.phase === 'checkpoint')) {
      this.#prev = parsed.prev
      this.#seq = parsed.seq - 1
    }
    if (parsed.prev !== this.#prev) {
      this.#fail(
        this.#lineNo,
        this.#lines === 1 && parsed.prev !== GENESIS
          ? `the chain does not start here (seq ${parsed.seq}): give the earlier files too, or --partial`
          : 'prev is not the hash of the line before (it was edited, or a line was deleted or moved here)',
      )
      return
    }
    if (parsed.seq !== this.#seq + 1) {
      this.#fail(
        this.#lineNo,
        `seq ${parsed.seq} where ${this.#seq + 1} was due (a line was deleted or moved)`,
      )
      return
    }
    this.#accept(parsed, bytes)
  }

  /** Ends the input; a torn fragment left pending is a torn tail. */
  finish(): ChainProblem | null {
    if (!this.#problem && this.#torn) {
      this.#fail(this.#torn.line, 'torn: the last line is incomplete (a crash while writing it)', true)
    }
    return this.#problem
  }

  #accept(parsed: ParsedLine, bytes: Buffer): void {
    if (parsed.phase === 'checkpoint' || parsed.phase === 'gap') {
      const problem = this.#signedLineProblem(parsed)
      if (problem) {
        this.#fail(this.#lineNo, problem)
        return
      }
    }
    if (parsed.phase === 'gap') {
      const known = parsed.record.known as { seq?: unknown; hash?: unknown } | undefined
      this.#fail(
        this.#lineNo,
        `gap: at a start the trail was found shorter than its last checkpoint (seq ${String(known?.seq)}, sha256 ${String(known?.hash)}): lines were deleted or the file replaced`,
      )
      return
    }
    if (parsed.phase === 'checkpoint') {
      this.#checkpoints += 1
      this.#sinceCheckpoint = 0
    } else {
      this.#sinceCheckpoint += 1
    }
    this.#seq = parsed.seq
    this.#prev = lineHash(bytes)
  }

  /** A checkpoint or gap line's `head` and, with a public key, its signature; null when both hold. */
  #signedLineProblem(parsed: ParsedLine): string | null {
    const { head, time, instance, signature } = parsed.record
    if (head !== parsed.prev) return `${String(parsed.phase)}: head is not the hash of the line before`
    if (!this.#publicKey) return null
    if (typeof signature !== 'string' || typeof time !== 'string' || typeof instance !== 'string') {
      return `${String(parsed.phase)}: not signed`
    }
    const payload = checkpointPayload(instance, trailName(basename(this.#file)), parsed.seq, head, time)
    let ok = false
    try {
      ok = verifySignature(null, payload, this.#publicKey, Buffer.from(signature, 'base64'))
    } catch {
      ok = false
    }
    return ok
      ? null
      : `${String(parsed.phase)}: the signature does not verify with this public key (a line before it was changed and the chain recomputed, or another key signed it)`
  }

  #fail(line: number, message: string, tornTail = false): void {
    this.#problem = { file: this.#file, line, message, tornTail }
  }
}

/**
 * The bytes a checkpoint's (or a gap line's) Ed25519 signature covers (SPEC 14): the instance, the
 * trail's base name (the configured file's, which rotated files keep before their suffix), the
 * line's seq, the head (the SHA-256 of the line before it, its `prev`) and its time.
 */
export function checkpointPayload(
  instance: string,
  trail: string,
  seq: number,
  head: string,
  time: string,
): Buffer {
  return Buffer.from(JSON.stringify([instance, trail, seq, head, time]))
}

/** The trail's base name of a file: `audit.jsonl` for `audit.jsonl` and its rotated `audit.jsonl.000000001234`. */
export function trailName(fileBase: string): string {
  return fileBase.replace(/\.\d{12}$/, '')
}
