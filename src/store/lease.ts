/**
 * The lease of one instance (Gray and Cheriton, 1989): the right to serve
 * cached listings without asking Redis, for `leaseMs` after a renewal was
 * *sent* (so however long the answer took, the lease never outlives what Redis
 * granted). A writer waits for every live lease to acknowledge its
 * invalidation or to run out (docs/architecture.md has the argument).
 *
 * After a lapse, or at the first renewal, the instance has missed whatever
 * happened meanwhile: it drops its whole cache and serves nothing cached for
 * `graceMs`, time enough for any instance that wrote while Redis was away to
 * reconnect and announce those writes. Pure: the caller passes the clock.
 */
export interface LeaseOptions {
  /** How long a renewal is good for, from the moment it was sent. */
  readonly leaseMs: number
  /** After a lapse: how long to read through before serving cached entries again. */
  readonly graceMs: number
}

export class Lease {
  readonly #leaseMs: number
  readonly #graceMs: number
  #until = Number.NEGATIVE_INFINITY
  #servingFrom = Number.POSITIVE_INFINITY

  constructor(opts: LeaseOptions) {
    this.#leaseMs = opts.leaseMs
    this.#graceMs = opts.graceMs
  }

  /** Whether the lease is held at `now` (a writer may be waiting on it). */
  held(now: number): boolean {
    return now < this.#until
  }

  /** Whether cached entries may be served at `now`: the lease is held and the grace after a lapse is over. */
  mayServe(now: number): boolean {
    return now < this.#until && now >= this.#servingFrom
  }

  /** When the lease runs out (on the caller's clock). */
  get until(): number {
    return this.#until
  }

  /**
   * A renewal sent at `sentAt` came back at `now`, and its invalidations have
   * been applied. Returns true when the lease had lapsed (or was never held):
   * the caller must then drop everything it cached.
   */
  renewed(sentAt: number, now: number): boolean {
    const lapsed = !this.held(now)
    if (lapsed) this.#servingFrom = now + this.#graceMs
    this.#until = Math.max(this.#until, sentAt + this.#leaseMs)
    return lapsed
  }

  /** Something may have been missed (Redis lost its data): serve nothing cached for a grace period from `now`. */
  interrupt(now: number): void {
    this.#servingFrom = Math.max(this.#servingFrom, now + this.#graceMs)
  }

  /** Gives the lease up (the instance is stopping). */
  release(): void {
    this.#until = Number.NEGATIVE_INFINITY
    this.#servingFrom = Number.POSITIVE_INFINITY
  }
}
