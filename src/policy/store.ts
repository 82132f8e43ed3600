/**
 * Holds the policy in force and swaps it on reload (SIGHUP, or a change of the
 * files). The swap is one reference assignment: a request that read
 * `store.current` at its start keeps that frozen object to its end, new
 * requests get the new one. An invalid reload keeps the old policy, logs every
 * problem and reports `invalid` (for the reload metric).
 */
import { type FSWatcher, watch as fsWatch } from 'node:fs'
import { join } from 'node:path'
import { type LoadResult, loadPolicy } from './load.js'
import type { Policy } from './types.js'

export interface PolicyLogger {
  info(o: object, m?: string): void
  warn(o: object, m?: string): void
  error(o: object, m?: string): void
}

export interface PolicyStoreOptions {
  /** The policy directory (`--policies`). */
  dir: string
  /** Environment for `tokenEnv` lookups, read again at every reload. */
  env: Readonly<Record<string, string | undefined>>
  /** The policy loaded at start (the start refuses to run without a valid one). */
  initial: Policy
  /** Where reloads are reported. Default: nowhere. */
  logger?: PolicyLogger
  /** Called after every reload that was checked (not for unchanged files seen by the watcher). */
  onReload?: (result: 'ok' | 'invalid', problems: string[]) => void
  /** Quiet time after the last file event before a watched reload. Default 250 ms. */
  debounceMs?: number
}

const silent: PolicyLogger = { info() {}, warn() {}, error() {} }

export class PolicyStore {
  #current: Policy
  readonly #dir: string
  readonly #env: Readonly<Record<string, string | undefined>>
  readonly #logger: PolicyLogger
  readonly #onReload: PolicyStoreOptions['onReload']
  readonly #debounceMs: number
  /** The reload that is running (reloads never overlap). */
  #running: Promise<unknown> = Promise.resolve()
  /** A reload queued behind the running one; later calls share it. */
  #queued: Promise<LoadResult> | null = null
  #watchers = new Map<string, FSWatcher>()
  #timer: NodeJS.Timeout | null = null
  #watching = false
  #closed = false
  /** The last reload was rejected: the next valid one is reported even if unchanged. */
  #lastInvalid = false

  constructor(opts: PolicyStoreOptions) {
    this.#current = opts.initial
    this.#dir = opts.dir
    this.#env = opts.env
    this.#logger = opts.logger ?? silent
    this.#onReload = opts.onReload
    this.#debounceMs = opts.debounceMs ?? 250
  }

  /** The policy in force. */
  get current(): Policy {
    return this.#current
  }

  /** Re-reads the directory and swaps the policy when it is valid. Never rejects. */
  reload(): Promise<LoadResult> {
    return this.#enqueue(false)
  }

  #enqueue(quietWhenUnchanged: boolean): Promise<LoadResult> {
    // A reload already waiting will read the files after this call: share it.
    if (this.#queued) return this.#queued
    const run = this.#running.then(() => {
      this.#queued = null
      return this.#reloadNow(quietWhenUnchanged)
    })
    this.#queued = run
    this.#running = run.catch(() => {})
    return run
  }

  async #reloadNow(quietWhenUnchanged: boolean): Promise<LoadResult> {
    let result: LoadResult
    try {
      result = await loadPolicy(this.#dir, this.#env)
    } catch (err) {
      // loadPolicy reports problems instead of throwing; this is a last resort.
      result = {
        ok: false,
        problems: [`${this.#dir}: (directory): reload failed (${(err as Error).message})`],
      }
    }
    if (this.#watching) this.#arm()
    const old = this.#current
    if (!result.ok) {
      this.#logger.error(
        { policyVersion: old.version, problems: result.problems },
        `policy reload rejected (${result.problems.length} problems); keeping version ${old.version}`,
      )
      this.#lastInvalid = true
      this.#onReload?.('invalid', result.problems)
      return result
    }
    const wasInvalid = this.#lastInvalid
    this.#lastInvalid = false
    if (result.policy.version === old.version && sameSecrets(old, result.policy)) {
      // Same files (and the same secrets they name): keep the object, so anything derived from it stays valid.
      if (!quietWhenUnchanged || wasInvalid) {
        this.#logger.info({ policyVersion: old.version }, 'policy reloaded: unchanged')
        this.#onReload?.('ok', [])
      }
      return { ok: true, policy: old }
    }
    const restartOnly = startOnlyChanges(old, result.policy)
    if (restartOnly.length > 0) {
      this.#logger.warn(
        { policyVersion: result.policy.version, keys: restartOnly },
        `${restartOnly.join(', ')} changed: read at start only, it takes effect after a restart`,
      )
    }
    this.#current = result.policy
    this.#logger.info(
      {
        policyVersion: result.policy.version,
        previousVersion: old.version,
        consumers: result.policy.consumers.length,
      },
      'policy reloaded',
    )
    this.#onReload?.('ok', [])
    return result
  }

  /**
   * Watches DIR and DIR/consumers and reloads after `debounceMs` of quiet.
   * Directories, not files, are watched, so editors that write a new file and
   * rename it over the old one (and Kubernetes' symlink swaps) are seen; the
   * consumers watcher is re-armed when that directory appears or is replaced.
   * Without fs.watch support it logs a warning: SIGHUP still works.
   */
  watch(): void {
    if (this.#closed || this.#watching) return
    this.#watching = true
    this.#arm()
  }

  #arm(): void {
    for (const path of [this.#dir, join(this.#dir, 'consumers')]) {
      if (this.#watchers.has(path)) continue
      let watcher: FSWatcher
      try {
        watcher = fsWatch(path, { persistent: false }, (_event, name) => this.#changed(path, name))
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOENT' && code !== 'ENOTDIR') {
          this.#logger.warn({ dir: path, code }, 'cannot watch the policy directory; reload with SIGHUP')
        }
        continue
      }
      watcher.on('error', () => this.#drop(path))
      this.#watchers.set(path, watcher)
    }
  }

  #drop(path: string): void {
    this.#watchers.get(path)?.close()
    this.#watchers.delete(path)
  }

  #changed(path: string, name: string | Buffer | null): void {
    if (this.#closed) return
    // `consumers` created, removed or replaced: watch the new one.
    if (path === this.#dir && String(name) === 'consumers') this.#drop(join(this.#dir, 'consumers'))
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timer = null
      if (!this.#closed) void this.#enqueue(true)
    }, this.#debounceMs)
    this.#timer.unref()
  }

  /** Stops watching; a reload in progress still completes. */
  close(): void {
    this.#closed = true
    this.#watching = false
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    for (const path of [...this.#watchers.keys()]) this.#drop(path)
  }
}

/**
 * Keys read once at start (they shape the connection pool, the HTTP server or
 * its routes), whose change a reload can only report (docs/decisions.md).
 */
export function startOnlyChanges(old: Policy, next: Policy): string[] {
  const a = old.gateway
  const b = next.gateway
  const pairs: [string, unknown, unknown][] = [
    ['upstream', a.upstream, b.upstream],
    ['limits.bodyBytes', a.limits.bodyBytes, b.limits.bodyBytes],
    ['trustProxy', a.trustProxy, b.trustProxy],
    ['metrics.port', a.metrics.port, b.metrics.port],
    ['docs.swaggerUi', a.docs.swaggerUi, b.docs.swaggerUi],
    ['store', a.store, b.store],
    ['audit', a.audit, b.audit],
    ['server.tls', a.server.tls, b.server.tls],
    ['telemetry', a.telemetry, b.telemetry],
    // The secret, not only its file name: a rotated Redis password needs the connections made again.
    ['store.redis passwords', old.storeSecrets, next.storeSecrets],
  ]
  return pairs.filter(([, x, y]) => JSON.stringify(x) !== JSON.stringify(y)).map(([k]) => k)
}

/**
 * Whether two loads read the same secrets. The version hashes the policy files only; a token file
 * or a variable a reload re-reads (SPEC 16: rotate the secret, then SIGHUP) changes none of them.
 */
function sameSecrets(a: Policy, b: Policy): boolean {
  const same = (x: ReadonlyMap<string, string>, y: ReadonlyMap<string, string>) =>
    x.size === y.size && [...x].every(([k, v]) => y.get(k) === v)
  return (
    same(a.tokens, b.tokens) &&
    same(a.jwtPublicKeys, b.jwtPublicKeys) &&
    a.metricsToken === b.metricsToken &&
    a.storeSecrets.password === b.storeSecrets.password &&
    a.storeSecrets.sentinelPassword === b.storeSecrets.sentinelPassword
  )
}
