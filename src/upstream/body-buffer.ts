/**
 * An upstream body received into memory the gateway owns, chunk by chunk as
 * it arrives, never joined at the end: one concatenation copies and
 * page-faults the whole body at once, ~200 ms of event loop per 200 MB
 * (SPEC 9). With a declared length the body is allocated once. Without one (a
 * chunked answer, like the emulator's streamed listing) the chunks are kept
 * while the body is small; from {@link GROWING_BODY_BYTES} on it moves into a
 * resizable ArrayBuffer that grows in place, reserving address space up to
 * the limit and committing pages as they are written.
 *
 * Not a SharedArrayBuffer, which would spare the listing worker its copy of
 * the body: Fastify sends a Buffer as bytes only when its memory is an
 * `ArrayBuffer` (lib/reply.js), and JSON-serializes any other.
 */

/** From this size a body without a declared length grows in place instead of being kept in chunks. */
export const GROWING_BODY_BYTES = 1024 * 1024
/** A declared length above this is allocated at once (a smaller body is a few chunks, joined). */
const PREALLOCATE_BYTES = 64 * 1024

/** ES2024's resizable ArrayBuffer (Node 20 has it; the TypeScript lib in use does not type it). */
interface ResizableArrayBuffer extends ArrayBuffer {
  resize(newLength: number): void
}
const Resizable = ArrayBuffer as unknown as new (
  length: number,
  options: { maxByteLength: number },
) => ResizableArrayBuffer

export class BodyBuffer {
  readonly #maxBytes: number
  /** The declared length's buffer; null: none declared (or too small to bother). */
  readonly #whole: Buffer | null = null
  #growing: ResizableArrayBuffer | null = null
  #filled = 0
  readonly #chunks: Buffer[] = []
  #size = 0

  /** `declared`: the Content-Length, or null; `maxBytes`: the most the caller accepts (it checks). */
  constructor(declared: number | null, maxBytes: number) {
    this.#maxBytes = maxBytes
    if (declared !== null && declared > PREALLOCATE_BYTES && declared <= maxBytes) {
      this.#whole = Buffer.allocUnsafeSlow(declared)
    }
  }

  /** Bytes received so far. */
  get size(): number {
    return this.#size
  }

  push(chunk: Buffer): void {
    this.#size += chunk.length
    const whole = this.#whole
    if (whole !== null) {
      if (this.#chunks.length === 0 && this.#filled + chunk.length <= whole.length) {
        chunk.copy(whole, this.#filled)
        this.#filled += chunk.length
      } else this.#chunks.push(chunk)
      return
    }
    if (this.#growing === null && this.#size >= GROWING_BODY_BYTES && this.#size <= this.#maxBytes) {
      this.#growing = new Resizable(0, { maxByteLength: this.#maxBytes })
      for (const c of this.#chunks.splice(0)) this.#append(c)
    }
    if (this.#growing !== null) this.#append(chunk)
    else this.#chunks.push(chunk)
  }

  /** The body: the memory it was received into when it all fit there, else the pieces joined. */
  body(): Buffer {
    if (this.#growing !== null) return Buffer.from(this.#growing, 0, this.#filled)
    const whole = this.#whole
    if (whole !== null && this.#chunks.length === 0) {
      return this.#filled === whole.length ? whole : whole.subarray(0, this.#filled)
    }
    // The declared length was wrong (an upstream bug), or the body is small: join what came, in order.
    const parts = whole === null ? this.#chunks : [whole.subarray(0, this.#filled), ...this.#chunks]
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, this.#size)
  }

  #append(chunk: Buffer): void {
    const growing = this.#growing as ResizableArrayBuffer
    growing.resize(this.#filled + chunk.length)
    new Uint8Array(growing, this.#filled, chunk.length).set(chunk)
    this.#filled += chunk.length
  }
}
