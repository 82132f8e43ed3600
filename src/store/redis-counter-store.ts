/**
 * The Redis {@link CounterStore} (after fastify-rate-limit's store/RedisStore):
 * one Lua script, one round trip, atomic across instances, every key with a
 * TTL (the window). Keys hold a SHA-256 of the identity (consumer name,
 * upstream username or client address), never the identity itself.
 */
import type { Redis } from 'ioredis'
import { sha256Hex } from '../credentials.js'
import type {
  CounterGuard,
  CounterState,
  CounterStore,
  GuardedCount,
  GuardedCounter,
} from '../policy/counter-store.js'
import { withinDeadline } from './redis-client.js'

/** Lua: INCR `key`, and start the window of `windowMs` when the key is new (or lost its TTL); sets count, ttl. */
function incrLua(key: string, windowMs: string): string {
  return `
local count = redis.call('INCR', ${key})
local ttl = redis.call('PTTL', ${key})
if ttl < 0 then
  redis.call('PEXPIRE', ${key}, ${windowMs})
  ttl = tonumber(${windowMs})
end`
}

// Returns {count, pttl}.
const INCR_SCRIPT = `${incrLua('KEYS[1]', 'ARGV[1]')}
return {count, ttl}
`

// The live counter without counting. Returns {count, pttl}; count 0 when absent.
const GET_SCRIPT = `
local count = redis.call('GET', KEYS[1])
if not count then return {0, -2} end
return {tonumber(count), redis.call('PTTL', KEYS[1])}
`

// One hit taken back from a live counter, never below 0 and never one without a TTL.
const DECR_SCRIPT = `
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 and redis.call('PTTL', KEYS[1]) > 0 then redis.call('DECR', KEYS[1]) end
return 1
`

// The guard's live count first (KEYS[1], ARGV[1] its max); unless it is reached, INCR KEYS[2] as
// INCR_SCRIPT does (ARGV[2] the window). Returns {1, guard count, guard pttl} or {0, count, pttl}.
const GUARDED_INCR_SCRIPT = `
local guard = tonumber(redis.call('GET', KEYS[1]) or '0')
if guard > 0 and guard >= tonumber(ARGV[1]) then
  local gttl = redis.call('PTTL', KEYS[1])
  if gttl > 0 then return {1, guard, gttl} end
end${incrLua('KEYS[2]', 'ARGV[2]')}
return {0, count, ttl}
`

interface CounterCommands {
  ipdrCounterGuardedIncr(
    guardKey: string,
    key: string,
    guardMax: number,
    windowMs: number,
  ): Promise<[number, number, number]>
  ipdrCounterIncr(key: string, windowMs: number): Promise<[number, number]>
  ipdrCounterGet(key: string): Promise<[number, number]>
  ipdrCounterDecr(key: string): Promise<number>
}

export interface RedisCounterStoreOptions {
  readonly redis: Redis
  /** Prepended to every key, e.g. `ipdr-gateway:`. */
  readonly keyPrefix: string
  /** Milliseconds since the epoch, for `resetAt`. Default `Date.now`. */
  readonly clock?: () => number
  /** `store.redis.timeoutMs`: the longest wait for one command. */
  readonly timeoutMs: number
}

export class RedisCounterStore implements CounterStore, GuardedCounter {
  readonly #redis: Redis & CounterCommands
  readonly #prefix: string
  readonly #clock: () => number
  readonly #timeoutMs: number

  constructor(opts: RedisCounterStoreOptions) {
    const redis = opts.redis as Redis & Partial<CounterCommands>
    // defineCommand sends EVALSHA and falls back to EVAL when Redis lost its script cache (a restart).
    if (redis.ipdrCounterIncr === undefined) {
      redis.defineCommand('ipdrCounterIncr', { numberOfKeys: 1, lua: INCR_SCRIPT })
      redis.defineCommand('ipdrCounterGet', { numberOfKeys: 1, lua: GET_SCRIPT })
      redis.defineCommand('ipdrCounterDecr', { numberOfKeys: 1, lua: DECR_SCRIPT })
      redis.defineCommand('ipdrCounterGuardedIncr', { numberOfKeys: 2, lua: GUARDED_INCR_SCRIPT })
    }
    this.#redis = redis as Redis & CounterCommands
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

  /** One script, one round trip: the failed-authentication check and the rate charge of a cached hit. */
  async incrUnlessBlocked(guard: CounterGuard, key: string, windowMs: number): Promise<GuardedCount> {
    const [blocked, count, ttl] = await withinDeadline(
      this.#redis.ipdrCounterGuardedIncr(
        this.keyOf(guard.key),
        this.keyOf(key),
        guard.max,
        Math.max(1, Math.round(windowMs)),
      ),
      this.#timeoutMs,
    )
    const state = { count, resetAt: this.#clock() + Math.max(0, ttl) }
    return blocked === 1 ? { blocked: state } : { counted: state }
  }
}
