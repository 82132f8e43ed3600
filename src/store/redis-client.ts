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
    commandTimeout: opts.timeoutMs,
    connectTimeout: Math.max(1000, opts.timeoutMs * 5),
    // Keep trying for as long as the gateway runs, at a bounded pace.
    retryStrategy: (times: number) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
    // Concurrent requests' commands go out in one write (the rate-limit counter is on every request).
    enableAutoPipelining: true,
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
