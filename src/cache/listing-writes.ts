/**
 * Writes that keep the cache warm (SPEC 19): what the coherence protocol does to this instance's
 * cache for a write — the change applied to every listing of the context, or the context dropped
 * when there is no change to apply (the write's outcome unknown, an answer the gateway cannot read,
 * writes that may have crossed, `cache.applyWrites: false`). The patched entry is built as a fill
 * builds one (`buildListingEntryOffLoop`: a worker scans, digests and indexes a large one), so the
 * ETag, the index and the paging follow from the bytes, as they would from a refetch.
 */
import type { LocalInvalidation } from '../store/coherence.js'
import type { ListingCache } from './listing-cache.js'
import { buildListingEntryOffLoop, type ListingEntry } from './listing-entry.js'
import { patchListing, rememberIds } from './listing-patch.js'
import type { ListingScanner } from './listing-scanner.js'
import { runStepsYielding } from './steps.js'
import { decodeChange, type WriteChange } from './write-change.js'

export interface ListingWritesOptions {
  readonly cache: ListingCache
  readonly scanner: ListingScanner
  /** `cache.applyWrites` of the policy in force. */
  readonly enabled: () => boolean
}

/** A change that does not apply to an entry with certainty: the entry is dropped. */
export class ChangeNotApplicable extends Error {
  constructor() {
    super('the write cannot be applied to this listing with certainty')
    this.name = 'ChangeNotApplicable'
  }
}

export class ListingWrites implements LocalInvalidation {
  readonly #cache: ListingCache
  readonly #scanner: ListingScanner
  readonly #enabled: () => boolean

  constructor(opts: ListingWritesOptions) {
    this.#cache = opts.cache
    this.#scanner = opts.scanner
    this.#enabled = opts.enabled
  }

  invalidateContext(context: string): number {
    return this.#cache.invalidateContext(context)
  }

  invalidateAll(): number {
    return this.#cache.invalidateAll()
  }

  /** Applies `encoded` (an `encodeChange` text) to the context's listings; drops them when it cannot. */
  applyChange(context: string, encoded: string): void {
    const change = this.#enabled() ? decodeChange(encoded) : null
    if (change === null) this.#cache.invalidateContext(context)
    else this.#cache.patchContext(context, (entry) => patchEntry(entry, change, this.#scanner))
  }
}

/** `entry` with `change` applied: a new entry, or `entry` itself when the change does not touch it. */
export async function patchEntry(
  entry: ListingEntry,
  change: WriteChange,
  scanner: ListingScanner,
): Promise<ListingEntry> {
  // A customer's mappings are found through the index (a large listing's comes from the worker).
  if (entry.resource === 'mappings' && change.resource === 'customers') await entry.whenIndexed()
  const patched = await runStepsYielding(patchListing(entry, change))
  if (patched === null) throw new ChangeNotApplicable()
  if (patched === 'unchanged') return entry
  const made = await buildListingEntryOffLoop(scanner, patched.raw, entry.facts)
  rememberIds(made, patched.ids)
  return made
}
