/**
 * Runs a plan's writes (shared/SPEC.md 10): at most `concurrency` in flight,
 * at most `perSecond` started per second, phase after phase (a mapping is
 * created only once its customer's create has been answered), each write sent
 * once and its outcome reported before anything else is said about it. A
 * cancel stops new writes; those in flight finish and are reported.
 */
import type { SyncWrite } from './plan.js'

export interface WriteOutcome {
  readonly ok: boolean
  /** The status a client would have got for this write. */
  readonly status: number
  readonly code?: string
  readonly message?: string
}

export interface ApplyOptions {
  readonly concurrency: number
  readonly perSecond: number
  /** Sends one write; resolves with its outcome (never rejects for an upstream answer). */
  readonly write: (w: SyncWrite, index: number) => Promise<WriteOutcome>
  /** Called once per write, in the order writes finish. */
  readonly onOutcome: (w: SyncWrite, outcome: WriteOutcome) => void
  readonly cancelled: () => boolean
  /** Monotonic milliseconds (tests). */
  readonly now?: () => number
  readonly sleep?: (ms: number) => Promise<void>
}

/** 0: customers created and updated; 1: mappings updated, ended, deleted; 2: mappings created; 3: customers deleted. */
export function phaseOf(w: SyncWrite): number {
  if (w.resource === 'customers') return w.operation === 'delete' ? 3 : 0
  return w.operation === 'create' ? 2 : 1
}

/** Resolves once every write has been sent and answered, or the job was cancelled and the writes in flight have been. */
export async function applyWrites(writes: readonly SyncWrite[], opts: ApplyOptions): Promise<void> {
  const now = opts.now ?? (() => performance.now())
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)))
  const interval = 1000 / opts.perSecond
  let nextStart = now()
  let i = 0
  while (i < writes.length && !opts.cancelled()) {
    const phase = phaseOf(writes[i] as SyncWrite)
    let end = i
    while (end < writes.length && phaseOf(writes[end] as SyncWrite) === phase) end += 1
    let next = i
    const worker = async () => {
      for (;;) {
        if (opts.cancelled() || next >= end) return
        const index = next++
        // One start every `interval`: a slot is taken before waiting for it, so workers never share one.
        const slot = Math.max(now(), nextStart)
        nextStart = slot + interval
        const wait = slot - now()
        if (wait > 0) await sleep(wait)
        if (opts.cancelled()) return
        const w = writes[index] as SyncWrite
        let outcome: WriteOutcome
        try {
          outcome = await opts.write(w, index)
        } catch {
          // A bug, not an upstream answer (those come back as outcomes): reported, never retried.
          outcome = { ok: false, status: 500, code: 'IPDR_GW_INTERNAL', message: 'Internal error' }
        }
        opts.onOutcome(w, outcome)
      }
    }
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, end - i) }, worker))
    i = end
  }
}
