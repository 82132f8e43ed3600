/**
 * Fixed-window counters behind one small interface, so the rate limiter and
 * the failed-authentication limiter can move to a shared store (Redis, …)
 * without touching their logic (after fastify-rate-limit's store/LocalStore).
 * Methods return promises because a shared store is remote.
 */
import { LRUCache } from 'lru-cache'

export interface CounterState {
  /** Hits in the current window, this one included. */
  readonly count: number
  /** When the window ends (ms since the epoch, on the store's clock). */
  readonly resetAt: number
}

export interface CounterStore {
  /** Counts one hit; a missing or expired counter starts a new window of `windowMs`. */
  incr(key: string, windowMs: number): Promise<CounterState>
  /** The live counter, or null when absent or expired. Does not count. */
  get(key: string): Promise<CounterState | null>
  /** Takes back one hit of a live counter (never below 0; nothing when absent or expired). */
  decr(key: string): Promise<void>
}

export interface LocalCounterStoreOptions {
  /**
   * Most keys held; the least recently used are forgotten first, so memory
   * stays bounded however many clients appear. Default 10000.
   */
  maxKeys?: number
  /** Milliseconds since the epoch. Default `Date.now` (tests inject a fake). */
  clock?: () => number
}

interface Entry {
  count: number
  resetAt: number
}

/** An in-process {@link CounterStore}: an LRU of keys with their windows. */
export class LocalCounterStore implements CounterStore {
  readonly #entries: LRUCache<string, Entry>
  readonly #clock: () => number

  constructor(opts: LocalCounterStoreOptions = {}) {
    this.#entries = new LRUCache({ max: opts.maxKeys ?? 10_000 })
    this.#clock = opts.clock ?? Date.now
  }

  incr(key: string, windowMs: number): Promise<CounterState> {
    const now = this.#clock()
    let entry = this.#entries.get(key)
    if (!entry || entry.resetAt <= now) {
      entry = { count: 0, resetAt: now + windowMs }
    }
    entry.count++
    this.#entries.set(key, entry)
    return Promise.resolve({ count: entry.count, resetAt: entry.resetAt })
  }

  get(key: string): Promise<CounterState | null> {
    const entry = this.#entries.get(key)
    if (!entry || entry.resetAt <= this.#clock()) return Promise.resolve(null)
    return Promise.resolve({ count: entry.count, resetAt: entry.resetAt })
  }

  decr(key: string): Promise<void> {
    const entry = this.#entries.get(key)
    if (entry && entry.resetAt > this.#clock() && entry.count > 0) entry.count--
    return Promise.resolve()
  }

  /** Keys held (for tests and diagnostics). */
  get size(): number {
    return this.#entries.size
  }
}
