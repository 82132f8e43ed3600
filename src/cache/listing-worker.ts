/**
 * The listing worker (a piscina task): validates a large listing's bytes, finds
 * its records and digests its ETag off the event loop. The bytes arrive and go back as a
 * transferred ArrayBuffer (moved, not copied) and the offsets travel as a
 * transferred Uint32Array, never as objects (structured clone of a million
 * objects costs seconds). Pure apart from the transfer.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads'
import { Piscina } from 'piscina'
import { RESOURCE_BY_NAME, type ResourceName } from '../resources.js'
import { strongEtag } from './etag.js'
import { buildIndexParts, type IndexParts, indexTransferList } from './listing-index.js'
import { ListingScanError, scanListing } from './listing-scan.js'

export interface ScanTask {
  readonly bytes: ArrayBuffer
  readonly resource: ResourceName
}

export type ScanResult =
  | {
      readonly ok: true
      readonly bytes: ArrayBuffer
      readonly offsets: Uint32Array
      readonly etag: string
      /** Where the index is posted once built: `{ index }` or `{ error }`. */
      readonly port: MessagePort
    }
  | { readonly ok: false; readonly bytes: ArrayBuffer; readonly message: string }

export interface IndexTask {
  /** A copy of a patched listing's bytes (moved here). */
  readonly bytes: ArrayBuffer
  readonly offsets: Uint32Array
  readonly resource: ResourceName
}

export type IndexResult = { readonly index: IndexParts } | { readonly error: string }

/** The reply with its buffers in the transfer list (piscina's Transferable protocol). */
function moved(value: ScanResult): ScanResult {
  const buffers: ArrayBuffer[] = [value.bytes]
  const transfer: (ArrayBuffer | MessagePort)[] = buffers
  if (value.ok) transfer.push(value.offsets.buffer as ArrayBuffer, value.port)
  const reply = { [Piscina.transferableSymbol]: transfer, [Piscina.valueSymbol]: value }
  return Piscina.move(reply as unknown as ArrayBuffer) as unknown as ScanResult
}

export default function scan(task: ScanTask): ScanResult {
  const view = new Uint8Array(task.bytes)
  try {
    const offsets = scanListing(view)
    // The digest too: SHA-256 of 200 MB is half a second the event loop need not spend.
    const etag = strongEtag(Buffer.from(task.bytes))
    // The index takes seconds at a million records: answer first (the listing can be served), then
    // build it from copies (the originals go back) and post it when done.
    const bytes = view.slice()
    const kept = offsets.slice()
    const { port1, port2 } = new MessageChannel()
    setImmediate(() => {
      try {
        const index = buildIndexParts(bytes, kept, RESOURCE_BY_NAME[task.resource])
        port1.postMessage({ index }, indexTransferList(index))
      } catch (err) {
        port1.postMessage({ error: err instanceof Error ? err.message : 'indexing failed' })
      }
      // Not closed here: a close can overtake the message; the receiver closes the channel.
    })
    return moved({ ok: true, bytes: task.bytes, offsets, etag, port: port2 })
  } catch (err) {
    const message = err instanceof ListingScanError ? err.message : 'the listing could not be indexed'
    return moved({ ok: false, bytes: task.bytes, message })
  }
}

/**
 * The index of a patched listing (SPEC 19), whose bytes were checked as they were made, from a copy
 * of them; sent back as transferred buffers.
 */
export function index(task: IndexTask): IndexResult {
  try {
    const parts = buildIndexParts(new Uint8Array(task.bytes), task.offsets, RESOURCE_BY_NAME[task.resource])
    const reply = {
      [Piscina.transferableSymbol]: indexTransferList(parts),
      [Piscina.valueSymbol]: { index: parts },
    }
    return Piscina.move(reply as unknown as ArrayBuffer) as unknown as IndexResult
  } catch (err) {
    return { error: err instanceof Error ? err.message : 'indexing failed' }
  }
}
