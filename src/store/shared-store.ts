/**
 * The state instances share (SPEC 8), built from `store.redis`: rate and
 * failed-authentication counters, cache coherence and the fill lock, all behind
 * the interfaces the one-instance gateway uses (`CounterStore`, `Coherence`,
 * `FillCoordinator`), so `buildApp` wires one or the other and nothing else
 * changes. Three connections: commands (fast timeouts), subscriptions, and
 * bulk transfers of listing bytes (a longer timeout).
 */

import { applyDefaults } from '../policy/apply-defaults.js'
import { redisStoreSchema } from '../policy/schema.js'
import type { RedisStorePolicy } from '../policy/types.js'
import { type AuditHeadStore, auditHeadsIn } from './audit-heads.js'
import { type LocalInvalidation, RedisCoherence } from './coherence.js'
import type { CounterStore } from './counter-store.js'
import { FailoverCounterStore } from './failover-counter-store.js'
import { closeRedis, openRedis, type RedisEndpoint } from './redis-client.js'
import { RedisCounterStore } from './redis-counter-store.js'
import { type FillCoordinator, RedisFills } from './shared-fill.js'
import { SharedJobs } from './shared-jobs.js'
import { StoreHealth, type StoreOperation } from './store-health.js'

export interface SharedStoreOptions {
  readonly redis: RedisStorePolicy
  /** Where the store is, with its secrets (`redisEndpoint`). */
  readonly endpoint: RedisEndpoint
  /** `upstream.timeoutMs`: bounds fill waits and bulk transfers. */
  readonly upstreamTimeoutMs: number
  /** `cache.ttlSeconds` × 1000 at start: how long shared listing bytes may stay. */
  readonly cacheTtlMs: number
  readonly onError?: (operation: StoreOperation, err: unknown) => void
  /** Called when the store's master is another server than before (a failover or a restart). */
  readonly onNewMaster?: () => void
  readonly log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** Instance id; default random. */
  readonly instanceId?: string
}

export interface SharedStore {
  readonly health: StoreHealth
  readonly instanceId: string
  readonly rateCounters: CounterStore
  readonly authFailureCounters: CounterStore
  readonly fills: FillCoordinator
  /** Every instance's sync jobs (SPEC 15). */
  readonly jobs: SharedJobs
  /** The audit trail's head, kept in the store too (SPEC 14). */
  readonly auditHeads: AuditHeadStore
  /** Starts the coherence protocol for `cache` (once); `close()` stops it. */
  coherence(cache: LocalInvalidation): RedisCoherence
  close(): Promise<void>
}

/**
 * The `store.redis` in force: the policy's, with `urlOverride` (`--redis` /
 * `REDIS_URL`) as its url; with no `store.redis`, the override alone turns the
 * store on with the schema's defaults. null: no shared store.
 */
export function redisStorePolicy(
  fromPolicy: RedisStorePolicy | null,
  urlOverride: string | undefined,
): RedisStorePolicy | null {
  if (urlOverride === undefined) return fromPolicy
  // The URL names the store whole: it replaces the policy's sentinels or cluster too.
  if (fromPolicy) return { ...fromPolicy, url: urlOverride, sentinels: null, cluster: null }
  return applyDefaults(redisStoreSchema(), { url: urlOverride }) as RedisStorePolicy
}

export function openSharedStore(opts: SharedStoreOptions): SharedStore {
  const { redis: policy } = opts
  const health = new StoreHealth({
    ...(opts.onError ? { onError: opts.onError } : {}),
    onChange: (up) =>
      up
        ? opts.log?.info({ store: 'redis' }, 'shared store answers again: shared budgets and cache resume')
        : opts.log?.warn(
            { store: 'redis' },
            'shared store unreachable: counting locally, reading listings through',
          ),
  })
  const { endpoint } = opts
  const commands = openRedis({ endpoint, timeoutMs: policy.timeoutMs, name: 'ipdr-gateway-commands' })
  const subscriber = openRedis({ endpoint, timeoutMs: policy.timeoutMs, name: 'ipdr-gateway-events' })
  const bulk = openRedis({
    endpoint,
    timeoutMs: Math.max(policy.timeoutMs, opts.upstreamTimeoutMs),
    name: 'ipdr-gateway-bulk',
  })
  const counters = new RedisCounterStore({
    redis: commands,
    keyPrefix: policy.keyPrefix,
    timeoutMs: policy.timeoutMs,
  })
  let coherence: RedisCoherence | null = null
  const instanceId = opts.instanceId ?? cryptoId()
  const rateCounters = new FailoverCounterStore({ shared: counters, health, operation: 'rate_limit' })
  const authFailureCounters = new FailoverCounterStore({
    shared: counters,
    health,
    operation: 'auth_failure',
  })
  return {
    health,
    instanceId,
    rateCounters,
    authFailureCounters,
    fills: new RedisFills({
      redis: commands,
      bulk,
      keyPrefix: policy.keyPrefix,
      health,
      shareMaxBytes: policy.shareMaxBytes,
      timeoutMs: policy.timeoutMs,
      upstreamTimeoutMs: opts.upstreamTimeoutMs,
      // Long enough for every waiter to take the bytes; never much past the listing's freshness.
      bodyTtlMs: Math.min(5000, Math.max(1000, opts.cacheTtlMs)),
      instanceId,
    }),
    jobs: new SharedJobs({ redis: commands, keyPrefix: policy.keyPrefix, timeoutMs: policy.timeoutMs }),
    auditHeads: auditHeadsIn(commands, policy.keyPrefix, policy.timeoutMs),
    coherence(cache) {
      if (coherence) return coherence
      coherence = new RedisCoherence({
        redis: commands,
        subscriber,
        keyPrefix: policy.keyPrefix,
        cache,
        health,
        leaseMs: policy.leaseMs,
        timeoutMs: policy.timeoutMs,
        directAcks: policy.directAcks,
        instanceId,
        ...(opts.onNewMaster ? { onNewMaster: opts.onNewMaster } : {}),
        ...(opts.log ? { log: opts.log } : {}),
      })
      coherence.start()
      return coherence
    },
    async close() {
      await coherence?.close()
      for (const c of [commands, subscriber, bulk]) closeRedis(c)
    },
  }
}

function cryptoId(): string {
  return globalThis.crypto.randomUUID().replaceAll('-', '').slice(0, 16)
}
