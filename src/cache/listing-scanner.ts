/**
 * Where a listing's bytes are checked: on the event loop when small (a worker
 * round trip costs more than the scan), in a worker pool when large, so a fill
 * of a million customers never stalls other requests (SPEC 9). One pool per
 * app, closed with it; at most one worker per spare core.
 */
import { availableParallelism } from 'node:os'
import type { MessagePort } from 'node:worker_threads'
import { Piscina } from 'piscina'
import type { ResourceName } from '../resources.js'
import { strongEtag } from './etag.js'
import type { IndexParts } from './listing-index.js'
import { scanListing } from './listing-scan.js'
import type { IndexResult, ScanResult } from './listing-worker.js'

/** Below this, the scan runs inline: about 2 ms of work, less than a worker round trip with its transfers. */
export const INLINE_SCAN_BYTES = 1024 * 1024

/**
 * How much lower than the process the listing workers run (nice +10: about a tenth of a normal
 * thread's CPU share when both want a core). On a busy gateway the event loop answering requests
 * goes first, a fill's scan and index after it. A gzip variant asked for meanwhile takes one thread
 * of the pool until the index is in (`deflateSlices`, docs/decisions.md "The index before the gzip
 * variant"): with all four slices beside a worker at +10 the index got a fifth of two cores.
 * Nice is per thread on Linux
 * (setpriority(2)); piscina applies it in each worker through its optional `@napi-rs/nice`, and
 * runs the workers at the process's priority where that is missing.
 */
export const LISTING_WORKER_NICE = 10

export interface ScannedListing {
  readonly raw: Buffer
  readonly offsets: Uint32Array
  readonly etag: string
  /** Being built by the worker after the scan, for a large listing; null: built on first use. */
  readonly index: Promise<IndexParts> | null
}

export interface ListingScanner {
  /**
   * The record offsets of `raw`, and the bytes to keep (the same memory: moved to the worker and
   * back when large; `raw` must not be used afterwards). Rejects with the scan's message.
   */
  scan(raw: Buffer, resource: ResourceName): Promise<ScannedListing>
  /**
   * The index of bytes already checked (a patched listing, SPEC 19), built off the event loop; `bytes`
   * must own its ArrayBuffer, which is moved (pass a copy). Null: build it on first use.
   */
  index?(bytes: Buffer, offsets: Uint32Array, resource: ResourceName): Promise<IndexParts> | null
  close(): Promise<void>
}

/** Scans inline, whatever the size (tests, and a pool that could not start). */
export const INLINE_SCANNER: ListingScanner = {
  async scan(raw) {
    return { raw, offsets: scanListing(raw), etag: strongEtag(raw), index: null }
  },
  async close() {},
}

export function listingScannerPool(): ListingScanner {
  // The worker file sits beside this one: .ts under the test loader, .js once built.
  const here = import.meta.url
  const filename = new URL(`./listing-worker${here.endsWith('.ts') ? '.ts' : '.js'}`, here).href
  let pool: Piscina | null = null
  const open = () =>
    (pool ??= new Piscina({
      filename,
      minThreads: 0,
      maxThreads: Math.max(1, Math.min(2, availableParallelism() - 1)),
      idleTimeout: 30_000,
      // A worker goes on indexing after it has answered the scan: its event loop must keep running
      // between tasks (piscina's default 'sync' atomics pause an idle worker outright).
      atomics: 'disabled',
      // Below the event loop and zlib's threads: the scan, digest and index are the work that can wait
      // (see LISTING_WORKER_NICE).
      niceIncrement: LISTING_WORKER_NICE,
    }))
  return {
    async scan(raw, resource) {
      if (raw.length < INLINE_SCAN_BYTES) return INLINE_SCANNER.scan(raw, resource)
      // Move only memory the Buffer owns whole (a large body is its own ArrayBuffer; a slice is copied).
      const owned =
        raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength && raw.buffer instanceof ArrayBuffer
          ? raw.buffer
          : Uint8Array.prototype.slice.call(raw).buffer
      const result = (await open().run({ bytes: owned, resource }, { transferList: [owned] })) as ScanResult
      const back = Buffer.from(result.bytes)
      if (!result.ok) throw new ScanFailure(result.message, back)
      return { raw: back, offsets: result.offsets, etag: result.etag, index: indexFrom(result.port) }
    },
    index(bytes, offsets, resource) {
      const owned = bytes.buffer
      if (bytes.length < INLINE_SCAN_BYTES || bytes.byteOffset !== 0 || !(owned instanceof ArrayBuffer))
        return null
      const task = { bytes: owned, offsets, resource }
      const run = open().run(task, { name: 'index', transferList: [owned] }) as Promise<IndexResult>
      const parts = run.then((r) => {
        if ('error' in r) throw new Error(r.error)
        return r.index
      })
      parts.catch(() => {})
      return parts
    },
    async close() {
      await pool?.destroy()
      pool = null
    },
  }
}

/** The index the worker posts on `port` once built (after it has answered the scan). */
function indexFrom(port: MessagePort): Promise<IndexParts> {
  const parts = new Promise<IndexParts>((resolve, reject) => {
    let settled = false
    port.once('message', (msg: { index?: IndexParts; error?: string }) => {
      settled = true
      port.close()
      if (msg.index) resolve(msg.index)
      else reject(new Error(msg.error ?? 'the listing worker could not index the listing'))
    })
    // The pool was closed (the app stopping) before the index came.
    port.once('close', () => {
      if (!settled) reject(new Error('the listing worker stopped before the index was built'))
    })
    port.unref()
  })
  // Whoever takes the index handles a failure (falling back to building it); none is unhandled.
  parts.catch(() => {})
  return parts
}

/** The scan found the bytes invalid; `message` says where. */
// Not a GatewayError: carries the bytes back from the worker; the listing source answers IPDR_GW_UPSTREAM_BAD_RESPONSE, a sync input 400.
export class ScanFailure extends Error {
  override name = 'ScanFailure'
  constructor(
    message: string,
    readonly raw: Buffer,
  ) {
    super(message)
  }
}
