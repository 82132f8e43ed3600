/**
 * Readiness (shared/SPEC.md 3.2): the upstream counts as reachable when the last
 * active probe (a TCP connect, every `probeIntervalSeconds`, the first at start)
 * succeeded, or when any upstream response has arrived since that probe.
 */
import { connect as netConnect } from 'node:net'

export interface ReadinessOptions {
  readonly url: URL
  readonly intervalMs: number
  readonly connectTimeoutMs: number
  /** Called after each probe with the new state (metrics, logs). */
  readonly onChange?: (up: boolean) => void
}

export class Readiness {
  #probeOk = false
  #responseSinceProbe = false
  #timer: NodeJS.Timeout | null = null
  #closed = false
  readonly #opts: ReadinessOptions

  constructor(opts: ReadinessOptions) {
    this.#opts = opts
  }

  get up(): boolean {
    return this.#probeOk || this.#responseSinceProbe
  }

  /** An upstream response arrived: it is reachable whatever the last probe said. */
  markResponse(): void {
    this.#responseSinceProbe = true
  }

  /** One TCP (plain, even for https: reachability is the question) connect attempt. */
  probe(): Promise<boolean> {
    const { url, connectTimeoutMs } = this.#opts
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80)
    const host = url.hostname.replace(/^\[|\]$/g, '')
    return new Promise((resolve) => {
      const socket = netConnect({ host, port })
      const done = (ok: boolean) => {
        clearTimeout(timer)
        socket.destroy()
        const before = this.up
        this.#probeOk = ok
        this.#responseSinceProbe = false
        if (before !== this.up) this.#opts.onChange?.(this.up)
        resolve(ok)
      }
      const timer = setTimeout(() => done(false), connectTimeoutMs)
      socket.once('connect', () => done(true))
      socket.once('error', () => done(false))
    })
  }

  /** Probes now, then every interval; the timer never keeps the process alive. */
  start(): Promise<boolean> {
    const first = this.probe()
    this.#timer = setInterval(() => {
      if (!this.#closed) void this.probe()
    }, this.#opts.intervalMs)
    this.#timer.unref()
    return first
  }

  stop(): void {
    this.#closed = true
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
  }
}
