/**
 * The listing worker (a piscina task): validates a large listing's bytes, finds
 * its records and digests its ETag off the event loop. The bytes arrive and go back as a
 * transferred ArrayBuffer (moved, not copied) and the offsets travel as a
 * transferred Uint32Array, never as objects (structured clone of a million
 * objects costs seconds). Pure apart from the transfer.
 */
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
      readonly index: IndexParts
    }
  | { readonly ok: false; readonly bytes: ArrayBuffer; readonly message: string }

/** The reply with its buffers in the transfer list (piscina's Transferable protocol). */
function moved(value: ScanResult): ScanResult {
  const buffers: ArrayBuffer[] = [value.bytes]
  if (value.ok) buffers.push(value.offsets.buffer as ArrayBuffer, ...indexTransferList(value.index))
  const reply = { [Piscina.transferableSymbol]: buffers, [Piscina.valueSymbol]: value }
  return Piscina.move(reply as unknown as ArrayBuffer) as unknown as ScanResult
}

export default function scan(task: ScanTask): ScanResult {
  const view = new Uint8Array(task.bytes)
  try {
    const offsets = scanListing(view)
    // The digest and the index too: SHA-256 of 200 MB is half a second, the index of a million
    // records seconds, that the event loop need not spend.
    const etag = strongEtag(Buffer.from(task.bytes))
    const index = buildIndexParts(view, offsets, RESOURCE_BY_NAME[task.resource])
    return moved({ ok: true, bytes: task.bytes, offsets, etag, index })
  } catch (err) {
    const message = err instanceof ListingScanError ? err.message : 'the listing could not be indexed'
    return moved({ ok: false, bytes: task.bytes, message })
  }
}
