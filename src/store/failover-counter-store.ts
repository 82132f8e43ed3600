/**
 * A shared {@link CounterStore} that falls back to a local one (SPEC 8: with the
 * store down, budgets are counted per instance). While the store is marked
 * down, counting is local at once, with no wait for a timeout; a failing call
 * is counted locally too, so every request is still answered and counted.
 * Unlike fastify-rate-limit's `skipOnError`, nothing goes uncounted.
 */
import { type CounterState, type CounterStore, LocalCounterStore } from './counter-store.js'
import type { StoreHealth, StoreOperation } from './store-health.js'

export interface FailoverCounterStoreOptions {
  readonly shared: CounterStore
  readonly health: StoreHealth
  /** Reported with failures (`ipdr_gateway_store_errors_total{operation}`). */
  readonly operation: StoreOperation
  /** Milliseconds since the epoch, for the local fallback. Default `Date.now`. */
  readonly clock?: () => number
}

export class FailoverCounterStore implements CounterStore {
  readonly #shared: CounterStore
  readonly #local: LocalCounterStore
  readonly #health: StoreHealth
  readonly #operation: StoreOperation

  constructor(opts: FailoverCounterStoreOptions) {
    this.#shared = opts.shared
    this.#health = opts.health
    this.#operation = opts.operation
    this.#local = new LocalCounterStore(opts.clock ? { clock: opts.clock } : {})
  }

  incr(key: string, windowMs: number): Promise<CounterState> {
    return failover(
      this.#health,
      this.#operation,
      () => this.#shared.incr(key, windowMs),
      () => this.#local.incr(key, windowMs),
    )
  }

  get(key: string): Promise<CounterState | null> {
    return failover(
      this.#health,
      this.#operation,
      () => this.#shared.get(key),
      () => this.#local.get(key),
    )
  }

  decr(key: string): Promise<void> {
    return failover(
      this.#health,
      this.#operation,
      () => this.#shared.decr(key),
      () => this.#local.decr(key),
    )
  }
}

/** `shared()` while the store is up; `local()` while it is down or when `shared()` fails (reported). */
async function failover<T>(
  health: StoreHealth,
  operation: StoreOperation,
  shared: () => Promise<T>,
  local: () => Promise<T>,
): Promise<T> {
  if (!health.up) return local()
  try {
    return await shared()
  } catch (err) {
    health.failed(operation, err)
    return local()
  }
}
