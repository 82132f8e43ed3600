/**
 * Whether the shared store answers, as this instance last saw it. Every
 * failure of a store command marks it down at once (so the next requests fall
 * back to local state without waiting for a timeout of their own); the lease
 * renewal, which runs every quarter lease, marks it up again when a command
 * succeeds. Feeds `ipdr_gateway_store_up`. Pure.
 */
export type StoreOperation = 'rate_limit' | 'auth_failure' | 'lease' | 'announce' | 'fill'

export const STORE_OPERATIONS: readonly StoreOperation[] = [
  'rate_limit',
  'auth_failure',
  'lease',
  'announce',
  'fill',
]

export interface StoreHealthOptions {
  /** Called for every failed store command, with what it was for (`ipdr_gateway_store_errors_total`). */
  readonly onError?: (operation: StoreOperation, err: unknown) => void
  /** Called when the state changes (logs). */
  readonly onChange?: (up: boolean) => void
  /** Monotonic milliseconds. Default `performance.now`. */
  readonly now?: () => number
}

export class StoreHealth {
  #up = false
  #downSince: number
  readonly #onError: StoreHealthOptions['onError']
  readonly #onChange: StoreHealthOptions['onChange']
  readonly #now: () => number

  constructor(opts: StoreHealthOptions = {}) {
    this.#onError = opts.onError
    this.#onChange = opts.onChange
    this.#now = opts.now ?? (() => performance.now())
    this.#downSince = this.#now()
  }

  /**
   * When the store was last seen going down (or this instance started, before
   * the first success), on the `now` clock. A command sent after this point
   * cannot have reached a Redis that was down by then.
   */
  get downSince(): number {
    return this.#downSince
  }

  /** True once a command has succeeded and none has failed since. */
  get up(): boolean {
    return this.#up
  }

  failed(operation: StoreOperation, err: unknown): void {
    try {
      this.#onError?.(operation, err)
    } catch {
      // metrics must never break a request
    }
    this.#set(false)
  }

  succeeded(): void {
    this.#set(true)
  }

  /** Counts a failure that says nothing about whether the store answers (a slow bulk transfer). */
  noted(operation: StoreOperation, err: unknown): void {
    try {
      this.#onError?.(operation, err)
    } catch {
      // metrics must never break a request
    }
  }

  #set(up: boolean): void {
    if (this.#up === up) return
    this.#up = up
    if (!up) this.#downSince = this.#now()
    try {
      this.#onChange?.(up)
    } catch {
      // logging must never break a request
    }
  }
}
