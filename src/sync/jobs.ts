/**
 * Sync jobs (shared/SPEC.md 10): their document, their owner, their life.
 * A job belongs to the consumer (rate key) that started it; another sees
 * `404`. It is kept for `retentionMs` (an hour) after it ends. At most
 * `maxJobs` of one owner run at once. Jobs live in the instance that started
 * them (docs/sync.md).
 */
import { randomUUID } from 'node:crypto'
import type { MappingCounts, PlanCounts, SyncPlan } from './plan.js'

export type JobState = 'planning' | 'applying' | 'done' | 'failed' | 'cancelled'
export type JobMode = 'plan' | 'apply'

export interface JobError {
  readonly UserID: string | null
  readonly status: number
  readonly code: string
  readonly message: string
  /** `record N` / `line N` for input errors; the write for upstream errors. */
  readonly source?: string
  readonly resource?: string
  readonly operation?: string
}

/** Lists in the document stop here (the counts stay exact). */
export const MAX_LISTED = 1000

export interface JobDocument {
  readonly id: string
  readonly state: JobState
  readonly mode: JobMode
  readonly delete: boolean
  readonly plan: PlanCounts | null
  readonly mappings: MappingCounts | null
  readonly progress: { readonly done: number; readonly total: number; readonly failed: number }
  readonly errors: readonly JobError[]
  /** Customers in Trisul and not in the input, left alone (`delete=false`); at most MAX_LISTED. */
  readonly absent: readonly string[]
  /** True when `errors` or `absent` were cut at MAX_LISTED. */
  readonly truncated: boolean
  readonly startedAt: string
  readonly finishedAt: string | null
}

export class SyncJob {
  readonly id = randomUUID()
  readonly owner: string
  readonly mode: JobMode
  readonly deleteAbsent: boolean
  #state: JobState = 'planning'
  #plan: SyncPlan | null = null
  #nameAbsent = true
  #done = 0
  #failed = 0
  #total = 0
  readonly #errors: JobError[] = []
  #truncated = false
  readonly #startedAt: Date
  #finishedAt: Date | null = null
  #cancelRequested = false
  readonly #ended: Promise<void>
  #end!: () => void
  readonly #now: () => number

  constructor(owner: string, mode: JobMode, deleteAbsent: boolean, now: () => number) {
    this.owner = owner
    this.mode = mode
    this.deleteAbsent = deleteAbsent
    this.#now = now
    this.#startedAt = new Date(now())
    this.#ended = new Promise((resolve) => {
      this.#end = resolve
    })
  }

  get state(): JobState {
    return this.#state
  }

  get finished(): boolean {
    return this.#finishedAt !== null
  }

  get finishedAtMs(): number | null {
    return this.#finishedAt?.getTime() ?? null
  }

  /** Resolves when the job ends, whatever the end. */
  get ended(): Promise<void> {
    return this.#ended
  }

  get cancelRequested(): boolean {
    return this.#cancelRequested
  }

  /** Stops new writes; the job ends `cancelled` once those in flight are answered. */
  cancel(): void {
    if (!this.finished) this.#cancelRequested = true
  }

  /**
   * The plan is made. `nameAbsent`: the consumer may list customers, so the document may name the
   * customers absent from its input (SPEC 13: else only their count). Default true.
   */
  planned(plan: SyncPlan, { nameAbsent = true }: { nameAbsent?: boolean } = {}): void {
    this.#plan = plan
    this.#nameAbsent = nameAbsent
    for (const bad of plan.invalid) {
      this.addError({
        UserID: bad.UserID,
        status: 400,
        code: 'IPDR_GW_VALIDATION',
        message: bad.message,
        source: bad.source,
      })
    }
    if (this.mode === 'apply' && !this.#cancelRequested) {
      this.#state = 'applying'
      this.#total = plan.writes.length
    }
  }

  wrote(ok: boolean, error?: JobError): void {
    this.#done += 1
    if (!ok) {
      this.#failed += 1
      if (error) this.addError(error)
    }
  }

  addError(error: JobError): void {
    if (this.#errors.length < MAX_LISTED) this.#errors.push(error)
    else this.#truncated = true
  }

  /** Ends the job: `done`, or `cancelled` when a cancel came first, or `failed`. */
  finish(failure?: JobError): void {
    if (this.finished) return
    if (failure) {
      this.addError(failure)
      this.#state = 'failed'
    } else {
      this.#state = this.#cancelRequested ? 'cancelled' : 'done'
    }
    this.#finishedAt = new Date(this.#now())
    this.#end()
  }

  document(): JobDocument {
    const plan = this.#plan
    const absent = this.#nameAbsent ? (plan?.absent ?? []) : []
    return {
      id: this.id,
      state: this.#state,
      mode: this.mode,
      delete: this.deleteAbsent,
      plan: plan?.counts ?? null,
      mappings: plan?.mappings ?? null,
      progress: { done: this.#done, total: this.#total, failed: this.#failed },
      errors: [...this.#errors],
      absent: absent.slice(0, MAX_LISTED),
      truncated: this.#truncated || absent.length > MAX_LISTED,
      startedAt: this.#startedAt.toISOString(),
      finishedAt: this.#finishedAt?.toISOString() ?? null,
    }
  }
}

export interface SyncJobsOptions {
  /** How long an ended job stays readable. Default one hour. */
  readonly retentionMs?: number
  readonly now?: () => number
}

/** Too many jobs running for one owner. */
// Not a GatewayError: the job table is below HTTP; the sync route answers it as IPDR_GW_SYNC_JOBS_LIMIT.
export class TooManyJobsError extends Error {
  override name = 'TooManyJobsError'
}

export class SyncJobs {
  readonly #jobs = new Map<string, SyncJob>()
  readonly #retentionMs: number
  readonly #now: () => number

  constructor(opts: SyncJobsOptions = {}) {
    this.#retentionMs = opts.retentionMs ?? 3_600_000
    this.#now = opts.now ?? Date.now
  }

  /** A new job of `owner`; throws TooManyJobsError past `maxJobs` running. */
  start(owner: string, mode: JobMode, deleteAbsent: boolean, maxJobs: number): SyncJob {
    this.prune()
    let running = 0
    for (const job of this.#jobs.values()) if (job.owner === owner && !job.finished) running += 1
    if (running >= maxJobs)
      throw new TooManyJobsError(
        `${running} sync jobs are running for this consumer (sync.maxJobs ${maxJobs})`,
      )
    const job = new SyncJob(owner, mode, deleteAbsent, this.#now)
    this.#jobs.set(job.id, job)
    return job
  }

  /** The job, if it exists and belongs to `owner`. */
  get(id: string, owner: string): SyncJob | undefined {
    this.prune()
    const job = this.#jobs.get(id)
    return job?.owner === owner ? job : undefined
  }

  /** Forgets jobs that ended more than `retentionMs` ago. */
  prune(): void {
    const horizon = this.#now() - this.#retentionMs
    for (const [id, job] of this.#jobs) {
      const end = job.finishedAtMs
      if (end !== null && end < horizon) this.#jobs.delete(id)
    }
  }

  /** Cancels every job and waits for them to end (the app's onClose). */
  async close(): Promise<void> {
    const running = [...this.#jobs.values()].filter((j) => !j.finished)
    for (const job of running) job.cancel()
    await Promise.all(running.map((j) => j.ended))
  }
}
