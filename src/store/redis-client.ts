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
    // Not ioredis' automatic pipelining, which keeps one batch in flight per connection and settles a
    // batch only once all of it has answered: `coalesceWrites` batches the writes of a loop turn
    // without that wait (docs/decisions.md).
    enableAutoPipelining: false,
    keepAlive: 10_000,
  }
}

/** A connection, connecting in the background (a dead Redis must not stop the gateway from starting). */
export function openRedis(opts: RedisConnectionOptions): Redis {
  const redis = new Redis(opts.url, redisOptions(opts))
  coalesceWrites(redis)
  // Connection errors are reported through the callers' failures and `ipdr_gateway_store_up`;
  // without a listener ioredis would print each one.
  redis.on('error', () => {})
  redis.connect().catch(() => {})
  return redis
}

/**
 * The commands issued in one loop turn go out in one socket write, and each is settled as soon as
 * its own reply is parsed, with any number of writes in flight: the socket is corked at a turn's
 * first command and uncorked after the poll phase (`setImmediate`), on every socket ioredis
 * connects. A cached hit issues one command; at 50 concurrent clients a write per command cost
 * 30–60 µs more CPU per hit.
 */
function coalesceWrites(redis: Redis): void {
  redis.on('connect', () => {
    const stream = redis.stream
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean
    stream.write = ((...args: unknown[]) => {
      if (stream.writableCorked === 0) {
        stream.cork()
        setImmediate(() => stream.uncork())
      }
      return write(...args)
    }) as typeof stream.write
  })
}

/** Closes a connection without waiting for a Redis that may be gone. */
export function closeRedis(redis: Redis): void {
  redis.disconnect(false)
}

// Never an answer: a store that does not answer in time is a fallback (local counting, read-through), counted in ipdr_gateway_store_errors_total.
export class StoreTimeoutError extends Error {
  override name = 'StoreTimeoutError'
  constructor(ms: number) {
    super(`shared store did not answer within ${ms} ms`)
  }
}

/**
 * `command`, or a `StoreTimeoutError` `ms` after it was written (after the poll phase of the turn that
 * issued it: `coalesceWrites`). Unlike ioredis' `commandTimeout`, which rejects in
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
    // From the write, not the call: a command issued in a long poll phase leaves with the turn's
    // other commands when it ends (`coalesceWrites`), and that wait is this process's, not Redis'.
    // (The immediate comes after the one that uncorks: immediates run in the order they were set.)
    setImmediate(() => {
      if (!settled) arm(ms)
    })
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
