/**
 * Limits failed authentications per client address, so a token cannot be
 * guessed at full speed (SPEC 4). After `max` failures within a window the
 * address is blocked until the window ends. IPv6 clients are counted per /64,
 * the block an end site usually gets (one host can use all of it). No Fastify
 * here: the HTTP wiring is `registerAuthFailureLimiter` in src/http/admission/rate-limit.ts.
 */
import { isIPv4 } from 'node:net'
import type { RateLimitPolicy } from '../policy/types.js'
import { formatIpRange, parseIpRange } from '../shared/ip-range.js'
import type { CounterState, CounterStore } from './counter-store.js'

export interface AuthFailureLimiterOptions {
  /** Where failures are counted. */
  store: CounterStore
  /** The limit in force, read at every call (so a reload applies at once). */
  limit: () => Pick<RateLimitPolicy, 'max' | 'timeWindowMs'>
  /** Milliseconds since the epoch, the same clock as the store's. Default `Date.now`. */
  clock?: () => number
}

export interface BlockState {
  readonly blocked: boolean
  /** Seconds until the window ends (0 when not blocked). */
  readonly retryAfterSeconds: number
}

/** The counter key of an address: IPv4 as is, IPv6 by its /64. */
export function addressKey(ip: string): string {
  // The common case, a plain dotted quad as Node reports it, needs no parsing (hot path).
  if (isIPv4(ip)) return `authfail:${ip}`
  const range = parseIpRange(ip)
  if (!range) return `authfail:${ip}`
  if (range.version === 4) return `authfail:${formatIpRange(range)}`
  const net = parseIpRange(`${formatIpRange(range)}/64`)
  return `authfail:${net ? formatIpRange(net) : ip}`
}

export class AuthFailureLimiter {
  readonly #store: CounterStore
  readonly #limit: AuthFailureLimiterOptions['limit']
  readonly #clock: () => number

  constructor(opts: AuthFailureLimiterOptions) {
    this.#store = opts.store
    this.#limit = opts.limit
    this.#clock = opts.clock ?? Date.now
  }

  /**
   * Charges `ip` one failed authentication before its credentials are tried (SPEC 13): null when
   * the limiter is off, else whether that charge went past the budget (the request is refused).
   */
  async charge(ip: string): Promise<ChargeState | null> {
    const { max, timeWindowMs } = this.#limit()
    if (max <= 0) return null
    const state = await this.#store.incr(addressKey(ip), timeWindowMs)
    return state.count > max ? this.#blockedBy(state) : NOT_BLOCKED
  }

  /** Takes back a charge whose credentials proved valid. */
  async refund(ip: string): Promise<void> {
    if (this.#limit().max <= 0) return
    await this.#store.decr(addressKey(ip))
  }

  /** Counts one failed authentication from `ip` (nothing when the limiter is off). */
  async recordFailure(ip: string): Promise<void> {
    const { max, timeWindowMs } = this.#limit()
    if (max <= 0) return
    await this.#store.incr(addressKey(ip), timeWindowMs)
  }

  /** Whether `ip` has used up its failures for the current window. */
  async isBlocked(ip: string): Promise<BlockState> {
    const { max } = this.#limit()
    if (max <= 0) return NOT_BLOCKED
    const state = await this.#store.get(addressKey(ip))
    return state && state.count >= max ? this.#blockedBy(state) : NOT_BLOCKED
  }

  #blockedBy(state: CounterState): BlockState {
    return {
      blocked: true,
      retryAfterSeconds: Math.max(1, Math.ceil((state.resetAt - this.#clock()) / 1000)),
    }
  }
}

type ChargeState = BlockState

const NOT_BLOCKED: BlockState = { blocked: false, retryAfterSeconds: 0 }
