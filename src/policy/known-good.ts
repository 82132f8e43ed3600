/**
 * Trisul tokens Trisul accepted lately (SPEC 13, `auth.knownGoodSeconds`).
 * Credentials found here are *proven*: a request carrying them is neither
 * charged to nor refused by its address's failed-authentication budget, so a
 * guesser behind the same NAT as a CRM cannot lock the CRM out. Only the
 * username and a digest of the token are kept; bounded in count, per process (each
 * instance learns from the answers it relays).
 */
import { LRUCache } from 'lru-cache'

export interface KnownGoodOptions {
  /** How long Trisul's acceptance counts, in seconds, read at every call (a reload applies at once). */
  readonly seconds: () => number
  /** Most credentials remembered; the least recently used go first. Default 10000. */
  readonly max?: number
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly clock?: () => number
}

export class KnownGoodCredentials {
  readonly #accepted: LRUCache<string, number>
  readonly #seconds: () => number
  readonly #clock: () => number

  constructor(opts: KnownGoodOptions) {
    this.#accepted = new LRUCache({ max: opts.max ?? 10_000 })
    this.#seconds = opts.seconds
    this.#clock = opts.clock ?? Date.now
  }

  // The token is held as its digest only; the username is no secret.
  static #key(username: string, tokenHash: string): string {
    return `${tokenHash}\n${username}`
  }

  /** Trisul accepted these credentials just now. */
  accepted(username: string, tokenHash: string): void {
    if (this.#seconds() <= 0) return
    this.#accepted.set(KnownGoodCredentials.#key(username, tokenHash), this.#clock())
  }

  /** Trisul called the token invalid: it is no longer proven. */
  refused(username: string, tokenHash: string): void {
    this.#accepted.delete(KnownGoodCredentials.#key(username, tokenHash))
  }

  /** Whether Trisul accepted these credentials within the last `seconds()`. */
  has(username: string, tokenHash: string): boolean {
    if (this.#accepted.size === 0) return false
    const at = this.#accepted.get(KnownGoodCredentials.#key(username, tokenHash))
    return at !== undefined && this.#clock() - at < this.#seconds() * 1000
  }
}
