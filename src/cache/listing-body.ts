/**
 * One representation of a listing: its bytes, its strong ETag and its
 * compressed variants. A variant is made the first time a client asks for it,
 * on libuv's thread pool (zlib's async API), and memoized: concurrent askers
 * share one compression, later ones get the Buffer. Lazy rather than eager
 * because most fills are never asked for both codings, and an eager brotli
 * pass over a 20 MB listing costs ~0.4 s of CPU per fill (docs/cache.md).
 */
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import type { ContentEncoding } from './encoding.js'
import { gzipInSlices, gzipSlices } from './gzip-slices.js'

const gzipAsync = promisify(zlib.gzip)
const brotliAsync = promisify(zlib.brotliCompress)

/** zlib's default level, for a body compressed in one piece: level 9 saves ~2% more at twice the CPU. */
export const GZIP_LEVEL = 6
/**
 * A body large enough to be compressed in slices (from 8 MiB): level 5. At 217 MB (1,000,000
 * customers) its output is 1.6 % larger than level 6's and it takes 23 % less CPU (3.9 against
 * 5.1 s). Until the variant is ready every gzip client is sent the identity body, five times
 * larger, so at this size being ready sooner saves more bytes than the last level would.
 */
export const LARGE_GZIP_LEVEL = 5
/**
 * Brotli's default quality (11) takes tens of seconds on a 20 MB listing;
 * quality 5 is slightly smaller than gzip -6 in about 1.5× its time.
 */
const BROTLI_QUALITY = 5

export type CompressedEncoding = Exclude<ContentEncoding, 'identity'>

/** What a route needs to send a listing (full or redacted). */
export interface ListingRepresentation {
  /** The exact bytes of the identity representation. */
  readonly raw: Buffer
  /** Strong ETag of `raw`. */
  readonly etag: string
  /** The ETag of the representation sent with `encoding` (each coding is its own representation, RFC 9110 8.8.3.3). */
  etagFor(encoding: ContentEncoding): string
  /** The bytes for `encoding`; compressed variants are made once and memoized. */
  encoded(encoding: ContentEncoding): Promise<Buffer>
  /** The bytes for `encoding` if already made (identity always is). */
  peekEncoded(encoding: ContentEncoding): Buffer | undefined
}

export class ListingBody implements ListingRepresentation {
  readonly raw: Buffer
  readonly etag: string
  readonly #variants: Partial<Record<CompressedEncoding, Buffer>> = {}
  readonly #pending: Partial<Record<CompressedEncoding, Promise<Buffer>>> = {}
  readonly #onGrow: (() => void) | undefined
  readonly #compress: Compressor
  #narrowUntil: Promise<unknown> | null = null

  /**
   * `onGrow` is called after a variant is stored, so the owner can re-account
   * its size. `compress` defaults to zlib (gzip level 6, 5 from 8 MiB; brotli quality 5).
   */
  constructor(raw: Buffer, etag: string, onGrow?: () => void, compress: Compressor = compressWithZlib) {
    this.raw = raw
    this.etag = etag
    this.#onGrow = onGrow
    this.#compress = compress
  }

  /** Bytes held: the raw body plus the variants made so far. */
  get bytes(): number {
    return this.raw.length + (this.#variants.gzip?.length ?? 0) + (this.#variants.br?.length ?? 0)
  }

  etagFor(encoding: ContentEncoding): string {
    if (encoding === 'identity') return this.etag
    return `${this.etag.slice(0, -1)}.${encoding === 'gzip' ? 'gz' : 'br'}"`
  }

  peekEncoded(encoding: ContentEncoding): Buffer | undefined {
    return encoding === 'identity' ? this.raw : this.#variants[encoding]
  }

  /** Compression started while `work` is pending takes one thread until it settles (the listing's index: `deflateSlices`). */
  narrowWhile(work: Promise<unknown>): void {
    const narrow = work.then(
      () => {
        if (this.#narrowUntil === narrow) this.#narrowUntil = null
      },
      () => {
        if (this.#narrowUntil === narrow) this.#narrowUntil = null
      },
    )
    this.#narrowUntil = narrow
  }

  encoded(encoding: ContentEncoding): Promise<Buffer> {
    if (encoding === 'identity') return Promise.resolve(this.raw)
    const done = this.#variants[encoding]
    if (done) return Promise.resolve(done)
    const pending = this.#pending[encoding]
    if (pending) return pending
    const made = this.#compress(this.raw, encoding, { narrowUntil: this.#narrowUntil }).then(
      (bytes) => {
        this.#variants[encoding] = bytes
        delete this.#pending[encoding]
        this.#onGrow?.()
        return bytes
      },
      (err: unknown) => {
        // Not memoized: a later request tries again.
        delete this.#pending[encoding]
        throw err
      },
    )
    this.#pending[encoding] = made
    return made
  }
}

export interface CompressOptions {
  /** While pending, use one thread (a large gzip's slices one at a time); null: no such limit. */
  readonly narrowUntil: Promise<unknown> | null
}

export type Compressor = (
  raw: Buffer,
  encoding: CompressedEncoding,
  options: CompressOptions,
) => Promise<Buffer>

/** The default `Compressor`: zlib's async API, off the event loop; a large body's gzip on several threads. */
export function compressWithZlib(
  raw: Buffer,
  encoding: CompressedEncoding,
  options: CompressOptions = { narrowUntil: null },
): Promise<Buffer> {
  if (encoding === 'gzip') {
    const slices = gzipSlices(raw.length)
    return slices > 1
      ? gzipInSlices(raw, LARGE_GZIP_LEVEL, slices, options.narrowUntil)
      : gzipAsync(raw, { level: GZIP_LEVEL })
  }
  return brotliAsync(raw, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY,
      [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
    },
  })
}
