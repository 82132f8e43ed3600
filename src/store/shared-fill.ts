/**
 * One fill for all (SPEC 8): concurrent cold reads of one listing on several
 * instances make one upstream request. The first instance to claim the key
 * fetches; the listing's raw bytes (up to `shareMaxBytes`) go into Redis for
 * the others, which poll the claim and build their own entry from the bytes.
 *
 * The claim is made under the context's generation as StoreClient holds it (bumped by
 * every announced write), so a fill that started before a write is never handed
 * to a reader that came after it. A filler that dies leaves a lock that expires
 * with the upstream timeout, and no waiter waits longer than that before
 * fetching for itself. Any Redis trouble: the instance fetches for itself
 * (single flight within it still holds).
 */

import { sha256Hex } from '../credentials.js'
import { coherenceKeys } from './coherence.js'
import { FILL_CLAIM_SCRIPT } from './lua.js'
import { type StoreClient, withinDeadline } from './redis-client.js'
import type { StoreHealth } from './store-health.js'

/** How a listing fill is made: here, or by whichever instance claimed it first. */
export interface FillCoordinator {
  /**
   * `produce` fetches and validates here, returning the raw bytes and what the
   * caller builds of them; `adopt` builds the same from raw bytes another
   * instance fetched. `key` identifies the listing (credentials included),
   * `context` the generation it belongs to.
   */
  fill<T>(
    key: string,
    context: string,
    produce: () => Promise<{ raw: Buffer; value: T }>,
    adopt: (raw: Buffer) => T | Promise<T>,
  ): Promise<T>
}

/** Without a shared store: every fill is made here. */
export const LOCAL_FILLS: FillCoordinator = {
  async fill(_key, _context, produce) {
    return (await produce()).value
  },
}

interface FillCommands {
  ipdrFillClaim(
    ctxgen: string,
    context: string,
    digest: string,
    fillBase: string,
    lockTtlMs: number,
    id: string,
  ): Promise<[string, string]>
}

export interface RedisFillsOptions {
  /** The command connection (fast timeouts): claims. */
  readonly redis: StoreClient
  /** A connection with a timeout fit for moving a listing's bytes. */
  readonly bulk: StoreClient
  readonly keyPrefix: string
  readonly health: StoreHealth
  /** `store.redis.shareMaxBytes`; 0: never shared. */
  readonly shareMaxBytes: number
  /** `store.redis.timeoutMs`: the longest wait for one claim. */
  readonly timeoutMs: number
  /** `upstream.timeoutMs`: the longest a waiter waits, and the lock's TTL. */
  readonly upstreamTimeoutMs: number
  /** How long finished bytes stay for late waiters, in ms. */
  readonly bodyTtlMs: number
  readonly instanceId: string
  /** Monotonic ms; default `performance.now`. */
  readonly now?: () => number
}

const POLL_FIRST_MS = 5
const POLL_MAX_MS = 50

export class RedisFills implements FillCoordinator {
  readonly #redis: StoreClient & FillCommands
  readonly #bulk: StoreClient
  /** Where this fill's keys start: the coherence keys' hash tag (one slot with `#ctxgen`). */
  readonly #fillBase: string
  readonly #ctxgen: string
  readonly #health: StoreHealth
  readonly #opts: RedisFillsOptions
  readonly #now: () => number

  constructor(opts: RedisFillsOptions) {
    const redis = opts.redis as StoreClient & Partial<FillCommands>
    if (redis.ipdrFillClaim === undefined) {
      redis.defineCommand('ipdrFillClaim', { numberOfKeys: 1, lua: FILL_CLAIM_SCRIPT })
    }
    this.#redis = redis as StoreClient & FillCommands
    this.#bulk = opts.bulk
    this.#fillBase = coherenceKeys(opts.keyPrefix).fillBase
    this.#ctxgen = coherenceKeys(opts.keyPrefix).ctxgen
    this.#health = opts.health
    this.#opts = opts
    this.#now = opts.now ?? (() => performance.now())
  }

  async fill<T>(
    key: string,
    context: string,
    produce: () => Promise<{ raw: Buffer; value: T }>,
    adopt: (raw: Buffer) => T | Promise<T>,
  ): Promise<T> {
    const local = async () => (await produce()).value
    if (this.#opts.shareMaxBytes === 0) return local()
    const digest = sha256Hex(key).slice(0, 40)
    const started = this.#now()
    let pause = POLL_FIRST_MS
    for (;;) {
      if (!this.#health.up) return local()
      let gen: string
      let state: string
      try {
        ;[gen, state] = await withinDeadline(
          this.#redis.ipdrFillClaim(
            this.#ctxgen,
            context,
            digest,
            this.#fillBase,
            this.#opts.upstreamTimeoutMs,
            this.#opts.instanceId,
          ),
          this.#opts.timeoutMs,
        )
      } catch (err) {
        this.#health.failed('fill', err)
        return local()
      }
      const base = `${this.#fillBase}${digest}:${gen}`
      if (state === 'filler') return this.#asFiller(base, produce)
      if (state === 'ready') {
        const raw = await this.#bulk.getBuffer(`${base}:body`).catch((err: unknown) => {
          this.#health.noted('fill', err)
          return null
        })
        return raw ? adopt(raw) : local()
      }
      if (state !== 'wait' || this.#now() - started >= this.#opts.upstreamTimeoutMs) return local()
      await new Promise((resolve) => setTimeout(resolve, pause))
      pause = Math.min(POLL_MAX_MS, pause * 2)
    }
  }

  async #asFiller<T>(base: string, produce: () => Promise<{ raw: Buffer; value: T }>): Promise<T> {
    let out: { raw: Buffer; value: T }
    try {
      out = await produce()
    } catch (err) {
      // The others fetch for themselves, and get their own answer (an envelope is per credentials).
      this.#finish(base, 'failed', null)
      throw err
    }
    // Not awaited: this instance's clients need not wait for Redis to take the bytes.
    this.#finish(base, out.raw.length <= this.#opts.shareMaxBytes ? 'ready' : 'large', out.raw)
    return out.value
  }

  #finish(base: string, state: 'ready' | 'large' | 'failed', raw: Buffer | null): void {
    const ttl = state === 'failed' ? 1000 : this.#opts.bodyTtlMs
    const tx = this.#bulk.multi()
    if (state === 'ready' && raw) tx.set(`${base}:body`, raw, 'PX', ttl)
    tx.set(`${base}:state`, state, 'PX', ttl)
    tx.del(`${base}:lock`)
    tx.exec().catch((err: unknown) => {
      this.#health.noted('fill', err)
      // The bulk connection did not take it (not connected yet, a Cluster still finding its slots):
      // waiters must not wait out the lock (the upstream timeout). Tell them to fetch for themselves,
      // on the command connection, which small writes reach.
      this.#redis
        .set(`${base}:state`, 'failed', 'PX', 1000)
        .then(() => this.#redis.del(`${base}:lock`))
        .catch((again: unknown) => this.#health.noted('fill', again))
    })
  }
}
