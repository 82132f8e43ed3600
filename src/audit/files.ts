/**
 * Reading audit files as bytes: lines are hashed as written, so nothing here
 * decodes text. Shared by the writer's recovery, `audit verify` and `audit search`.
 */
import { createReadStream } from 'node:fs'
import { type FileHandle, readdir } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

export interface FileLine {
  readonly bytes: Buffer
  /** False for a last line with no newline after it. */
  readonly terminated: boolean
}

const NEWLINE = 0x0a

/** Every line of `path` in order, without newlines; a file that ends without one yields an unterminated last line. */
export async function* fileLines(path: string): AsyncGenerator<FileLine> {
  let carry: Buffer[] = []
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let start = 0
    for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
      const piece = chunk.subarray(start, nl)
      yield {
        bytes: carry.length > 0 ? Buffer.concat([...carry, piece]) : Buffer.from(piece),
        terminated: true,
      }
      carry = []
      start = nl + 1
    }
    if (start < chunk.length) carry.push(chunk.subarray(start))
  }
  if (carry.length > 0) yield { bytes: Buffer.concat(carry), terminated: false }
}

export interface FileTail {
  /** The last line that ends with a newline, or null when there is none. */
  readonly lastLine: Buffer | null
  /** Bytes after the last newline (a torn line), empty when the file ends with one. */
  readonly fragment: Buffer
}

/** The end of an open file of `size` bytes, read backwards in steps until the last complete line is whole. */
export async function readTail(fh: FileHandle, size: number, step = 64 * 1024): Promise<FileTail> {
  let from = size
  let tail = Buffer.alloc(0)
  for (;;) {
    const start = Math.max(0, from - step)
    const piece = Buffer.alloc(from - start)
    if (piece.length > 0) await fh.read(piece, 0, piece.length, start)
    tail = Buffer.concat([piece, tail])
    from = start
    const lastNl = tail.lastIndexOf(NEWLINE)
    if (lastNl !== -1) {
      const before = lastNl === 0 ? -1 : tail.lastIndexOf(NEWLINE, lastNl - 1)
      if (before !== -1 || from === 0) {
        return { lastLine: tail.subarray(before + 1, lastNl), fragment: tail.subarray(lastNl + 1) }
      }
    } else if (from === 0) {
      return { lastLine: null, fragment: tail }
    }
  }
}

/** Name of the file that `file` becomes when rotated after line `lastSeq`. */
export function rotatedName(file: string, lastSeq: number): string {
  return `${file}.${String(lastSeq).padStart(12, '0')}`
}

/** `file` and its rotated predecessors, oldest first. */
export async function trailFiles(file: string): Promise<string[]> {
  const dir = dirname(file)
  const base = basename(file)
  const rotated = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d{12}$`)
  let names: string[] = []
  try {
    names = await readdir(dir)
  } catch {
    return [file]
  }
  const older = names.filter((n) => rotated.test(n)).sort()
  return [...older.map((n) => join(dir, n)), ...(names.includes(base) ? [file] : [])]
}
