/**
 * The Redis {@link CounterStore} (after fastify-rate-limit's store/RedisStore):
 * one Lua script, one round trip, atomic across instances, every key with a
 * TTL (the window). Keys hold a SHA-256 of the identity (consumer name,
 * upstream username or client address), never the identity itself.
 */

import { sha256Hex } from '../credentials.js'
import type { CounterState, CounterStore } from './counter-store.js'
import { DECR_SCRIPT, GET_SCRIPT, INCR_SCRIPT } from './lua.js'
import { type StoreClient, withinDeadline } from './redis-client.js'

interface CounterCommands {
  ipdrCounterIncr(key: string, windowMs: number): Promise<[number, number]>
  ipdrCounterGet(key: string): Promise<[number, number]>
  ipdrCounterDecr(key: string): Promise<number>
}

export interface RedisCounterStoreOptions {
  readonly redis: StoreClient
  /** Prepended to every key, e.g. `ipdr-gateway:`. */
  readonly keyPrefix: string
  /** Milliseconds since the epoch, for `resetAt`. Default `Date.now`. */
  readonly clock?: () => number
  /** `store.redis.timeoutMs`: the longest wait for one command. */
  readonly timeoutMs: number
}

export class RedisCounterStore implements CounterStore {
  readonly #redis: StoreClient & CounterCommands
  readonly #prefix: string
  readonly #clock: () => number
  readonly #timeoutMs: number

  constructor(opts: RedisCounterStoreOptions) {
    const redis = opts.redis as StoreClient & Partial<CounterCommands>
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost its script cache (a restart).
    if (redis.ipdrCounterIncr === undefined) {
      redis.defineCommand('ipdrCounterIncr', { numberOfKeys: 1, lua: INCR_SCRIPT })
      redis.defineCommand('ipdrCounterGet', { numberOfKeys: 1, lua: GET_SCRIPT })
      redis.defineCommand('ipdrCounterDecr', { numberOfKeys: 1, lua: DECR_SCRIPT })
    }
    this.#redis = redis as StoreClient & CounterCommands
    this.#prefix = opts.keyPrefix
    this.#clock = opts.clock ?? Date.now
    this.#timeoutMs = opts.timeoutMs
  }

  /** The Redis key of a counter: the prefix and a digest of the identity. */
  keyOf(key: string): string {
    return `${this.#prefix}counter:${sha256Hex(key).slice(0, 40)}`
  }

  async incr(key: string, windowMs: number): Promise<CounterState> {
    const [count, ttl] = await withinDeadline(
      this.#redis.ipdrCounterIncr(this.keyOf(key), Math.max(1, Math.round(windowMs))),
      this.#timeoutMs,
    )
    return { count, resetAt: this.#clock() + Math.max(0, ttl) }
  }

  async get(key: string): Promise<CounterState | null> {
    const [count, ttl] = await withinDeadline(this.#redis.ipdrCounterGet(this.keyOf(key)), this.#timeoutMs)
    if (count === 0 || ttl <= 0) return null
    return { count, resetAt: this.#clock() + ttl }
  }

  async decr(key: string): Promise<void> {
    await withinDeadline(this.#redis.ipdrCounterDecr(this.keyOf(key)), this.#timeoutMs)
  }
}
