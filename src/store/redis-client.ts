/**
 * ioredis connections with the settings a gateway needs. ioredis' defaults
 * queue commands while disconnected and retry them (a request waits 10–40 s on
 * a dead Redis) and never time out on a frozen one; here a command fails at
 * once when the connection is down and after `timeoutMs` when Redis does not
 * answer, so the caller can fall back to local state (SPEC 8).
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'
import { type HostPort, parseHostPort, parseSentinelUrl, redactRedisUrl } from '../policy/redis-url.js'
import type { RedisStorePolicy, StoreSecrets } from '../policy/types.js'

/** A connection to the store: one Redis (alone or behind Sentinel) or a Redis Cluster. */
export type StoreClient = Redis | Cluster

/** Where the store is (SPEC 8, 15), with its secrets: what `store.redis` and `--redis` come to. */
export type RedisEndpoint =
  | { readonly kind: 'single'; readonly url: string; readonly password: string | null; readonly tls: boolean }
  | {
      readonly kind: 'sentinel'
      readonly sentinels: readonly HostPort[]
      readonly name: string
      readonly db: number
      readonly password: string | null
      readonly sentinelPassword: string | null
      readonly tls: boolean
    }
  | {
      readonly kind: 'cluster'
      readonly nodes: readonly HostPort[]
      readonly password: string | null
      readonly tls: boolean
    }

/** The Redis of `store.redis` when it names none. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

/** One Redis at `url`, no secret beside the URL's. */
export function urlEndpoint(url: string): RedisEndpoint {
  return { kind: 'single', url, password: null, tls: false }
}

/** The endpoint a checked `store.redis` names (pure; the policy checks made every address parse). */
export function redisEndpoint(policy: RedisStorePolicy, secrets: StoreSecrets): RedisEndpoint {
  const hostPorts = (list: readonly string[]) => list.map((e) => parseHostPort(e) as HostPort)
  const { password, sentinelPassword } = secrets
  if (policy.url !== null) {
    const sentinel = parseSentinelUrl(policy.url)
    if (sentinel && !('problem' in sentinel)) {
      return {
        kind: 'sentinel',
        sentinels: sentinel.sentinels,
        name: sentinel.name,
        db: sentinel.db,
        password: sentinel.password ?? password,
        sentinelPassword,
        tls: sentinel.tls || policy.tls,
      }
    }
    return { kind: 'single', url: policy.url, password, tls: policy.tls }
  }
  if (policy.sentinels !== null) {
    return {
      kind: 'sentinel',
      sentinels: hostPorts(policy.sentinels),
      name: policy.name,
      db: 0,
      password,
      sentinelPassword,
      tls: policy.tls,
    }
  }
  if (policy.cluster !== null)
    return { kind: 'cluster', nodes: hostPorts(policy.cluster), password, tls: policy.tls }
  return { kind: 'single', url: DEFAULT_REDIS_URL, password, tls: policy.tls }
}

/** The endpoint for logs: addresses, never a password. */
export function describeEndpoint(endpoint: RedisEndpoint): string {
  const list = (l: readonly HostPort[]) => l.map((h) => `${h.host}:${h.port}`).join(',')
  switch (endpoint.kind) {
    case 'single':
      return redactRedisUrl(endpoint.url)
    case 'sentinel':
      return `sentinel ${list(endpoint.sentinels)} master ${endpoint.name}`
    case 'cluster':
      return `cluster ${list(endpoint.nodes)}`
  }
}

export interface RedisConnectionOptions {
  readonly endpoint: RedisEndpoint
  /** Longest wait for one command, in ms. */
  readonly timeoutMs: number
  /** A name for `CLIENT SETNAME` (diagnostics), e.g. `ipdr-gateway:cmd`. */
  readonly name: string
}

/** Most time between reconnection attempts: bounds how long after Redis returns an instance notices. */
export const MAX_RECONNECT_DELAY_MS = 250

export function redisOptions(opts: { readonly timeoutMs: number; readonly name: string }): RedisOptions {
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
export function openRedis(opts: RedisConnectionOptions): StoreClient {
  const client = connect(opts)
  // Connection errors are reported through the callers' failures and `ipdr_gateway_store_up`;
  // without a listener ioredis would print each one.
  client.on('error', () => {})
  // ioredis gives up on a connection for good ('end') when a sentinel announces a failover while it
  // is reconnecting (its failover detector's disconnect lands on a connection still connecting: found
  // by test/store/sentinel.test.ts under load, one instance stuck off the store until restarted).
  // A connection this gateway did not close is connected again.
  client.on('end', () => {
    if (CLOSED.has(client)) return
    setTimeout(() => {
      if (!CLOSED.has(client) && client.status === 'end') client.connect().catch(() => {})
    }, MAX_RECONNECT_DELAY_MS).unref()
  })
  client.connect().catch(() => {})
  return client
}

/** Connections closed by `closeRedis`: not connected again when they end. */
const CLOSED = new WeakSet<StoreClient>()

function connect(opts: RedisConnectionOptions): StoreClient {
  const { endpoint } = opts
  const base = redisOptions(opts)
  const auth = endpoint.password === null ? {} : { password: endpoint.password }
  const tls = endpoint.tls ? { tls: {} } : {}
  if (endpoint.kind === 'single') {
    const redis = new Redis(endpoint.url, { ...base, ...auth, ...tls })
    coalesceWrites(redis)
    return redis
  }
  if (endpoint.kind === 'sentinel') {
    const redis = new Redis({
      ...base,
      ...auth,
      ...tls,
      sentinels: endpoint.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: endpoint.name,
      db: endpoint.db,
      role: 'master',
      ...(endpoint.sentinelPassword === null ? {} : { sentinelPassword: endpoint.sentinelPassword }),
      ...(endpoint.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      // A sentinel that names a new master (+switch-master) makes the connection leave the old one at
      // once, even when the old one is frozen rather than gone (its socket would never close).
      failoverDetector: true,
      sentinelCommandTimeout: Math.max(500, opts.timeoutMs * 5),
      sentinelRetryStrategy: (times: number) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
      // A master demoted under us answers writes with READONLY: ask the sentinels again.
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    })
    coalesceWrites(redis)
    return redis
  }
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    scaleReads: 'master',
    clusterRetryStrategy: (times: number) => Math.min(times * 50, MAX_RECONNECT_DELAY_MS),
    retryDelayOnFailover: 50,
    retryDelayOnClusterDown: 50,
    retryDelayOnTryAgain: 50,
    slotsRefreshTimeout: Math.max(1000, opts.timeoutMs * 5),
    slotsRefreshInterval: 5000,
    redisOptions: { ...base, lazyConnect: false, ...auth, ...tls },
  }
  const cluster = new Cluster(
    endpoint.nodes.map((n) => ({ host: n.host, port: n.port })),
    clusterOptions,
  )
  cluster.on('+node', (node: Redis) => coalesceWrites(node))
  return cluster
}

/** The address this process reaches the store from (direct acknowledgements); undefined when not connected. */
export function localAddressOf(client: StoreClient): string | undefined {
  if (client.status !== 'ready') return undefined
  if (client instanceof Cluster) return client.nodes('master')[0]?.stream?.localAddress
  return client.stream?.localAddress
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
export function closeRedis(redis: StoreClient): void {
  CLOSED.add(redis)
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
