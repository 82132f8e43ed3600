/**
 * Sync jobs behind a load balancer (SPEC 15): the job documents, the running-job limits and the
 * cancel requests of every instance, in Redis. A job is run by the instance that started it; that
 * instance publishes its document (with a lease) as it goes, so any instance can answer `GET` and
 * `wait`, and a `DELETE` anywhere sets a cancel flag the running instance reads at its next
 * publication. An instance that dies stops renewing its lease: the others report its running jobs
 * `failed` once the lease has run out.
 *
 * Keys carry digests of the owner (a consumer's rate key), never a username in clear, and one hash
 * tag per owner, so the keys a script touches share a Cluster slot.
 */

import { sha256Hex } from '../credentials.js'
import { SYNC_CLAIM_SCRIPT, SYNC_PUBLISH_SCRIPT } from './lua.js'
import { type StoreClient, withinDeadline } from './redis-client.js'

/** How long a running job's lease lasts without a publication. */
export const JOB_LEASE_MS = 10_000
/** How often a running job is published (its lease renewed, its cancel flag read). */
export const JOB_PUBLISH_MS = 1000
/** How long a job stays readable after it ends (SPEC 10: an hour). */
export const JOB_RETENTION_MS = 3_600_000

export type ClaimResult = 'ok' | 'apply-running' | 'too-many'

/** A job document as another instance published it. */
export interface PublishedJob<D> {
  readonly document: D
  /** The running instance's lease end (ms since the epoch); null once the job has ended. */
  readonly leaseUntil: number | null
}

interface JobCommands {
  ipdrSyncClaim(running: string, apply: string, ...args: string[]): Promise<ClaimResult>
  ipdrSyncPublish(
    doc: string,
    running: string,
    apply: string,
    cancel: string,
    ...args: string[]
  ): Promise<number>
}

export interface SharedJobsOptions {
  readonly redis: StoreClient
  readonly keyPrefix: string
  readonly timeoutMs: number
  readonly now?: () => number
}

export class SharedJobs {
  readonly #redis: StoreClient & JobCommands
  readonly #prefix: string
  readonly #timeoutMs: number
  readonly #now: () => number

  constructor(opts: SharedJobsOptions) {
    const redis = opts.redis as StoreClient & Partial<JobCommands>
    if (redis.ipdrSyncClaim === undefined) {
      redis.defineCommand('ipdrSyncClaim', { numberOfKeys: 2, lua: SYNC_CLAIM_SCRIPT })
      redis.defineCommand('ipdrSyncPublish', { numberOfKeys: 4, lua: SYNC_PUBLISH_SCRIPT })
    }
    this.#redis = redis as StoreClient & JobCommands
    this.#prefix = opts.keyPrefix
    this.#timeoutMs = opts.timeoutMs
    this.#now = opts.now ?? Date.now
  }

  #tag(owner: string): string {
    return `{${sha256Hex(owner).slice(0, 32)}}`
  }

  #keys(owner: string, id: string, applyTo: string | null) {
    const tag = this.#tag(owner)
    const doc = `${this.#prefix}sync:${tag}:job:${id}`
    return {
      doc,
      running: `${this.#prefix}sync:${tag}:running`,
      apply: applyTo === null ? doc : `${this.#prefix}sync:${tag}:apply:${sha256Hex(applyTo).slice(0, 32)}`,
      cancel: `${this.#prefix}sync:${tag}:cancel:${id}`,
    }
  }

  /**
   * Claims a place for job `id` of `owner`: at most `maxJobs` running across instances, and for an
   * apply at most one per owner and `applyTo` (its context).
   */
  async claim(owner: string, id: string, applyTo: string | null, maxJobs: number): Promise<ClaimResult> {
    const k = this.#keys(owner, id, applyTo)
    const now = this.#now()
    return withinDeadline(
      this.#redis.ipdrSyncClaim(
        k.running,
        k.apply,
        id,
        String(now),
        String(now + JOB_LEASE_MS),
        String(maxJobs),
        applyTo === null ? '0' : '1',
        String(JOB_LEASE_MS),
      ),
      this.#timeoutMs,
    )
  }

  /** Publishes a job's document, renews its lease while it runs; true when a cancel was asked for. */
  async publish<D>(
    owner: string,
    id: string,
    applyTo: string | null,
    document: D,
    running: boolean,
  ): Promise<boolean> {
    const k = this.#keys(owner, id, applyTo)
    const leaseUntil = running ? this.#now() + JOB_LEASE_MS : null
    const asked = await withinDeadline(
      this.#redis.ipdrSyncPublish(
        k.doc,
        k.running,
        k.apply,
        k.cancel,
        id,
        JSON.stringify({ document, leaseUntil }),
        running ? '1' : '0',
        String(leaseUntil ?? 0),
        String(JOB_LEASE_MS),
        String(JOB_RETENTION_MS),
        applyTo === null ? '0' : '1',
      ),
      this.#timeoutMs,
    )
    return asked === 1
  }

  /** The job `id` of `owner` as it was last published, or null. */
  async read<D>(owner: string, id: string): Promise<PublishedJob<D> | null> {
    const text = await withinDeadline(this.#redis.get(this.#keys(owner, id, null).doc), this.#timeoutMs)
    return text === null ? null : (JSON.parse(text) as PublishedJob<D>)
  }

  /** Asks the instance running job `id` to cancel it (read at its next publication). */
  async requestCancel(owner: string, id: string): Promise<void> {
    await withinDeadline(
      this.#redis.set(this.#keys(owner, id, null).cancel, '1', 'PX', JOB_RETENTION_MS),
      this.#timeoutMs,
    )
  }
}
