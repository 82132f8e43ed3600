/**
 * A consecutive-failure circuit breaker (shared/SPEC.md 3.3): after `failures`
 * consecutive connect errors or timeouts it opens and refuses calls for
 * `resetMs`; then one trial call is let through (half-open). Its success closes
 * the circuit, its failure opens it again. Envelopes and HTTP errors are
 * answers, not failures: the upstream is up.
 */

export type CircuitState = 'closed' | 'open' | 'half-open'

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. Default 5. */
  readonly failures: number
  /** Milliseconds the circuit stays open before a trial. Default 10000. */
  readonly resetMs: number
  /** Clock, for tests. Default `Date.now`. */
  readonly now?: () => number
}

export class CircuitBreaker {
  #failures = 0
  #openedAt = 0
  #state: CircuitState = 'closed'
  #trialInFlight = false
  readonly #limit: number
  readonly #resetMs: number
  readonly #now: () => number

  constructor(opts: CircuitBreakerOptions) {
    this.#limit = opts.failures
    this.#resetMs = opts.resetMs
    this.#now = opts.now ?? Date.now
  }

  get state(): CircuitState {
    if (this.#state === 'open' && this.#now() - this.#openedAt >= this.#resetMs) return 'half-open'
    return this.#state
  }

  /**
   * Asks to make a call. Returns false while open, and while a half-open trial
   * is already under way (one trial at a time).
   */
  tryAcquire(): boolean {
    const state = this.state
    if (state === 'closed') return true
    if (state === 'open' || this.#trialInFlight) return false
    this.#state = 'half-open'
    this.#trialInFlight = true
    return true
  }

  /** Seconds until the next trial may be made (for Retry-After). */
  retryAfterSeconds(): number {
    const left = this.#resetMs - (this.#now() - this.#openedAt)
    return Math.max(1, Math.ceil(left / 1000))
  }

  onSuccess(): void {
    this.#failures = 0
    this.#state = 'closed'
    this.#trialInFlight = false
  }

  onFailure(): void {
    this.#trialInFlight = false
    if (this.#state === 'half-open') {
      this.#open()
      return
    }
    this.#failures += 1
    if (this.#failures >= this.#limit) this.#open()
  }

  #open(): void {
    this.#state = 'open'
    this.#openedAt = this.#now()
    this.#failures = 0
  }
}
