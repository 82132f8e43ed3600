/**
 * Writes that keep the cache warm (SPEC 19): what the coherence protocol does to this instance's
 * cache for a write — the change applied to every listing of the context, or the context dropped
 * when there is no change to apply (the write's outcome unknown, an answer the gateway cannot read,
 * writes that may have crossed, `cache.applyWrites: false`). The patched entry has the bytes, offsets
 * and ETag a fill of the same bytes would have, and its index is built as a fill's is (by the listing
 * worker for a large one, on first use for a small one), so filters, single reads, paging and the
 * IP-at-time lookup follow from the bytes, as they would after a refetch.
 */
import type { LocalInvalidation } from '../store/coherence.js'
import type { ListingCache } from './listing-cache.js'
import { type ListingEntry, patchedListingEntry } from './listing-entry.js'
import { copyInSteps, patchListing, rememberIds } from './listing-patch.js'
import { INLINE_SCAN_BYTES, type ListingScanner } from './listing-scanner.js'
import { runStepsYielding } from './steps.js'
import { decodeChange, type WriteChange } from './write-change.js'

export interface ListingWritesOptions {
  readonly cache: ListingCache
  readonly scanner: ListingScanner
  /** `cache.applyWrites` of the policy in force. */
  readonly enabled: () => boolean
}

/** A change that does not apply to an entry with certainty: the entry is dropped. */
class ChangeNotApplicable extends Error {
  constructor() {
    super('the write cannot be applied to this listing with certainty')
    this.name = 'ChangeNotApplicable'
  }
}

export class ListingWrites implements LocalInvalidation {
  readonly #cache: ListingCache
  readonly #scanner: ListingScanner
  readonly #enabled: () => boolean
  readonly #patch = (entry: ListingEntry, changes: readonly unknown[]) =>
    patchEntry(entry, changes as readonly WriteChange[], this.#scanner)

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

  /**
   * Applies `change` (a `WriteChange` from this instance, or an `encodeChange` text from another) to
   * the context's listings; drops them when it cannot.
   */
  applyChange(context: string, change: unknown): void {
    const decoded = !this.#enabled()
      ? null
      : typeof change === 'string'
        ? decodeChange(change)
        : (change as WriteChange)
    if (decoded === null) this.#cache.invalidateContext(context)
    else this.#cache.patchContext(context, decoded, this.#patch)
  }
}

/** `entry` with `changes` applied in order: a new entry, or `entry` itself when they do not touch it. */
export async function patchEntry(
  entry: ListingEntry,
  changes: readonly WriteChange[],
  scanner: ListingScanner,
): Promise<ListingEntry> {
  // A customer's mappings are found through the index (a large listing's comes from the worker).
  if (entry.resource === 'mappings' && changes.some((c) => c.resource === 'customers'))
    await entry.whenIndexed()
  const patched = await runStepsYielding(patchListing(entry, changes))
  if (patched === null) throw new ChangeNotApplicable()
  if (patched === 'unchanged') return entry
  // A large listing's index is built by the worker when a read first needs it, from a copy (the
  // bytes are served meanwhile).
  const index = scanner.index
  const indexSource =
    index !== undefined && patched.raw.length >= INLINE_SCAN_BYTES
      ? async () => {
          const built = index(
            await runStepsYielding(copyInSteps(patched.raw)),
            patched.offsets,
            entry.resource,
          )
          if (built === null) throw new Error('no listing worker')
          return built
        }
      : null
  const made = patchedListingEntry(patched.raw, entry.facts, patched.offsets, patched.etag, indexSource)
  rememberIds(made, patched.ids)
  return made
}
