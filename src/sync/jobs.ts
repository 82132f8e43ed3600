/**
 * Sync jobs (shared/SPEC.md 10): their document, their owner, their life.
 * A job belongs to the consumer (rate key) that started it; another sees
 * `404`. It is kept for `retentionMs` (an hour) after it ends. At most
 * `maxJobs` of one owner run at once, and one apply per owner and context.
 * A job runs in the instance that started it; with a shared store
 * (src/store/shared-jobs.ts) it is published there, so every instance reads,
 * waits on and cancels it, and the limits count across instances (SPEC 15).
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
  /** Where every instance's jobs are kept (SPEC 15); default: this instance's memory only. */
  readonly shared?: JobStore
  /** Where stops and store failures are told. */
  readonly log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void }
}

/** What SyncJobs needs of a shared store (src/store/shared-jobs.ts). */
export interface JobStore {
  claim(
    owner: string,
    id: string,
    applyTo: string | null,
    maxJobs: number,
  ): Promise<'ok' | 'apply-running' | 'too-many'>
  publish(
    owner: string,
    id: string,
    applyTo: string | null,
    document: JobDocument,
    running: boolean,
  ): Promise<boolean>
  read(owner: string, id: string): Promise<{ document: JobDocument; leaseUntil: number | null } | null>
  requestCancel(owner: string, id: string): Promise<void>
}

/** How often a running job is published to the shared store (its lease renewed, its cancel flag read). */
const PUBLISH_MS = 1000

/** Too many jobs running for one owner. */
// Not a GatewayError: the job table is below HTTP; the sync route answers it as IPDR_GW_SYNC_JOBS_LIMIT.
export class TooManyJobsError extends Error {
  override name = 'TooManyJobsError'
}

/** An apply for the same owner and context is running (on any instance). */
// Not a GatewayError, as TooManyJobsError: answered as IPDR_GW_SYNC_APPLY_RUNNING (409).
export class ApplyRunningError extends Error {
  override name = 'ApplyRunningError'
}

/** A job another instance runs (or ran), as it last published it. */
export interface RemoteJob {
  readonly document: JobDocument
  /** True when it ended, or when its instance stopped renewing its lease (then `failed`). */
  readonly finished: boolean
}

/** What an instance that stopped answering leaves of a job it ran: `failed`, with why. */
function lost(document: JobDocument, at: number): JobDocument {
  return {
    ...document,
    state: 'failed',
    finishedAt: new Date(at).toISOString(),
    errors: [
      ...document.errors,
      {
        UserID: null,
        status: 503,
        code: 'IPDR_GW_SYNC_JOB_LOST',
        message: 'The instance running this job stopped; the writes it made are in its audit trail',
      },
    ],
  }
}

export class SyncJobs {
  readonly #jobs = new Map<string, SyncJob>()
  /** Per job, the context an apply holds (for the one-apply-per-context rule). */
  readonly #applyTo = new Map<string, string | null>()
  readonly #retentionMs: number
  readonly #now: () => number
  readonly #shared: JobStore | null
  readonly #log: SyncJobsOptions['log']
  /** Each job's publication of its end, still under way. */
  readonly #lastPublications = new Set<Promise<void>>()

  constructor(opts: SyncJobsOptions = {}) {
    this.#retentionMs = opts.retentionMs ?? 3_600_000
    this.#now = opts.now ?? Date.now
    this.#shared = opts.shared ?? null
    this.#log = opts.log
  }

  /**
   * A new job of `owner` in `context`; throws TooManyJobsError past `maxJobs` running, and
   * ApplyRunningError for a second apply of one owner and context (SPEC 15), counted across
   * instances when the store answers (else on this instance).
   */
  async start(
    owner: string,
    mode: JobMode,
    deleteAbsent: boolean,
    maxJobs: number,
    context = 'default',
  ): Promise<SyncJob> {
    this.prune()
    let running = 0
    const applyTo = mode === 'apply' ? context : null
    for (const job of this.#jobs.values()) {
      if (job.owner !== owner || job.finished) continue
      running += 1
      if (applyTo !== null && this.#applyTo.get(job.id) === applyTo)
        throw new ApplyRunningError(`A sync apply for this consumer and context is running (job ${job.id})`)
    }
    if (running >= maxJobs)
      throw new TooManyJobsError(
        `${running} sync jobs are running for this consumer (sync.maxJobs ${maxJobs})`,
      )
    const job = new SyncJob(owner, mode, deleteAbsent, this.#now)
    if (this.#shared) {
      let claimed: 'ok' | 'apply-running' | 'too-many' = 'ok'
      try {
        claimed = await this.#shared.claim(owner, job.id, applyTo, maxJobs)
      } catch {
        // The store is away: counted on this instance only, as budgets are (SPEC 8).
      }
      if (claimed === 'apply-running')
        throw new ApplyRunningError(
          'A sync apply for this consumer and context is running on another instance',
        )
      if (claimed === 'too-many')
        throw new TooManyJobsError(
          `sync.maxJobs (${maxJobs}) jobs are running for this consumer across instances`,
        )
    }
    this.#jobs.set(job.id, job)
    this.#applyTo.set(job.id, applyTo)
    if (this.#shared) this.#publishWhileRunning(job, applyTo, this.#shared)
    return job
  }

  /** Publishes the job now and every second until it ends, then once more; a cancel asked elsewhere is applied. */
  #publishWhileRunning(job: SyncJob, applyTo: string | null, store: JobStore): void {
    const publish = async (runningNow: boolean) => {
      try {
        if (await store.publish(job.owner, job.id, applyTo, job.document(), runningNow)) job.cancel()
      } catch {
        // The next publication tries again; the job runs on whatever the store does.
      }
    }
    void publish(true)
    const timer = setInterval(() => void publish(true), PUBLISH_MS)
    timer.unref()
    const last = job.ended.then(() => {
      clearInterval(timer)
      return publish(false)
    })
    this.#lastPublications.add(last)
    void last.then(() => this.#lastPublications.delete(last))
  }

  /** The job, if it exists on this instance and belongs to `owner`. */
  get(id: string, owner: string): SyncJob | undefined {
    this.prune()
    const job = this.#jobs.get(id)
    return job?.owner === owner ? job : undefined
  }

  /** A job of `owner` another instance runs or ran, as published; undefined when unknown (or no store). */
  async remote(id: string, owner: string): Promise<RemoteJob | undefined> {
    if (!this.#shared) return undefined
    const published = await this.#shared.read(owner, id)
    if (published === null) return undefined
    const { document, leaseUntil } = published
    const ended = document.finishedAt !== null
    if (!ended && leaseUntil !== null && leaseUntil < this.#now())
      return { document: lost(document, leaseUntil), finished: true }
    return { document, finished: ended }
  }

  /** Asks the instance running `id` to cancel it. */
  async cancelRemote(id: string, owner: string): Promise<void> {
    await this.#shared?.requestCancel(owner, id)
  }

  /** Forgets jobs that ended more than `retentionMs` ago. */
  prune(): void {
    const horizon = this.#now() - this.#retentionMs
    for (const [id, job] of this.#jobs) {
      const end = job.finishedAtMs
      if (end !== null && end < horizon) {
        this.#jobs.delete(id)
        this.#applyTo.delete(id)
      }
    }
  }

  /**
   * Cancels every running job and waits for them to end (the app's onClose, SIGTERM): the writes in
   * flight finish, each job ends `cancelled` with its progress, is published, and logged by id.
   */
  async close(): Promise<void> {
    const running = [...this.#jobs.values()].filter((j) => !j.finished)
    for (const job of running) job.cancel()
    await Promise.all(running.map((j) => j.ended))
    for (const job of running) {
      const doc = job.document()
      this.#log?.info(
        { syncJob: job.id, state: doc.state, progress: doc.progress },
        'sync job stopped with the gateway',
      )
    }
    // The jobs' last publications (their end) go out before the store is closed.
    await Promise.all([...this.#lastPublications])
  }
}
