/**
 * The audit trail's off-host copy (SPEC 14): every line, as it is written, to a syslog receiver —
 * RFC 5424 messages over TCP with octet-counted framing (RFC 6587 3.4.1), TLS when asked. A small
 * framed writer rather than a syslog client package: the ones on npm frame TCP by newline (a line
 * is JSON: it could hold one escaped, never raw, but the receiver must not depend on it), keep no
 * bounded in-order queue while the receiver is away, and none does octet counting over TLS
 * (docs/decisions.md).
 *
 * Shipping never delays a client: `ship` only queues. Frames go out in order; while the receiver is
 * away they wait, up to `queueBytes`, past which the oldest are dropped and counted. A frame counts
 * as shipped once the socket took it (TCP gives no receipt: a connection lost with bytes in flight
 * may lose them; `audit verify --shipped` compares what arrived).
 */

import { connect as connectTcp, type Socket } from 'node:net'
import { hostname } from 'node:os'
import { connect as connectTls } from 'node:tls'

export interface SyslogShipperOptions {
  readonly host: string
  readonly port: number
  /** TLS to the receiver, verified against `ca` (else the system CAs). */
  readonly tls: boolean
  readonly ca?: Buffer | null
  /** Most bytes of frames kept while the receiver is away. */
  readonly queueBytes: number
  /** Frames shipped (`ok`) or dropped from a full queue (`dropped`). */
  readonly onShipped?: (result: 'ok' | 'dropped', n: number) => void
  /** A connection made or lost (for the log). */
  readonly onState?: (connected: boolean, err?: Error) => void
  /** The HOSTNAME field. Default the host's name. */
  readonly hostname?: string
  /** Clock for TIMESTAMP (tests). */
  readonly now?: () => number
}

/** Facility 13, "log audit" (RFC 5424 6.2.1); severity 6, informational. */
const PRI = 13 * 8 + 6
const MAX_RETRY_MS = 5000

/** `line` as one octet-counted RFC 5424 frame whose MSG is the line itself. */
export function syslogFrame(line: string, time: Date, host: string, pid: number): Buffer {
  const header = `<${PRI}>1 ${time.toISOString()} ${host || '-'} ipdr-gateway ${pid} audit - `
  const msg = Buffer.from(header + line)
  return Buffer.concat([Buffer.from(`${msg.length} `), msg])
}

export class SyslogShipper {
  readonly #opts: SyslogShipperOptions
  readonly #host: string
  readonly #now: () => number
  #queue: Buffer[] = []
  #queued = 0
  /** Bytes handed to the socket, not yet taken. */
  #inFlight = 0
  #socket: Socket | null = null
  #connected = false
  #writing = false
  #retry = 250
  #timer: NodeJS.Timeout | null = null
  #closed = false

  constructor(opts: SyslogShipperOptions) {
    this.#opts = opts
    this.#host = (opts.hostname ?? hostname()).replace(/\s/g, '') || '-'
    this.#now = opts.now ?? Date.now
    this.#connect()
  }

  /** Bytes waiting for the receiver. */
  get queueBytes(): number {
    return this.#queued + this.#inFlight
  }

  get connected(): boolean {
    return this.#connected
  }

  /** Queues `lines` (audit lines, without newlines) in order; sends what it can at once. */
  ship(lines: readonly string[]): void {
    if (this.#closed) return
    const time = new Date(this.#now())
    for (const line of lines) {
      const frame = syslogFrame(line, time, this.#host, process.pid)
      this.#queue.push(frame)
      this.#queued += frame.length
    }
    let dropped = 0
    while (this.#queued > this.#opts.queueBytes && this.#queue.length > 0) {
      const oldest = this.#queue.shift() as Buffer
      this.#queued -= oldest.length
      dropped += 1
    }
    if (dropped > 0) this.#opts.onShipped?.('dropped', dropped)
    this.#pump()
  }

  /** Sends what is queued for up to `ms`, then closes the connection. */
  async close(ms = 2000): Promise<void> {
    const deadline = Date.now() + ms
    while (this.#queue.length > 0 && this.#connected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10))
    }
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    const socket = this.#socket
    this.#socket = null
    if (socket) await new Promise<void>((resolve) => socket.end(resolve)).catch(() => {})
    socket?.destroy()
  }

  #connect(): void {
    if (this.#closed) return
    const { host, port } = this.#opts
    const socket = this.#opts.tls
      ? connectTls({ host, port, servername: host, ...(this.#opts.ca ? { ca: this.#opts.ca } : {}) })
      : connectTcp({ host, port })
    this.#socket = socket
    socket.setKeepAlive(true, 10_000)
    socket.once(this.#opts.tls ? 'secureConnect' : 'connect', () => {
      this.#connected = true
      this.#retry = 250
      this.#opts.onState?.(true)
      this.#pump()
    })
    // Nothing is read from a syslog receiver; a read error or end means the connection is gone.
    socket.on('data', () => {})
    socket.on('error', (err) => {
      if (this.#connected) this.#opts.onState?.(false, err)
    })
    socket.on('close', () => {
      if (this.#socket !== socket) return
      const was = this.#connected
      this.#connected = false
      this.#writing = false
      this.#socket = null
      if (was) this.#opts.onState?.(false)
      if (this.#closed) return
      this.#timer = setTimeout(() => this.#connect(), this.#retry)
      this.#timer.unref()
      this.#retry = Math.min(MAX_RETRY_MS, this.#retry * 2)
    })
  }

  /** Writes the queue's head frames, in order, one socket write at a time. */
  #pump(): void {
    const socket = this.#socket
    if (!socket || !this.#connected || this.#writing || this.#queue.length === 0) return
    const frames = this.#queue
    this.#queue = []
    const bytes = Buffer.concat(frames)
    this.#queued -= bytes.length
    this.#inFlight = bytes.length
    this.#writing = true
    socket.write(bytes, (err) => {
      this.#writing = false
      this.#inFlight = 0
      if (err) {
        // Not taken: back at the head of the queue, in order, for the next connection.
        this.#queue = frames.concat(this.#queue)
        this.#queued += bytes.length
        return
      }
      this.#opts.onShipped?.('ok', frames.length)
      this.#pump()
    })
  }
}
