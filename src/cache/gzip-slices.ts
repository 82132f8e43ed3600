/**
 * gzip of a large body on several threads at once, as one gzip member (the
 * way pigz does it): the body is cut into slices, each deflated on libuv's
 * thread pool by its own compressor, every slice but the last ending with a
 * sync flush (a byte-aligned empty stored block, not final), so the pieces
 * concatenate into one valid deflate stream. The CRC-32 of the whole body is
 * computed on the loop a few MiB at a time meanwhile. Any gzip decoder reads
 * it; a slice cannot refer back into the previous one, which costs a few
 * hundred bytes per slice. At 217 MB on the 2-core machine: 2.2–2.4 s
 * against 4.7–5.0 s for one `zlib.gzip` (docs/performance.md).
 */
import { promisify } from 'node:util'
import zlib from 'node:zlib'

const deflateRawAsync = promisify(zlib.deflateRaw)

/** Bodies from this size on are compressed in slices; smaller ones are not worth the split. */
export const SLICED_GZIP_MIN_BYTES = 8 * 1024 * 1024
/**
 * Slices of a large body: libuv's thread pool has 4 threads by default (shared with file and DNS
 * work). Four beat two even on the 2-core bench machine: 2.2–2.4 s against 3.4–3.7 s at 217 MB.
 */
const SLICES = 4
/** CRC-32 input per loop turn: about 1.5 ms on the bench machine. */
const CRC_STEP_BYTES = 4 * 1024 * 1024

/** The slices a body of `bytes` is cut into: 1 below {@link SLICED_GZIP_MIN_BYTES}, else 4. */
export function gzipSlices(bytes: number): number {
  return bytes < SLICED_GZIP_MIN_BYTES ? 1 : SLICES
}

/**
 * `raw` gzip-compressed at `level` in `slices` pieces at once; one gzip member, the same bytes out of
 * any decoder. While `narrowUntil` is pending the slices are deflated one at a time (see
 * {@link deflateSlices}).
 */
export async function gzipInSlices(
  raw: Buffer,
  level: number,
  slices: number,
  narrowUntil: Promise<unknown> | null = null,
): Promise<Buffer> {
  const size = Math.max(1, Math.ceil(raw.length / slices))
  const pieces: Buffer[] = []
  for (let at = 0; at < raw.length || pieces.length === 0; at += size)
    pieces.push(raw.subarray(at, at + size))
  const deflated = deflateSlices(
    pieces.length,
    (i) =>
      deflateRawAsync(pieces[i] as Buffer, {
        level,
        finishFlush: i === pieces.length - 1 ? zlib.constants.Z_FINISH : zlib.constants.Z_SYNC_FLUSH,
      }),
    narrowUntil,
  )
  const crc = await crc32InSteps(raw)
  const body = await deflated
  // RFC 1952: ID1 ID2 CM=8 FLG=0 MTIME=0 XFL=0 OS=3 (Unix, as zlib writes it), then CRC32 and ISIZE.
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])
  const trailer = Buffer.alloc(8)
  trailer.writeUInt32LE(crc >>> 0, 0)
  trailer.writeUInt32LE(raw.length % 2 ** 32, 4)
  return Buffer.concat([header, ...body, trailer])
}

/**
 * Runs `deflate(0)` … `deflate(count - 1)`, all at once, or one at a time while `narrowUntil` is
 * pending and all the rest at once when it settles. The listing's index is built in a worker after
 * the fill, and single reads and filters wait for it, while a gzip client meanwhile only gets the
 * larger identity body: with four slices on the thread pool beside it, the index got a fifth of
 * two cores (at 5,000,000 customers it was ready 45 s after the fill instead of 23).
 */
export async function deflateSlices(
  count: number,
  deflate: (i: number) => Promise<Buffer>,
  narrowUntil: Promise<unknown> | null,
): Promise<Buffer[]> {
  const started: Promise<Buffer>[] = []
  const launch = (): Promise<Buffer> => {
    const made = deflate(started.length)
    started.push(made)
    return made
  }
  if (narrowUntil !== null) {
    let wide = false
    const widened = narrowUntil.then(
      () => {
        wide = true
      },
      () => {
        wide = true
      },
    )
    while (!wide && started.length < count) await Promise.race([launch(), widened])
  }
  while (started.length < count) launch()
  return Promise.all(started)
}

async function crc32InSteps(raw: Buffer): Promise<number> {
  let crc = 0
  for (let at = 0; at < raw.length; at += CRC_STEP_BYTES) {
    crc = zlib.crc32(raw.subarray(at, at + CRC_STEP_BYTES), crc)
    if (at + CRC_STEP_BYTES < raw.length) await new Promise<void>((resolve) => setImmediate(resolve))
  }
  return crc
}
