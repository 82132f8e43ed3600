/**
 * ioredis connections with the settings a gateway needs. ioredis' defaults
 * queue commands while disconnected and retry them (a request waits 10–40 s on
 * a dead Redis) and never time out on a frozen one; here a command fails at
 * once when the connection is down and after `timeoutMs` when Redis does not
 * answer, so the caller can fall back to local state (SPEC 8).
 */
import { Redis, type RedisOptions } from 'ioredis'

export interface RedisConnectionOptions {
  /** `redis://` or `rediss://` URL (checked by `redisUrlProblem`). */
  readonly url: string
  /** Longest wait for one command, in ms. */
  readonly timeoutMs: number
  /** A name for `CLIENT SETNAME` (diagnostics), e.g. `ipdr-gateway:cmd`. */
  readonly name: string
}

/** Most time between reconnection attempts: bounds how long after Redis returns an instance notices. */
export const MAX_RECONNECT_DELAY_MS = 250

export function redisOptions(opts: RedisConnectionOptions): RedisOptions {
  return {
    lazyConnect: true,
    connectionName: opts.name,
    // Never hold a command while disconnected; never re-send one after a reconnect.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // A backstop only: callers bound each command with `withinDeadline` (see there for why).
    commandTimeout: Math.max(1000, opts.timeoutMs * 10),
    connectTimeout: Math.max(1000, opts.timeoutMs * 5),
    // Keep trying for as long as the gateway runs, at a bounded pace.
    retryStrategy: (times: number) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
    // Each command is written when issued and settled when its reply is parsed. ioredis' automatic
    // pipelining keeps one batch in flight per connection, written after the poll phase, and settles
    // a batch only once all of it has answered: under a burst a command waited for the batch before
    // its own, over 100 ms on a busy instance while Redis answered in under 50, and a budget of 1,500
    // over 3 instances admitted up to 1,851 as they took that for a dead store (docs/decisions.md).
    enableAutoPipelining: false,
    keepAlive: 10_000,
  }
}

/** A connection, connecting in the background (a dead Redis must not stop the gateway from starting). */
export function openRedis(opts: RedisConnectionOptions): Redis {
  const redis = new Redis(opts.url, redisOptions(opts))
  // Connection errors are reported through the callers' failures and `ipdr_gateway_store_up`;
  // without a listener ioredis would print each one.
  redis.on('error', () => {})
  redis.connect().catch(() => {})
  return redis
}

/** Closes a connection without waiting for a Redis that may be gone. */
export function closeRedis(redis: Redis): void {
  redis.disconnect(false)
}

export class StoreTimeoutError extends Error {
  override name = 'StoreTimeoutError'
  constructor(ms: number) {
    super(`shared store did not answer within ${ms} ms`)
  }
}

/**
 * `command`, or a `StoreTimeoutError` after `ms`. Unlike ioredis' `commandTimeout`, which rejects in
 * the timers phase of the event loop, this gives the loop one more turn (`setImmediate` runs after the
 * poll phase) before giving up, and extends the deadline when its timer fired late (the process, not
 * Redis, was slow): on a busy process a reply that Redis sent in time is then read rather than
 * dropped — a command that timed out here may still have run in Redis (a budget counted twice).
 */
export function withinDeadline<T>(command: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false
    let timer: NodeJS.Timeout
    let extensions = 0
    const arm = (wait: number) => {
      const due = performance.now() + wait
      timer = setTimeout(() => {
        // A timer that fired late measures this process, not Redis: while the loop is that busy,
        // replies wait in the socket behind other work. Give them the time the loop lost (bounded).
        const late = performance.now() - due
        if (late > ms / 2 && extensions < MAX_EXTENSIONS) {
          extensions++
          arm(Math.min(late, ms))
          return
        }
        setImmediate(() => {
          if (settled) return
          settled = true
          reject(new StoreTimeoutError(ms))
        })
      }, wait)
    }
    arm(ms)
    command.then(
      (value) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(value)
      },
      (err: unknown) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

/** How many times a deadline is extended for a process too busy to read replies (each by at most the deadline). */
const MAX_EXTENSIONS = 3
