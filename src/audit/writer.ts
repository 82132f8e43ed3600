/**
 * The audit trail's writer (shared/SPEC.md 11): one append-only JSON-lines
 * file per instance, hash-chained (src/audit/chain.ts), rotated past
 * `maxBytes` with the chain continuing in the next file.
 *
 * Lines are appended in the order `append` is called. Callers wait for their
 * line to be written (and flushed to disk with `fsync`); lines that arrive
 * while a write is in progress go out together in the next one, so one
 * `fdatasync` covers many lines (group commit). A failed write rejects every
 * line of its batch and the next batch first re-reads the file's end, so the
 * chain always continues from what is really on disk. A line torn by a crash
 * (no newline after it) is closed at the next open with a `repair` line that
 * names its hash: history is appended to, never rewritten.
 *
 * One process per file: a hidden lock file next to it (`.NAME.lock` for `DIR/NAME`,
 * holding the pid, out of the way of a glob such as `audit.jsonl*`)
 * refuses a second writer, in this process or another live one.
 */

import { type KeyObject, sign } from 'node:crypto'
import { writeSync } from 'node:fs'
import { type FileHandle, mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import type { AuditHeadStore, HeadRecord } from '../store/audit-heads.js'
import {
  type AuditFields,
  checkpointPayload,
  formatLine,
  formatRecord,
  GENESIS,
  type JsonMembers,
  lineHash,
  parseLine,
} from './chain.js'
import { readTail, rotatedName, trailFiles } from './files.js'

export interface AuditTrailOptions {
  /** The file; created with its directory when missing. */
  readonly file: string
  /** `fdatasync` after each write, before anyone waiting on it is answered. Default false. */
  readonly fsync?: boolean
  /** Rotate before a line would take the file past this many bytes. Default 104857600. */
  readonly maxBytes?: number
  /** The `instance` field of every line. Default `hostname:pid`. */
  readonly instance?: string
  /** Clock for `time` (tests). */
  readonly now?: () => number
  /** Called when opening found and closed a torn last line. */
  readonly onRepair?: (info: { file: string; seq: number; bytes: number }) => void
  /**
   * An Ed25519 private key (`audit.signingKeyFile`): signed `checkpoint` lines at least every
   * `checkpointMs` while lines are written, first in each rotated-to file, and at a clean stop.
   * Default none: no checkpoint lines (the head is still kept beside the file).
   */
  readonly signingKey?: KeyObject | null
  /** `audit.checkpointSeconds` × 1000. Default 60000. */
  readonly checkpointMs?: number
  /**
   * `audit.retainDays`: rotated files whose newest line is older are deleted (at open and after each
   * rotation), never the current one. Default null: kept for ever. `audit.legalHold` passes null.
   */
  readonly retainDays?: number | null
  /**
   * Where the head is kept besides the file (SPEC 14: with a store, in Redis), so a trail whose file
   * and `.head` were both removed still gets its gap line. Best effort both ways.
   */
  readonly headStore?: AuditHeadStore | null
  /** Called with each rotated file deleted by retention. */
  readonly onRetention?: (file: string) => void
  /** Called with each group of lines once written (the off-host copy), in order; never awaited. */
  readonly onLines?: (lines: readonly string[]) => void
  /** Called when opening found the trail missing or shorter than the head kept beside it (a `gap` line follows). */
  readonly onGap?: (info: { file: string; known: HeadRecord; found: { seq: number; hash: string } }) => void
}

/** The audit file cannot be used: locked by another writer, or its end is not an audit record. */
// Not a GatewayError: the file's problem, logged for the operator; a required audit answers IPDR_GW_AUDIT_UNAVAILABLE from it (src/audit/write-audit.ts).
export class AuditFileError extends Error {
  override name = 'AuditFileError'
}

export const DEFAULT_AUDIT_MAX_BYTES = 104_857_600

interface Pending {
  readonly fields: AuditFields | JsonMembers
  readonly resolve: (seq: number) => void
  readonly reject: (err: unknown) => void
}

/** Paths this process writes, so a second trail on one file fails here too (the lock holds our own pid). */
const OPEN_FILES = new Set<string>()

export class AuditTrail {
  readonly file: string
  readonly instance: string
  readonly #fsync: boolean
  readonly #maxBytes: number
  readonly #now: () => number
  readonly #onRepair: AuditTrailOptions['onRepair']
  #fh: FileHandle | null = null
  #seq = 0
  #prev = GENESIS
  #size = 0
  #broken = true
  #queue: Pending[] = []
  #flushing: Promise<void> | null = null
  #closed = false
  readonly #signingKey: KeyObject | null
  readonly #checkpointMs: number
  readonly #onGap: AuditTrailOptions['onGap']
  readonly #onLines: AuditTrailOptions['onLines']
  readonly #retainDays: number | null
  readonly #headStore: AuditHeadStore | null
  readonly #onRetention: AuditTrailOptions['onRetention']
  /** When the head was last kept (ms on `now`), and lines written since. */
  #checkpointedAt = 0
  #sinceCheckpoint = 0
  #isoAt = Number.NaN
  #iso = ''

  private constructor(opts: AuditTrailOptions) {
    this.file = resolve(opts.file)
    this.instance = opts.instance ?? `${hostname()}:${process.pid}`
    this.#fsync = opts.fsync === true
    this.#maxBytes = opts.maxBytes ?? DEFAULT_AUDIT_MAX_BYTES
    this.#now = opts.now ?? Date.now
    this.#onRepair = opts.onRepair
    this.#signingKey = opts.signingKey ?? null
    this.#checkpointMs = opts.checkpointMs ?? 60_000
    this.#onGap = opts.onGap
    this.#onLines = opts.onLines
    this.#retainDays = opts.retainDays ?? null
    this.#headStore = opts.headStore ?? null
    this.#onRetention = opts.onRetention
  }

  /** Locks the file, reads its end and repairs a torn last line. Throws when the file cannot be used. */
  static async open(opts: AuditTrailOptions): Promise<AuditTrail> {
    const trail = new AuditTrail(opts)
    await trail.#lock()
    try {
      await trail.#recover()
      await trail.#checkGap()
      trail.#checkpointedAt = trail.#now()
      await trail.#retain()
    } catch (err) {
      // Closed here, not left to the garbage collector (Node 26 makes that an error).
      await trail.#fh?.close().catch(() => {})
      trail.#fh = null
      await trail.#unlock()
      throw err
    }
    return trail
  }

  /** `now` as an ISO 8601 string, made once per millisecond (a busy trail writes many lines in one). */
  #isoTime(): string {
    const now = this.#now()
    if (now !== this.#isoAt) {
      this.#isoAt = now
      this.#iso = new Date(now).toISOString()
    }
    return this.#iso
  }

  /** The seq and hash of the last line written. */
  get head(): { seq: number; hash: string } {
    return { seq: this.#seq, hash: this.#prev }
  }

  /** Appends one line; resolves with its `seq` once it is written (and synced with `fsync`). */
  append(fields: AuditFields | JsonMembers): Promise<number> {
    if (this.#closed) return Promise.reject(new AuditFileError('the audit trail is closed'))
    return new Promise((resolve, reject) => {
      this.#queue.push({ fields, resolve, reject })
      // The lines of one turn of the event loop go out in one write (issue 35: a write per line cost
      // a busy gateway a system call and a thread-pool round trip for each of a write's two lines).
      this.#flushing ??= new Promise<void>((r) => setImmediate(r)).then(() => this.#drain())
    })
  }

  /** Writes what is queued and a last checkpoint, then releases the file and its lock. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#flushing
    if (this.#sinceCheckpoint > 0 && !this.#broken) await this.#checkpoint().catch(() => {})
    await this.#fh?.close().catch(() => {})
    this.#fh = null
    await this.#unlock()
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue
      this.#queue = []
      try {
        if (this.#broken) await this.#recover()
        const seqs = await this.#write(batch.map((p) => p.fields))
        for (const [i, p] of batch.entries()) p.resolve(seqs[i] as number)
        this.#sinceCheckpoint += batch.length
        if (this.#now() - this.#checkpointedAt >= this.#checkpointMs) await this.#checkpoint()
      } catch (err) {
        // What reached the disk is unknown: the next batch re-reads the file's end first.
        this.#broken = true
        for (const p of batch) p.reject(err)
      }
    }
    this.#flushing = null
  }

  /** Formats and writes the lines, rotating on the way; the state moves only past bytes that were written. */
  async #write(list: readonly (AuditFields | JsonMembers)[]): Promise<number[]> {
    const seqs: number[] = []
    let chunk: Buffer[] = []
    let texts: string[] = []
    let chunkBytes = 0
    let seq = this.#seq
    let prev = this.#prev
    const flush = async () => {
      if (chunk.length === 0) return
      await this.#append(Buffer.concat(chunk, chunkBytes))
      this.#size += chunkBytes
      this.#seq = seq
      this.#prev = prev
      try {
        this.#onLines?.(texts)
      } catch {
        // The copy's trouble (counted there), never the trail's.
      }
      chunk = []
      texts = []
      chunkBytes = 0
    }
    for (const fields of list) {
      const text = formatRecord(seq + 1, prev, this.#isoTime(), this.instance, fields)
      const bytes = Buffer.from(`${text}\n`)
      if (this.#size + chunkBytes > 0 && this.#size + chunkBytes + bytes.length > this.#maxBytes) {
        await flush()
        await this.#rotate()
        // The new file begins with a signed checkpoint of everything before it, so the oldest file
        // kept after retention verifies on its own (SPEC 14).
        if (this.#signingKey) await this.#checkpoint()
        seq = this.#seq
        prev = this.#prev
        return seqs.concat(await this.#write(list.slice(seqs.length)))
      }
      seq += 1
      prev = lineHash(bytes.subarray(0, bytes.length - 1))
      chunk.push(bytes)
      texts.push(text)
      chunkBytes += bytes.length
      seqs.push(seq)
    }
    await flush()
    return seqs
  }

  async #append(bytes: Buffer): Promise<void> {
    const fh = this.#fh
    if (!fh) throw new AuditFileError('the audit file is not open')
    let written = 0
    if (!this.#fsync) {
      // Without fsync the batch goes to the page cache at once, on this thread, as pino's own
      // destination writes by default (sync: true): the thread pool's round trip cost a pinned
      // gateway a context switch per batch, about 10 µs, more than the write itself (issue 35).
      while (written < bytes.length) {
        const n = writeSync(fh.fd, bytes, written, bytes.length - written)
        if (n <= 0) throw new AuditFileError('the audit file accepted no bytes')
        written += n
      }
      return
    }
    while (written < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, written, bytes.length - written)
      if (bytesWritten <= 0) throw new AuditFileError('the audit file accepted no bytes')
      written += bytesWritten
    }
    if (this.#fsync) await fh.datasync()
  }

  /** The full file gets the name of its last line's seq; the chain continues in a new one. */
  async #rotate(): Promise<void> {
    const fh = this.#fh
    this.#fh = null
    await fh?.datasync()
    await fh?.close()
    await rename(this.file, rotatedName(this.file, this.#seq))
    this.#fh = await open(this.file, 'a+', 0o640)
    this.#size = 0
    await this.#retain()
  }

  /**
   * Deletes the rotated files whose newest line is older than `retainDays` (SPEC 14), oldest first,
   * stopping at the first one still within it: the trail stays one piece, and the oldest file kept
   * begins with a checkpoint (with a key), so what remains verifies. Best effort: a file it cannot
   * read or delete is kept.
   */
  async #retain(): Promise<void> {
    if (this.#retainDays === null) return
    const cutoff = this.#now() - this.#retainDays * 86_400_000
    const rotated = (await trailFiles(this.file)).filter((f) => f !== this.file)
    for (const file of rotated) {
      const newest = await newestTime(file)
      if (newest === null || newest >= cutoff) return
      try {
        await unlink(file)
        this.#onRetention?.(file)
      } catch {
        return
      }
    }
  }

  /** (Re)opens the file and takes the chain's state from its end; a torn last line gets its repair line. */
  async #recover(): Promise<void> {
    await this.#fh?.close().catch(() => {})
    this.#fh = null
    await mkdir(dirname(this.file), { recursive: true })
    const fh = await open(this.file, 'a+', 0o640)
    this.#fh = fh
    const { size } = await fh.stat()
    const tail = await readTail(fh, size)
    let seq = 0
    let prev = GENESIS
    if (tail.lastLine !== null) {
      const last = parseLine(tail.lastLine)
      if (last === null) {
        throw new AuditFileError(
          `${this.file}: the last complete line is not an audit record; check it with \`ipdr-gateway audit verify\` and move the file away to start a new trail`,
        )
      }
      seq = last.seq
      prev = lineHash(tail.lastLine)
    }
    this.#seq = seq
    this.#prev = prev
    this.#size = size
    if (tail.fragment.length > 0) {
      // The fragment stays as it is; a repair line after it takes it into the chain.
      const repair = formatLine(seq + 1, lineHash(tail.fragment), {
        time: new Date(this.#now()).toISOString(),
        instance: this.instance,
        phase: 'repair',
        torn: { bytes: tail.fragment.length },
      })
      const bytes = Buffer.from(`\n${repair}\n`)
      await this.#append(bytes)
      this.#size += bytes.length
      this.#seq = seq + 1
      this.#prev = lineHash(repair)
      this.#onRepair?.({ file: this.file, seq: seq + 1, bytes: tail.fragment.length })
    }
    this.#broken = false
  }

  get #headFile(): string {
    return join(dirname(this.file), `.${basename(this.file)}.head`)
  }

  /**
   * Keeps the head beside the file and, with a signing key, appends a signed `checkpoint` line
   * (SPEC 14). Best effort for the head file: a trail that cannot keep it still writes.
   */
  async #checkpoint(): Promise<void> {
    this.#checkpointedAt = this.#now()
    this.#sinceCheckpoint = 0
    let signature: string | undefined
    if (this.#signingKey) {
      const time = new Date(this.#now()).toISOString()
      const seq = this.#seq + 1
      const head = this.#prev
      signature = this.#sign(seq, head, time)
      await this.#write([{ time, phase: 'checkpoint', head, signature }])
    }
    const record: HeadRecord = {
      seq: this.#seq,
      hash: this.#prev,
      time: new Date(this.#now()).toISOString(),
      instance: this.instance,
      ...(signature === undefined ? {} : { signature }),
    }
    const tmp = `${this.#headFile}.tmp`
    await writeFile(tmp, `${JSON.stringify(record)}\n`, { mode: 0o640 })
      .then(() => rename(tmp, this.#headFile))
      .catch(() => {})
    // Not awaited: a store that is away must not hold the trail up.
    this.#headStore?.set(this.instance, basename(this.file), record).catch(() => {})
  }

  #sign(seq: number, head: string, time: string): string {
    const payload = checkpointPayload(this.instance, basename(this.file), seq, head, time)
    return sign(null, payload, this.#signingKey as KeyObject).toString('base64')
  }

  /**
   * At open: a trail shorter than the head kept beside it (lines deleted, the file emptied or
   * replaced) gets a `gap` line naming the last head it knew, signed with a key: never a silent
   * new chain (SPEC 14).
   */
  async #checkGap(): Promise<void> {
    const text = await readFile(this.#headFile, 'utf8').catch(() => null)
    let beside: HeadRecord | null = null
    try {
      beside = text === null ? null : (JSON.parse(text) as HeadRecord)
    } catch {
      beside = null
    }
    const stored = await this.#headStore?.get(this.instance, basename(this.file)).catch(() => null)
    // The further of the two: an attacker who rewrote or removed one did not reach the other.
    const heads = [beside, stored ?? null].filter(
      (h): h is HeadRecord => h !== null && typeof h.seq === 'number' && typeof h.hash === 'string',
    )
    if (heads.length === 0) return
    const known = heads.reduce((a, b) => (b.seq > a.seq ? b : a))
    if (this.#seq >= known.seq) return
    const found = { seq: this.#seq, hash: this.#prev }
    const time = new Date(this.#now()).toISOString()
    const head = this.#prev
    const signature = this.#signingKey ? this.#sign(this.#seq + 1, head, time) : undefined
    await this.#write([
      {
        time,
        phase: 'gap',
        head,
        known: { seq: known.seq, hash: known.hash, time: known.time },
        found,
        ...(signature === undefined ? {} : { signature }),
      },
    ])
    this.#onGap?.({ file: this.file, known, found })
    await this.#checkpoint()
  }

  get #lockFile(): string {
    return join(dirname(this.file), `.${basename(this.file)}.lock`)
  }

  async #lock(): Promise<void> {
    if (OPEN_FILES.has(this.file)) {
      throw new AuditFileError(
        `${this.file} is already written by this process: give each instance its own audit file`,
      )
    }
    await mkdir(dirname(this.file), { recursive: true })
    for (let attempt = 0; ; attempt++) {
      try {
        await writeFile(this.#lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o640 })
        OPEN_FILES.add(this.file)
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      }
      const holder = Number((await readFile(this.#lockFile, 'utf8').catch(() => '')).trim())
      if (Number.isSafeInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new AuditFileError(
          `${this.file} is written by process ${holder} (${this.#lockFile}): give each instance its own audit file (--audit-file / AUDIT_FILE)`,
        )
      }
      // Left by a process that is gone (a crash, kill -9): ours now.
      await unlink(this.#lockFile).catch(() => {})
    }
  }

  async #unlock(): Promise<void> {
    if (!OPEN_FILES.delete(this.file)) return
    await unlink(this.#lockFile).catch(() => {})
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The `time` of a file's last complete line, in ms; null when it has none or cannot be read. */
async function newestTime(file: string): Promise<number | null> {
  let fh: FileHandle | null = null
  try {
    fh = await open(file, 'r')
    const { size } = await fh.stat()
    const tail = await readTail(fh, size)
    const last = tail.lastLine === null ? null : parseLine(tail.lastLine)
    const time = last ? Date.parse(String(last.record.time)) : Number.NaN
    return Number.isFinite(time) ? time : null
  } catch {
    return null
  } finally {
    await fh?.close().catch(() => {})
  }
}
