/**
 * The listing cache of shared/SPEC.md 3.4: entries keyed by resource,
 * upstream username, token hash and context; a byte budget (lru-cache's
 * `maxSize`, each entry weighing its `bytes`); a TTL and a stale-if-error
 * window kept with our own timestamps (so a policy reload can change them for
 * every entry at once); single flight for concurrent misses; and per-context
 * generations so a write's invalidation also defeats fills already in flight
 * (docs/cache.md). Pure: no Fastify, no timers.
 */
import { LRUCache } from 'lru-cache'
import { sha256Hex } from '../credentials.js'
import type { ResourceName } from '../resources.js'
import type { ListingEntry } from './listing-entry.js'

/** Whose listing this is. Two requests share an entry only when all four parts are equal. */
export interface ListingKey {
  readonly resource: ResourceName
  /** The upstream username the listing was fetched with. */
  readonly username: string
  /** `hashToken(token)` of the upstream token it was fetched with (the token itself is never kept). */
  readonly tokenHash: string
  /** The upstream context (`''` for the v1 dialect). */
  readonly context: string
}

/**
 * - `hit`: a fresh entry;
 * - `miss`: this call ran the fill (nothing cached, past the TTL, or invalidated);
 * - `coalesced`: this call waited for another call's fill (`X-Cache: MISS`);
 * - `stale`: the fill failed and an entry within TTL + stale-if-error was served.
 */
export type LookupStatus = 'hit' | 'miss' | 'stale' | 'coalesced'

export interface ListingCacheLimits {
  /** Byte budget over all entries (policy `cache.maxBytes`, default 268435456). A positive integer. */
  readonly maxBytes: number
  /** Freshness in ms (policy `cache.ttlSeconds` × 1000, default 30000). 0: every get refetches. */
  readonly ttlMs: number
  /** How long past the TTL an entry may stand in for a failing upstream (policy default 300000). */
  readonly staleIfErrorMs: number
}

export interface ListingCacheOptions extends ListingCacheLimits {
  /** Clock in ms for TTLs; default `performance.now` (monotonic). Tests pass a fake one. */
  readonly now?: () => number
  /** Called once per `get` with its final status (a failed fill counts as `miss`/`coalesced`). */
  readonly onLookup?: (resource: ResourceName, result: LookupStatus) => void
  /**
   * Called for both resources on every `invalidateContext`, with how many entries were dropped
   * (`dropped`, maybe 0); and as a write is applied to an entry (`applied`, per write), or cannot be
   * and drops it (`dropped`).
   */
  readonly onInvalidate?: (resource: ResourceName, count: number, kind: InvalidationKind) => void
  /**
   * Which fill errors a stale entry may stand in for. Default: all. The gateway
   * passes upstream failures only: an answer such as "Invalid API token" must
   * reach the client, never be hidden behind data fetched before the revocation.
   */
  readonly staleOn?: (err: unknown) => boolean
  /**
   * Whether this instance may serve fresh entries now (the shared store's
   * lease, src/store/coherence.ts). While it returns false every `get` fills
   * from the upstream (single flight still holds) and `peekFresh` finds
   * nothing; stale-if-error may still cover a failing upstream. Default: always.
   */
  readonly mayServe?: () => boolean
  /**
   * Whether `entry` was built from bytes another instance fetched (one fill for all, SPEC 8): its
   * lookup is counted `coalesced`, not `miss` (SPEC 15), though the client still sees `MISS`.
   * Default: never.
   */
  readonly adopted?: (entry: ListingEntry) => boolean
  /**
   * Called when an entry (or what it grew to with a compressed variant) is
   * larger than the whole budget: it is served to its callers but not kept,
   * so every request for it goes to the upstream. Default: nothing.
   */
  readonly onTooLarge?: (resource: ResourceName, bytes: number, maxBytes: number) => void
}

/** How a write reached a cached entry (SPEC 19): applied to it, or the entry dropped. */
export type InvalidationKind = 'applied' | 'dropped'

/**
 * Writes' changes applied to an entry, all at once and in their order: the patched entry, or the
 * entry itself when they do not touch it. Rejects when they cannot be applied with certainty (the
 * entry is then dropped).
 */
export type EntryPatch = (entry: ListingEntry, changes: readonly unknown[]) => Promise<ListingEntry>

export interface ResourceCacheStats {
  entries: number
  bytes: number
  /** Lookups since creation, by status. */
  lookups: Record<LookupStatus, number>
  /** Entries removed by invalidations since creation. */
  invalidations: number
}

export type ListingCacheStats = Record<ResourceName, ResourceCacheStats>

/**
 * sha256 hex of an upstream token: what cache keys and logs may hold instead
 * of the token. The same digest as a gateway key's (`sha256Hex`), so a Bearer
 * token is hashed once per request.
 */
export const hashToken: (token: string) => string = sha256Hex

/**
 * The internal map key: the four parts joined by newlines (cheaper than
 * JSON, on every cached GET). A part that holds a newline or a backslash (no
 * valid credential does) is JSON-encoded, so it holds a backslash while a raw
 * part never does: two different keys never join to the same string.
 */
export function listingCacheKey(key: ListingKey): string {
  return `${key.resource}\n${keyPart(key.username)}\n${keyPart(key.tokenHash)}\n${keyPart(key.context)}`
}

function keyPart(part: string): string {
  return part.includes('\n') || part.includes('\\') ? JSON.stringify(part) : part
}

const RESOURCES: readonly ResourceName[] = ['customers', 'mappings']

/** Changes an entry may wait for (its memory is bounded by them); past it the entry is dropped. */
export const MAX_PENDING_CHANGES = 10_000
const COMPRESSED = ['gzip', 'br'] as const

interface Slot {
  readonly key: ListingKey
  readonly entry: ListingEntry
  /** Clock time the fill resolved (a patched entry keeps its fill's). */
  readonly storedAt: number
  /** Bytes accounted in the LRU for this slot. */
  readonly size: number
  /** Writes not yet applied to `entry`: it is served only once they are. */
  readonly pending: Pending | null
}

/**
 * The writes a slot's entry is waiting for (SPEC 19). They are applied when a read needs the entry,
 * every change so far in one patch: a sync's thousands of writes cost one patch per read, not one
 * per write.
 */
interface Pending {
  readonly patch: EntryPatch
  /**
   * The changes the slot's entry does not have yet, oldest first. Changes are numbered from the
   * first one queued: these are numbers `done` to `done + changes.length - 1`.
   */
  readonly changes: unknown[]
  /** How many changes (by number) the slot's entry has. */
  done: number
  /** The newest patch being made: the slot's entry with the changes numbered below `upTo`. */
  making: { readonly upTo: number; readonly promise: Promise<ListingEntry> } | null
}

interface FillOutcome {
  readonly entry: ListingEntry
  readonly status: 'miss' | 'stale'
}

interface Flight {
  /** The context's generation when the fill started: a later invalidation makes it unstorable and unjoinable. */
  readonly generation: number
  /** The cache's epoch when the fill started: `invalidateAll` does to every flight what an invalidation does to its context's. */
  readonly epoch: number
  /** Identifies this flight in `#inflight` (a newer flight may have replaced it). */
  readonly token: object
  readonly promise: Promise<FillOutcome>
  /**
   * The fetch that starts once this one ends, for the readers that came while this one ran and
   * could not join it (SPEC 8: no proof that no write was answered since it started).
   */
  next?: Promise<FillOutcome>
}

export class ListingCache {
  #lru: LRUCache<string, Slot>
  #limits: ListingCacheLimits
  readonly #now: () => number
  readonly #onLookup: ListingCacheOptions['onLookup']
  readonly #onInvalidate: ListingCacheOptions['onInvalidate']
  readonly #staleOn: (err: unknown) => boolean
  readonly #mayServe: () => boolean
  readonly #adopted: (entry: ListingEntry) => boolean
  readonly #onTooLarge: ListingCacheOptions['onTooLarge']
  /** Bumped by `invalidateAll`. */
  #epoch = 0
  readonly #inflight = new Map<string, Flight>()
  /** Per context, bumped by every invalidation. Only contexts that saw a write are present. */
  readonly #generations = new Map<string, number>()
  readonly #counters: Record<ResourceName, { lookups: Record<LookupStatus, number>; invalidations: number }>

  constructor(opts: ListingCacheOptions) {
    this.#limits = checkLimits(opts, {})
    this.#now = opts.now ?? (() => performance.now())
    this.#onLookup = opts.onLookup
    this.#onInvalidate = opts.onInvalidate
    this.#staleOn = opts.staleOn ?? (() => true)
    this.#mayServe = opts.mayServe ?? (() => true)
    this.#adopted = opts.adopted ?? (() => false)
    this.#onTooLarge = opts.onTooLarge
    this.#lru = makeLru(this.#limits.maxBytes)
    const counters = () => ({ lookups: { hit: 0, miss: 0, stale: 0, coalesced: 0 }, invalidations: 0 })
    this.#counters = { customers: counters(), mappings: counters() }
  }

  /** The limits in force. */
  get limits(): ListingCacheLimits {
    return this.#limits
  }

  /**
   * The entry for `key`: cached when fresh, else from `fill` (run once for all
   * concurrent callers of the same key and generation). A rejected fill is
   * never cached: callers get the entry within TTL + stale-if-error as
   * `stale`, or the fill's error.
   */
  async get(
    key: ListingKey,
    fill: () => Promise<ListingEntry>,
  ): Promise<{ entry: ListingEntry; status: LookupStatus }> {
    const k = listingCacheKey(key)
    const generation = this.#generation(key.context)
    const slot = this.#lru.get(k)
    if (slot !== undefined) {
      const age = this.#now() - slot.storedAt
      if (this.#fresh(age) && this.#mayServe()) {
        if (slot.pending === null) return this.#report(key.resource, slot.entry, 'hit')
        let entry: ListingEntry
        try {
          entry = await this.#caughtUp(k, slot, slot.pending)
        } catch (err) {
          // The writes could not be applied: the entry is dropped, and this read fetches.
          if (err instanceof PatchRefused) return this.get(key, fill)
          throw err
        }
        return this.#report(key.resource, entry, 'hit')
      }
      if (age >= this.#limits.ttlMs + this.#limits.staleIfErrorMs) this.#lru.delete(k)
    }
    const epoch = this.#epoch
    const running = this.#inflight.get(k)
    if (running !== undefined && running.generation === generation && running.epoch === epoch) {
      // SPEC 8: a read joins a fetch that started before it only when this instance can prove that
      // no write was answered since (it holds its lease: every write would have reached it and made
      // the flight unjoinable). Else it waits for the next fetch, one for all who came meanwhile.
      const proven = this.#mayServe()
      let waited: Promise<FillOutcome>
      let own = false
      if (proven) waited = running.promise
      else if (running.next !== undefined) waited = running.next
      else {
        own = true
        waited = running.next = running.promise.then(
          () => this.#startFlight(k, key, fill).promise,
          () => this.#startFlight(k, key, fill).promise,
        )
      }
      const asCounted = own ? 'miss' : 'coalesced'
      let outcome: FillOutcome
      try {
        outcome = await waited
      } catch (err) {
        this.#count(key.resource, asCounted)
        throw err
      }
      return this.#report(
        key.resource,
        outcome.entry,
        outcome.status === 'stale' ? 'stale' : own ? outcome.status : 'coalesced',
      )
    }
    let outcome: FillOutcome
    try {
      outcome = await this.#startFlight(k, key, fill).promise
    } catch (err) {
      this.#count(key.resource, 'miss')
      throw err
    }
    return this.#report(key.resource, outcome.entry, outcome.status)
  }

  /** Starts a fill of `key` now, under the context's generation and the epoch as they are now. */
  #startFlight(k: string, key: ListingKey, fill: () => Promise<ListingEntry>): Flight {
    const generation = this.#generation(key.context)
    const epoch = this.#epoch
    const token = {}
    const flight: Flight = {
      generation,
      epoch,
      token,
      promise: this.#fill(k, key, generation, epoch, token, fill),
    }
    this.#inflight.set(k, flight)
    return flight
  }

  /**
   * The fresh entry for `key`, or undefined; synchronous, and counts nothing:
   * a caller that serves it calls `countHit`, one that does not goes on to
   * `get`, which counts its own lookup.
   */
  peekFresh(key: ListingKey): ListingEntry | undefined {
    const slot = this.#lru.get(listingCacheKey(key))
    return slot !== undefined &&
      slot.pending === null &&
      this.#fresh(this.#now() - slot.storedAt) &&
      this.#mayServe()
      ? slot.entry
      : undefined
  }

  /** Counts a `hit` served from `peekFresh`. */
  countHit(resource: ResourceName): void {
    this.#count(resource, 'hit')
  }

  /**
   * Removes every entry of `context` (both resources) and bumps its
   * generation, so fills that started before this call are neither stored
   * nor joined. Call it after a successful write, before its response is
   * sent. Returns the number of entries removed.
   */
  invalidateContext(context: string): number {
    this.#generations.set(context, this.#generation(context) + 1)
    return this.#remove((slot) => slot.key.context === context)
  }

  /**
   * A write's `change`, to be applied to every entry of `context` instead of dropping them (SPEC 19).
   * Like `invalidateContext` it bumps the context's generation at once, so no fill from before the
   * write is stored or joined; each fresh entry of the context keeps its place (and its fill time, so
   * the TTL still brings changes made in Trisul directly) but is served only once `patch` has applied
   * every change it waits for, which the next read that needs it makes (counted `hit`: no upstream
   * request). An entry past its TTL is dropped. Returns how many entries wait for the change.
   */
  patchContext(context: string, change: unknown, patch: EntryPatch): number {
    this.#generations.set(context, this.#generation(context) + 1)
    let waiting = 0
    const dropped: Record<ResourceName, number> = { customers: 0, mappings: 0 }
    for (const [k, slot] of [...this.#lru.entries()]) {
      if (slot.key.context !== context) continue
      if (!this.#fresh(this.#now() - slot.storedAt)) {
        // Kept for stale-if-error only, which must not serve what a write has changed.
        this.#lru.delete(k)
        dropped[slot.key.resource]++
        continue
      }
      if (slot.pending !== null && slot.pending.changes.length >= MAX_PENDING_CHANGES) {
        // Writes with no read between them (a long sync nobody reads meanwhile): one refetch is cheaper.
        this.#lru.delete(k)
        dropped[slot.key.resource]++
        continue
      }
      waiting++
      if (slot.pending !== null) slot.pending.changes.push(change)
      else this.#lru.set(k, { ...slot, pending: { patch, changes: [change], done: 0, making: null } })
    }
    for (const resource of RESOURCES) {
      this.#counters[resource].invalidations += dropped[resource]
      if (dropped[resource] > 0) safely(() => this.#onInvalidate?.(resource, dropped[resource], 'dropped'))
    }
    return waiting
  }

  /**
   * The slot's entry with every change it waits for: one patch of those not yet in it, on top of the
   * patch being made if there is one; stored in the slot when it is still there. Rejects with
   * `PatchRefused` (and drops the slot) when they cannot be applied.
   */
  #caughtUp(k: string, slot: Slot, p: Pending): Promise<ListingEntry> {
    const upTo = p.done + p.changes.length
    if (p.making !== null && p.making.upTo === upTo) return p.making.promise
    const from = p.making?.promise ?? Promise.resolve(slot.entry)
    const batch = p.changes.slice((p.making?.upTo ?? p.done) - p.done)
    const resource = slot.key.resource
    const promise = (async () => {
      let made: ListingEntry
      try {
        made = await p.patch(await from, batch)
      } catch (err) {
        if (this.#lru.peek(k)?.pending === p) {
          this.#lru.delete(k)
          this.#counters[resource].invalidations++
          safely(() => this.#onInvalidate?.(resource, 1, 'dropped'))
        }
        throw err instanceof PatchRefused ? err : new PatchRefused(err)
      }
      const current = this.#lru.peek(k)
      if (current?.pending === p && p.done < upTo) {
        // The entry now has these: they are no longer kept.
        p.changes.splice(0, upTo - p.done)
        p.done = upTo
        this.#store(k, current.key, made, current.storedAt, current.entry, p.changes.length > 0 ? p : null)
        safely(() => this.#onInvalidate?.(resource, batch.length, 'applied'))
      }
      return made
    })()
    // A read waits on it; a failure is that read's to see (and nobody's once the slot is gone).
    promise.catch(() => {})
    p.making = { upTo, promise }
    return promise
  }

  /**
   * Removes every entry and makes every fill in flight unstorable and
   * unjoinable, as `invalidateContext` does for one context: for when this
   * instance may have missed invalidations (a lapsed lease, a lost store).
   * Returns the number of entries removed.
   */
  invalidateAll(): number {
    this.#epoch++
    return this.#remove(() => true)
  }

  #remove(doom: (slot: Slot) => boolean): number {
    const doomed: [string, Slot][] = []
    for (const [k, slot] of this.#lru.entries()) if (doom(slot)) doomed.push([k, slot])
    const removed: Record<ResourceName, number> = { customers: 0, mappings: 0 }
    for (const [k, slot] of doomed) {
      this.#lru.delete(k)
      removed[slot.key.resource]++
    }
    for (const resource of RESOURCES) {
      this.#counters[resource].invalidations += removed[resource]
      safely(() => this.#onInvalidate?.(resource, removed[resource], 'dropped'))
    }
    return doomed.length
  }

  /**
   * Policy reload: new limits apply at once to every entry (freshness is
   * computed from each entry's fill time). A smaller `maxBytes` evicts least
   * recently used entries until the rest fit. Throws `RangeError` on an
   * invalid value and then changes nothing.
   */
  setLimits(opts: Partial<ListingCacheLimits>): void {
    const limits = checkLimits(opts, this.#limits)
    const resized = limits.maxBytes !== this.#limits.maxBytes
    this.#limits = limits
    if (!resized) return
    const old = this.#lru
    this.#lru = makeLru(limits.maxBytes)
    // entries() runs most recent first; insert least recent first so the recency order survives.
    for (const [k, slot] of [...old.entries()].reverse()) {
      if (slot.size <= limits.maxBytes) this.#lru.set(k, slot)
    }
  }

  /** Drops entries past TTL + stale-if-error (they can serve nobody). `stats()` calls it. */
  prune(): number {
    const limit = this.#limits.ttlMs + this.#limits.staleIfErrorMs
    const now = this.#now()
    const expired: string[] = []
    for (const [k, slot] of this.#lru.entries()) if (now - slot.storedAt >= limit) expired.push(k)
    for (const k of expired) this.#lru.delete(k)
    return expired.length
  }

  /** Entries and bytes held (after `prune()`), and lookup/invalidation counters, per resource. */
  stats(): ListingCacheStats {
    this.prune()
    const out = {} as ListingCacheStats
    for (const resource of RESOURCES) {
      const c = this.#counters[resource]
      out[resource] = { entries: 0, bytes: 0, lookups: { ...c.lookups }, invalidations: c.invalidations }
    }
    for (const slot of this.#lru.values()) {
      out[slot.key.resource].entries++
      out[slot.key.resource].bytes += slot.size
    }
    return out
  }

  /** Drops every entry (not the counters or generations). */
  clear(): void {
    this.#lru.clear()
  }

  async #fill(
    k: string,
    key: ListingKey,
    generation: number,
    epoch: number,
    token: object,
    fill: () => Promise<ListingEntry>,
  ): Promise<FillOutcome> {
    try {
      let entry: ListingEntry
      try {
        entry = await fill()
      } catch (err) {
        const slot = this.#lru.get(k)
        if (
          slot !== undefined &&
          // An entry that waits for writes is not what the listing was: never stale-served.
          slot.pending === null &&
          this.#staleOn(err) &&
          this.#now() - slot.storedAt < this.#limits.ttlMs + this.#limits.staleIfErrorMs
        ) {
          return { entry: slot.entry, status: 'stale' }
        }
        throw err
      }
      if (this.#generation(key.context) === generation && this.#epoch === epoch) this.#store(k, key, entry)
      return { entry, status: 'miss' }
    } finally {
      // Runs before any waiter resumes: from here on, new callers see the stored entry. It also runs
      // after `get` has registered the flight, since `await fill()` always yields at least once.
      if (this.#inflight.get(k)?.token === token) this.#inflight.delete(k)
    }
  }

  #store(
    k: string,
    key: ListingKey,
    entry: ListingEntry,
    storedAt = this.#now(),
    previous: ListingEntry | undefined = this.#lru.peek(k)?.entry,
    pending: Pending | null = null,
  ): void {
    const size = sizeOf(entry)
    if (size > this.#limits.maxBytes) {
      // Served to this fill's callers, not kept; nor is the older entry it replaces.
      this.#lru.delete(k)
      this.#onTooLarge?.(key.resource, size, this.#limits.maxBytes)
      return
    }
    entry.onSizeChange(() => this.#resize(k, entry))
    this.#lru.set(k, { key, entry, storedAt, size, pending })
    // Clients that asked the previous entry for a coding will ask this one too: compress it now, in
    // the background, rather than make the first of them wait after every refill or write.
    for (const encoding of COMPRESSED) {
      if (entry !== previous && previous?.peekEncoded(encoding) !== undefined) {
        // A failure here is not memoized; the next request that asks retries and sees it.
        entry.encoded(encoding).catch(() => {})
      }
    }
  }

  /** A cached entry made a compressed or redacted variant: account its new size. */
  #resize(k: string, entry: ListingEntry): void {
    const slot = this.#lru.peek(k)
    if (slot?.entry !== entry) {
      // Evicted, invalidated or replaced: nothing to account any more.
      entry.onSizeChange(undefined)
      return
    }
    const size = sizeOf(entry)
    if (size === slot.size) return
    if (size > this.#limits.maxBytes) {
      this.#lru.delete(k)
      entry.onSizeChange(undefined)
      this.#onTooLarge?.(slot.key.resource, size, this.#limits.maxBytes)
      return
    }
    // A new slot object: lru-cache re-accounts the size only when the value changes.
    this.#lru.set(k, { ...slot, size })
  }

  /** Whether an entry filled `age` ms ago is within the TTL (a `hit`). */
  #fresh(age: number): boolean {
    return age < this.#limits.ttlMs
  }

  #generation(context: string): number {
    return this.#generations.get(context) ?? 0
  }

  #report(resource: ResourceName, entry: ListingEntry, status: LookupStatus) {
    this.#count(resource, status === 'miss' && this.#adopted(entry) ? 'coalesced' : status)
    return { entry, status }
  }

  #count(resource: ResourceName, status: LookupStatus): void {
    this.#counters[resource].lookups[status]++
    safely(() => this.#onLookup?.(resource, status))
  }
}

/** Writes could not be applied to an entry (it is dropped; the read that needed it fetches). */
class PatchRefused extends Error {
  constructor(cause: unknown) {
    super('the writes could not be applied to the cached listing', { cause })
    this.name = 'PatchRefused'
  }
}

function makeLru(maxBytes: number): LRUCache<string, Slot> {
  return new LRUCache<string, Slot>({ maxSize: maxBytes, sizeCalculation: (slot) => slot.size })
}

function sizeOf(entry: ListingEntry): number {
  return Math.max(1, Math.ceil(entry.bytes))
}

function checkLimits(
  opts: Partial<ListingCacheLimits>,
  current: Partial<ListingCacheLimits>,
): ListingCacheLimits {
  const maxBytes = opts.maxBytes ?? current.maxBytes
  const ttlMs = opts.ttlMs ?? current.ttlMs
  const staleIfErrorMs = opts.staleIfErrorMs ?? current.staleIfErrorMs
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new RangeError('cache maxBytes must be a positive integer')
  }
  if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs < 0) {
    throw new RangeError('cache ttlMs must be a non-negative number')
  }
  if (typeof staleIfErrorMs !== 'number' || !Number.isFinite(staleIfErrorMs) || staleIfErrorMs < 0) {
    throw new RangeError('cache staleIfErrorMs must be a non-negative number')
  }
  return Object.freeze({ maxBytes, ttlMs, staleIfErrorMs })
}

/** Metrics callbacks must never break a request: their errors are dropped. */
function safely(fn: () => void): void {
  try {
    fn()
  } catch {
    // deliberately ignored
  }
}
