/**
 * Acknowledgements of invalidations sent straight to the writer by UDP: one hop
 * (member → writer) instead of two (member → Redis → writer), and the second hop
 * was most of the invalidation's tail on a busy host (docs/performance.md, row
 * 10 (b)). Redis stays the fallback (below), so a datagram lost, or an address
 * the others cannot reach, costs time and never correctness.
 *
 * An acknowledgement must prove that the member it names sent it (a forged one
 * would let a writer answer before that member dropped its entries). The writer
 * puts a fresh secret in each announcement, which travels through Redis only; a
 * member answers with HMAC(secret, member id). The datagram names the
 * announcement by a tag derived from the secret, never the secret, so one
 * member's datagram seen on the wire cannot be turned into another's.
 *
 * The writer answers a proven acknowledgement with a receipt. A member sends its
 * acknowledgement through Redis too only when no receipt came within
 * `RECEIPT_WAIT_MS`, and at once for a writer whose last receipt did not come:
 * sent both ways every time, the second copy loaded Redis and the writer for
 * nothing and cost most of the gain (docs/decisions.md, "acknowledgements by
 * UDP"). A forged receipt (it takes the tag,
 * seen on the wire) can only delay a writer to its lease end, as dropping the
 * datagram would.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { isIP } from 'node:net'

/** Where an announcement asks for its acknowledgements, and the secret they answer. */
export interface AckRequest {
  readonly secret: string
  readonly host: string
  readonly port: number
}

/** One announcement's expectation: the text it carries (`secret host port`), and its end. */
export interface AckExpectation {
  readonly request: string
  done(): void
}

/** Longest datagram looked at: tag, member id and token with room to spare. */
const MAX_DATAGRAM_BYTES = 512
/** How long a member waits for the writer's receipt before acknowledging through Redis as well. */
export const RECEIPT_WAIT_MS = 5
/** How long a late receipt still proves its writer reachable. */
const RECEIPT_KEEP_MS = 2000
/** Writers remembered as not sending receipts (a Redis could name any number): past it, forgotten. */
const MAX_UNPROVEN_WRITERS = 1024
/** First character of a receipt; never the first of a tag (base64url). */
const RECEIPT = '!'
const SECRET_PATTERN = /^[A-Za-z0-9_-]{22}$/

/** `secret host port`, as an announcement carries it; null when it is not one. */
export function parseAckRequest(text: string): AckRequest | null {
  const parts = text.split(' ')
  if (parts.length !== 3) return null
  const [secret, host, portText] = parts as [string, string, string]
  const port = Number(portText)
  // An IP literal only: a member never resolves a name it read from Redis.
  if (!SECRET_PATTERN.test(secret) || isIP(host) === 0 || !Number.isInteger(port) || port < 1 || port > 65535)
    return null
  return { secret, host, port }
}

function tagOf(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url').slice(0, 16)
}

function tokenOf(secret: string, member: string): Buffer {
  return createHmac('sha256', secret).update(member).digest().subarray(0, 16)
}

export class DirectAcks {
  readonly #socket: Socket
  readonly #host: string
  readonly #port: number
  readonly #receiptWaitMs: number
  /** By tag: the secret of an announcement waiting for acknowledgements, and what to tell. */
  readonly #expected = new Map<string, { secret: string; onAck: (member: string) => void }>()
  /** By tag and member: acknowledgements sent whose receipt has not come, with their fallback timer. */
  readonly #unreceipted = new Map<string, { readonly writer: string; timer: NodeJS.Timeout }>()
  /** Writers (`host port`) whose last receipt did not come: acknowledged through Redis at once too. */
  readonly #unproven = new Set<string>()
  #closed = false

  private constructor(socket: Socket, host: string, port: number, receiptWaitMs: number) {
    this.#socket = socket
    this.#host = host
    this.#port = port
    this.#receiptWaitMs = receiptWaitMs
    socket.on('message', (message, from) => this.#onDatagram(message, from))
  }

  /**
   * A socket bound to `host` (an IP literal) on a port the system picks; rejects when it cannot bind.
   * `receiptWaitMs`: default `RECEIPT_WAIT_MS`.
   */
  static open(host: string, { receiptWaitMs = RECEIPT_WAIT_MS } = {}): Promise<DirectAcks> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' })
      socket.once('error', reject)
      socket.bind({ address: host, port: 0 }, () => {
        socket.off('error', reject)
        // A send that fails is a lost acknowledgement, which the one through Redis covers.
        socket.on('error', () => {})
        socket.unref()
        resolve(new DirectAcks(socket, host, socket.address().port, receiptWaitMs))
      })
    })
  }

  /** How many writers are acknowledged through Redis at once, their last receipt missing (diagnostics). */
  get unprovenWriters(): number {
    return this.#unproven.size
  }

  /** Where acknowledgements come in (diagnostics, tests). */
  get address(): { host: string; port: number } {
    return { host: this.#host, port: this.#port }
  }

  /**
   * Expects acknowledgements of one announcement, from now (one may come before Redis has answered
   * the writer); `onAck(member)` for each proven one, until `done()`.
   */
  expect(onAck: (member: string) => void): AckExpectation {
    const secret = randomBytes(16).toString('base64url')
    const tag = tagOf(secret)
    this.#expected.set(tag, { secret, onAck })
    return {
      request: `${secret} ${this.#host} ${this.#port}`,
      done: () => {
        this.#expected.delete(tag)
      },
    }
  }

  /**
   * Acknowledges, as `member`, the announcement that carried `request`; `throughRedis()` sends the
   * same acknowledgement through Redis, called when no receipt comes in time (at once for a writer
   * whose last receipt did not come, and when closed).
   */
  send(request: AckRequest, member: string, throughRedis: () => void): void {
    if (this.#closed) {
      throughRedis()
      return
    }
    const tag = tagOf(request.secret)
    const writer = `${request.host} ${request.port}`
    const token = tokenOf(request.secret, member).toString('base64url')
    this.#socket.send(`${tag}\n${member}\n${token}`, request.port, request.host, () => {})
    const key = `${tag}\n${member}`
    if (this.#unreceipted.has(key)) {
      // The same announcement again (a catch-up after the message): once by datagram is enough.
      throughRedis()
      return
    }
    // A writer whose last receipt did not come is acknowledged through Redis at once; its receipt for
    // this one, if it comes, makes it proven again.
    const unproven = this.#unproven.has(writer)
    if (unproven) throughRedis()
    const pending = {
      writer,
      timer: setTimeout(() => {
        // A receipt later than this still proves the writer reachable, for a while.
        pending.timer = setTimeout(() => this.#unreceipted.delete(key), RECEIPT_KEEP_MS)
        pending.timer.unref()
        if (unproven) return
        if (this.#unproven.size >= MAX_UNPROVEN_WRITERS) this.#unproven.clear()
        this.#unproven.add(writer)
        throughRedis()
      }, this.#receiptWaitMs),
    }
    pending.timer.unref()
    this.#unreceipted.set(key, pending)
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#expected.clear()
    for (const { timer } of this.#unreceipted.values()) clearTimeout(timer)
    this.#unreceipted.clear()
    this.#socket.close()
  }

  #onDatagram(message: Buffer, from: { address: string; port: number }): void {
    if (message.length > MAX_DATAGRAM_BYTES) return
    const text = message.toString('latin1')
    if (text.startsWith(RECEIPT)) {
      this.#onReceipt(text.slice(RECEIPT.length))
      return
    }
    const a = text.indexOf('\n')
    const b = a < 0 ? -1 : text.indexOf('\n', a + 1)
    if (b < 0) return
    const expected = this.#expected.get(text.slice(0, a))
    if (!expected) return
    const member = text.slice(a + 1, b)
    const token = Buffer.from(text.slice(b + 1), 'base64url')
    const want = tokenOf(expected.secret, member)
    if (token.length !== want.length || !timingSafeEqual(token, want)) return
    expected.onAck(member)
    this.#socket.send(`${RECEIPT}${text.slice(0, b)}`, from.port, from.address, () => {})
  }

  /** `tag\nmember`: the writer has the acknowledgement; nothing to send through Redis. */
  #onReceipt(key: string): void {
    const pending = this.#unreceipted.get(key)
    if (!pending) return
    clearTimeout(pending.timer)
    this.#unreceipted.delete(key)
    this.#unproven.delete(pending.writer)
  }
}
