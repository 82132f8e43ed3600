/**
 * Read-your-writes across instances (SPEC 8) without a Redis round trip on a
 * cache hit. Each instance holds a lease ({@link Lease}) renewed through Redis
 * every quarter lease, and serves cached listings only while it holds it. A
 * write, once the upstream has answered and before the client is answered,
 * invalidates its context here, then announces it (one script: bump the
 * sequence, append to the event list, publish, list the live leases), and waits
 * until every other live instance has acknowledged it or its lease has run out.
 *
 * Events are kept durably (a capped list with the sequence, after Kong's
 * cluster_events), so an instance whose subscriber missed a message catches up
 * at its next renewal; a gap too long for the list, or a Redis that lost its
 * data (a new epoch), drops the whole cache. A write that cannot be announced
 * is kept and announced when Redis answers again, and its response waits until
 * every lease Redis may have granted before it went away has run out.
 *
 * The argument, and the failure cases, are in docs/architecture.md and
 * docs/decisions.md.
 */

import { randomBytes } from 'node:crypto'
import { channel } from 'node:diagnostics_channel'

import { ChangeOrder, type WriteTicket } from './change-order.js'
import { type AckRequest, DirectAcks, parseAckRequest } from './direct-acks.js'
import { Lease } from './lease.js'
import { ANNOUNCE_SCRIPT, RENEW_SCRIPT } from './lua.js'
import { localAddressOf, type StoreClient, withinDeadline } from './redis-client.js'
import type { StoreHealth } from './store-health.js'

/** What the coherence protocol does to the local cache. */
export interface LocalInvalidation {
  invalidateContext(context: string): number
  invalidateAll(): number
  /**
   * Applies a write's change (opaque here: src/cache/write-change.ts) to the context's listings
   * instead of dropping them (SPEC 19). Absent: the context is dropped.
   */
  applyChange?(context: string, change: unknown): void
}

/** A write answered by the upstream, as its invalidation takes it. */
export interface SettledWrite {
  readonly ticket: WriteTicket
  /** Its change to apply; null: drop the context. */
  readonly change: CarriedChange | null
}

export type { WriteTicket }

/** The cache's view of the other instances. */
export interface Coherence {
  /** Whether cached listings may be served now; synchronous, no I/O (the hit path calls it). */
  mayServeCached(): boolean
  /**
   * Invalidates `context` here and on every instance; resolves when no instance
   * can serve a listing of it cached before this call. Never rejects. With `write`, its change is
   * applied instead where the order of writes allows it (src/store/change-order.ts).
   */
  invalidate(context: string, write?: SettledWrite): Promise<void>
  /** A write touching `keys` (UserIDs) is about to be sent; pass the ticket to `invalidate` (or `abandonWrite`). */
  beginWrite(context: string, keys: readonly string[]): WriteTicket
  /** The write was never sent. */
  abandonWrite(ticket: WriteTicket): void
  close(): Promise<void>
}

/** Applies `change` where the cache can take it, else drops the context. */
/**
 * A write's change as the store carries it: applied here as it is (`value`), announced to the other
 * instances as `text()` (null: too large to carry, and they drop). Opaque to this floor.
 */
export interface CarriedChange {
  readonly value: unknown
  text(): string | null
}

function applyOrDrop(cache: LocalInvalidation, context: string, change: unknown): void {
  if (change !== null && change !== undefined && cache.applyChange !== undefined)
    cache.applyChange(context, change)
  else cache.invalidateContext(context)
}

/** One instance: invalidation is local and immediate. */
export class LocalCoherence implements Coherence {
  readonly #cache: LocalInvalidation
  readonly #order = new ChangeOrder()

  constructor(cache: LocalInvalidation) {
    this.#cache = cache
  }

  mayServeCached(): boolean {
    return true
  }

  beginWrite(context: string, keys: readonly string[]): WriteTicket {
    return this.#order.begin(context, keys)
  }

  abandonWrite(ticket: WriteTicket): void {
    this.#order.abandon(ticket)
  }

  invalidate(context: string, write?: SettledWrite): Promise<void> {
    if (write === undefined) {
      this.#cache.invalidateContext(context)
      return Promise.resolve()
    }
    const alone = this.#order.settle(write.ticket)
    this.#order.recordLocal(context, write.ticket.keys)
    applyOrDrop(this.#cache, context, alone ? (write.change?.value ?? null) : null)
    return Promise.resolve()
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

/** Newest events kept for instances catching up; a longer gap drops the whole cache. */
export const MAX_EVENTS = 1000
/** TTL of the protocol's keys, refreshed by every renewal and announcement. */
export const KEY_TTL_MS = 24 * 3600 * 1000

interface CoherenceCommands {
  ipdrLeaseRenew(
    members: string,
    seq: string,
    events: string,
    epoch: string,
    id: string,
    leaseMs: number,
    lastSeen: number,
    epochCandidate: string,
    keyTtlMs: number,
  ): Promise<[string, number, number, string[], string]>
  ipdrAnnounce(
    seq: string,
    events: string,
    members: string,
    ctxgen: string,
    epoch: string,
    context: string,
    id: string,
    keyTtlMs: number,
    maxEvents: number,
    channel: string,
  ): Promise<[number, number, string[], string]>
}

/**
 * The key names of the protocol under a prefix (also used by the shared fill). The keys its scripts
 * touch together carry one hash tag, so a Redis Cluster keeps them in one slot (SPEC 15); channels are
 * not keys (a Cluster's PUBLISH reaches every node).
 */
export function coherenceKeys(prefix: string) {
  const tagged = `${prefix}{coherence}:`
  return {
    members: `${tagged}members`,
    seq: `${tagged}seq`,
    events: `${tagged}events`,
    epoch: `${tagged}epoch`,
    ctxgen: `${tagged}ctxgen`,
    /** Where the shared fill's keys start (same slot as `ctxgen`, which its claim script reads). */
    fillBase: `${tagged}fill:`,
    invalidations: `${prefix}invalidations`,
    acks: (instance: string) => `${prefix}acks:${instance}`,
  }
}

/**
 * Published (node:diagnostics_channel) when a write's announcement is settled: every other live
 * instance has acknowledged it or its lease has run out. `{ seq, leases }` (the live leases Redis
 * listed, the writer's own among them); for tracing and the benchmark of row 10 (b), free when
 * nothing subscribes.
 */
export const SETTLED_CHANNEL = 'ipdr-gateway:coherence:settled'
const settledChannel = channel(SETTLED_CHANNEL)

/** What an announcement carries of its write (SPEC 19), when its writer says. */
interface AnnouncedWrite {
  /** The highest sequence the writer knew when it sent the write. */
  readonly after: number
  readonly keys: readonly string[]
  /** The change to apply; null: drop the context. */
  readonly change: string | null
}

interface ParsedEvent {
  readonly seq: number
  readonly writer: string
  readonly context: string
  /** Where the writer takes acknowledgements directly (src/store/direct-acks.ts), if it does. */
  readonly ack: AckRequest | null
  /** The write, when the writer described it; null: an invalidation alone (it meets every write). */
  readonly write: AnnouncedWrite | null
}

/** The writer field's last word when the announcement describes its write: `w=` + base64url(JSON). */
const WRITE_PREFIX = 'w='

function writeWord(write: AnnouncedWrite): string {
  return ` ${WRITE_PREFIX}${Buffer.from(JSON.stringify(write)).toString('base64url')}`
}

function parseWrite(word: string): AnnouncedWrite | null {
  try {
    const v = JSON.parse(
      Buffer.from(word.slice(WRITE_PREFIX.length), 'base64url').toString(),
    ) as AnnouncedWrite
    if (
      Number.isSafeInteger(v.after) &&
      Array.isArray(v.keys) &&
      v.keys.every((k) => typeof k === 'string') &&
      (v.change === null || typeof v.change === 'string')
    ) {
      return { after: v.after, keys: v.keys, change: v.change }
    }
  } catch {
    // not a write this version can read: the context is dropped
  }
  return null
}

/**
 * `seq\nwriter\ncontext` (the context last: it is the only part that could hold a newline). The
 * writer field is the instance id, then, when the writer takes direct acknowledgements, a space
 * and its request (`secret host port`): an instance that knows nothing of them still drops the
 * right context and acknowledges through Redis, to a channel the writer does not hear, so that
 * writer waits out its lease instead (the price of a mixed-version cluster during an upgrade).
 */
function parseEvent(text: string): ParsedEvent | null {
  const a = text.indexOf('\n')
  const b = a < 0 ? -1 : text.indexOf('\n', a + 1)
  if (b < 0) return null
  const seq = Number(text.slice(0, a))
  if (!Number.isSafeInteger(seq)) return null
  const words = text.slice(a + 1, b).split(' ')
  const last = words[words.length - 1] as string
  const write = words.length > 1 && last.startsWith(WRITE_PREFIX) ? parseWrite(last) : null
  if (words.length > 1 && last.startsWith(WRITE_PREFIX)) words.pop()
  return {
    seq,
    writer: words[0] as string,
    context: text.slice(b + 1),
    ack: words.length > 1 ? parseAckRequest(words.slice(1).join(' ')) : null,
    write,
  }
}

export interface RedisCoherenceOptions {
  /** The command connection (commands fail fast: src/store/redis-client.ts). */
  readonly redis: StoreClient
  /** A second connection, for subscriptions only. */
  readonly subscriber: StoreClient
  readonly keyPrefix: string
  readonly cache: LocalInvalidation
  readonly health: StoreHealth
  /** `store.redis.leaseMs`. */
  readonly leaseMs: number
  /** `store.redis.timeoutMs`: a command's longest wait. */
  readonly timeoutMs: number
  /** Monotonic ms; default `performance.now`. Must be the clock `health` uses. */
  readonly now?: () => number
  /** Instance id (appears in Redis and in audit lines); default random. */
  readonly instanceId?: string
  /**
   * `store.redis.directAcks`: take and send acknowledgements by UDP, on the address this instance
   * reaches Redis from, through Redis when no receipt comes (src/store/direct-acks.ts). Default false.
   */
  readonly directAcks?: boolean
  readonly log?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }
  /** Called when a renewal finds another Redis server than the last one (a failover or a restart). */
  readonly onNewMaster?: () => void
}

interface Waiter {
  resolve(): void
}

export class RedisCoherence implements Coherence {
  readonly instanceId: string
  readonly #redis: StoreClient & CoherenceCommands
  readonly #subscriber: StoreClient
  readonly #keys: ReturnType<typeof coherenceKeys>
  readonly #cache: LocalInvalidation
  readonly #health: StoreHealth
  readonly #lease: Lease
  readonly #leaseMs: number
  readonly #timeoutMs: number
  readonly #now: () => number
  readonly #log: RedisCoherenceOptions['log']
  #epoch: string | null = null
  /** The run id of the Redis server of the last renewal (null before the first). */
  #runId: string | null = null
  /** Highest sequence whose events are all applied here (-1: none yet). */
  #lastSeen = -1
  /** Sequences above `#lastSeen` already applied from a message (not applied twice at catch-up). */
  readonly #appliedFromMessages = new Set<number>()
  /** Which changes may be applied rather than dropped (SPEC 19). */
  readonly #order = new ChangeOrder()
  /** `seq\ninstance` → the writer waiting for that acknowledgement. */
  readonly #acks = new Map<string, Waiter>()
  /** Contexts whose invalidation Redis has not taken yet, with the writes waiting on them. */
  readonly #unannounced = new Map<string, Waiter[]>()
  #timer: NodeJS.Timeout | null = null
  readonly #onFirstContact: (() => void)[] = []
  readonly #directAcks: boolean
  readonly #onNewMaster: (() => void) | undefined
  #direct: DirectAcks | null = null
  #binding = false
  #renewing = false
  #flushing = false
  #started = false
  #closed = false

  constructor(opts: RedisCoherenceOptions) {
    const redis = opts.redis as StoreClient & Partial<CoherenceCommands>
    if (redis.ipdrLeaseRenew === undefined) {
      redis.defineCommand('ipdrLeaseRenew', { numberOfKeys: 4, lua: RENEW_SCRIPT })
      redis.defineCommand('ipdrAnnounce', { numberOfKeys: 5, lua: ANNOUNCE_SCRIPT })
    }
    this.#redis = redis as StoreClient & CoherenceCommands
    this.#subscriber = opts.subscriber
    this.#keys = coherenceKeys(opts.keyPrefix)
    this.#cache = opts.cache
    this.#health = opts.health
    this.#leaseMs = opts.leaseMs
    this.#timeoutMs = opts.timeoutMs
    // Grace after a lapse: longer than an instance that wrote meanwhile needs to reconnect
    // (at most MAX_RECONNECT_DELAY_MS between attempts) and announce.
    this.#lease = new Lease({ leaseMs: opts.leaseMs, graceMs: Math.round(opts.leaseMs * 0.75) })
    this.#now = opts.now ?? (() => performance.now())
    this.instanceId = opts.instanceId ?? randomBytes(8).toString('hex')
    this.#log = opts.log
    this.#directAcks = opts.directAcks ?? false
    this.#onNewMaster = opts.onNewMaster
  }

  /** Subscribes and renews now, then every quarter lease. */
  start(): void {
    this.#started = true
    const subscribe = () => {
      this.#subscriber
        .subscribe(this.#keys.invalidations, this.#keys.acks(this.instanceId))
        .catch((err: unknown) => this.#health.noted('lease', err))
    }
    this.#subscriber.on('message', (channel: string, message: string) => this.#onMessage(channel, message))
    this.#subscriber.on('ready', subscribe)
    if (this.#subscriber.status === 'ready') subscribe()
    // Redis is back: renew at once rather than at the next tick.
    this.#redis.on('ready', () => {
      void this.#bindDirectAcks()
      void this.renew()
    })
    void this.#bindDirectAcks()
    void this.renew()
  }

  /** Where this instance takes direct acknowledgements; null when it does not (yet). */
  get directAckAddress(): { host: string; port: number } | null {
    return this.#direct?.address ?? null
  }

  /**
   * Opens the direct acknowledgement socket on the address this instance reaches Redis from: the
   * other instances reach the same Redis, so most likely this address too. Until it is open, and
   * for good if it cannot be, acknowledgements travel through Redis only.
   */
  async #bindDirectAcks(): Promise<void> {
    if (!this.#directAcks || this.#direct || this.#binding || this.#closed) return
    const host = localAddressOf(this.#redis)
    if (!host) return
    this.#binding = true
    try {
      const direct = await DirectAcks.open(host)
      if (this.#closed) direct.close()
      else this.#direct = direct
    } catch (err) {
      this.#log?.warn(
        { host, error: (err as Error).message },
        'shared store: no socket for direct acknowledgements; they travel through Redis only',
      )
    } finally {
      this.#binding = false
    }
  }

  mayServeCached(): boolean {
    return this.#lease.mayServe(this.#now())
  }

  /**
   * Resolves after the first successful renewal, or after `ms` (a dead Redis must not hold up the
   * start: the instance then counts locally and reads through until Redis answers).
   */
  firstContact(ms: number): Promise<boolean> {
    if (this.#health.up) return Promise.resolve(true)
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms)
      timer.unref()
      this.#onFirstContact.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  /** The epoch of the Redis data this instance last renewed with (diagnostics); null before the first renewal. */
  get epoch(): string | null {
    return this.#epoch
  }

  /** Renews the lease and catches up on events; scheduled by `start`, callable by tests. */
  async renew(): Promise<void> {
    if (this.#renewing || this.#closed) return
    this.#renewing = true
    const sentAt = this.#now()
    try {
      const [epoch, seq, gap, events, runId] = await withinDeadline(
        this.#redis.ipdrLeaseRenew(
          this.#keys.members,
          this.#keys.seq,
          this.#keys.events,
          this.#keys.epoch,
          this.instanceId,
          this.#leaseMs,
          this.#lastSeen,
          // Fresh each time: a Redis that lost its data must never get back an epoch it had.
          randomBytes(8).toString('hex'),
          KEY_TTL_MS,
        ),
        this.#timeoutMs,
      )
      if (this.#closed) return
      if (this.#runId !== null && runId !== this.#runId) {
        this.#onNewMaster?.()
        this.#log?.warn(
          { instance: this.instanceId },
          'shared store: another Redis server answers (a failover or a restart); cache cleared',
        )
      }
      this.#runId = runId
      const lost = this.#epoch !== null && epoch !== this.#epoch
      if (lost || gap === 1) {
        // Redis lost its data, or more happened than the list keeps: anything cached may be stale, and a
        // write announced nowhere (its writer cut off meanwhile) may come yet: wait as after a lapse.
        this.#cache.invalidateAll()
        this.#lease.interrupt(this.#now())
      } else {
        for (const text of events) {
          const event = parseEvent(text)
          if (event && !this.#appliedFromMessages.has(event.seq)) this.#receive(event)
        }
      }
      this.#order.caughtUp(seq)
      this.#epoch = epoch
      this.#lastSeen = seq
      for (const s of this.#appliedFromMessages) if (s <= seq) this.#appliedFromMessages.delete(s)
      if (this.#lease.renewed(sentAt, this.#now())) {
        this.#cache.invalidateAll()
        this.#log?.info({ instance: this.instanceId }, 'shared store: lease acquired; cache cleared')
      }
      this.#health.succeeded()
      for (const f of this.#onFirstContact.splice(0)) f()
      // Not awaited: an announcement may wait up to a lease for acknowledgements, and renewals must go on.
      if (this.#unannounced.size > 0) void this.#announcePending()
    } catch (err) {
      this.#health.failed('lease', err)
    } finally {
      this.#renewing = false
      this.#schedule()
    }
  }

  beginWrite(context: string, keys: readonly string[]): WriteTicket {
    return this.#order.begin(context, keys)
  }

  abandonWrite(ticket: WriteTicket): void {
    this.#order.abandon(ticket)
  }

  async invalidate(context: string, write?: SettledWrite): Promise<void> {
    let announced: AnnouncedWrite | null = null
    if (write === undefined) this.#cache.invalidateContext(context)
    else {
      // Applied here only with the store answering: the announcement's order then confirms it.
      const alone = this.#order.settle(write.ticket) && this.#health.up && !this.#closed
      // A change too large to carry is dropped here as well as on the others.
      const text = alone ? (write.change?.text() ?? null) : null
      applyOrDrop(this.#cache, context, text !== null ? write.change?.value : null)
      announced = { after: write.ticket.after, keys: write.ticket.keys, change: text }
    }
    if (this.#closed) return
    if (this.#health.up && (await this.#announce(context, announced))) return
    // Kept for later: it will be announced without its change, and nothing here confirms the order.
    if (announced?.change != null) this.#cache.invalidateContext(context)
    // Not taken by Redis. Announce it when Redis answers again; meanwhile answer once every lease Redis
    // may have granted before it went away has run out (a lease runs from its renewal's sending).
    const deadline = this.#health.downSince + this.#timeoutMs + this.#leaseMs
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | null = null
      const waiter: Waiter = {
        resolve: () => {
          if (timer) clearTimeout(timer)
          resolve()
        },
      }
      const list = this.#unannounced.get(context) ?? []
      list.push(waiter)
      this.#unannounced.set(context, list)
      const wait = deadline - this.#now()
      if (wait <= 0) {
        resolve()
        return
      }
      timer = setTimeout(resolve, wait)
      timer.unref()
    })
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    this.#lease.release()
    for (const waiter of this.#acks.values()) waiter.resolve()
    this.#acks.clear()
    for (const list of this.#unannounced.values()) for (const w of list) w.resolve()
    this.#unannounced.clear()
    this.#direct?.close()
    // Leave the member set, so writers do not wait for this instance's lease to run out.
    if (this.#health.up) {
      await withinDeadline(this.#redis.zrem(this.#keys.members, this.instanceId), this.#timeoutMs).catch(
        () => {},
      )
    }
  }

  /** Announces `context`; true when Redis took it (and the live leases have acknowledged or run out). */
  async #announce(context: string, write: AnnouncedWrite | null = null): Promise<boolean> {
    // A direct acknowledgement may come before Redis has answered this script: keep it until then.
    const early = new Set<string>()
    let onDirectAck = (member: string) => {
      early.add(member)
    }
    const expectation = this.#direct?.expect((member) => onDirectAck(member)) ?? null
    try {
      let seq: number
      let redisNow: number
      let members: string[]
      let epoch: string
      try {
        ;[seq, redisNow, members, epoch] = await withinDeadline(
          this.#redis.ipdrAnnounce(
            this.#keys.seq,
            this.#keys.events,
            this.#keys.members,
            this.#keys.ctxgen,
            this.#keys.epoch,
            context,
            `${expectation ? `${this.instanceId} ${expectation.request}` : this.instanceId}${write ? writeWord(write) : ''}`,
            KEY_TTL_MS,
            MAX_EVENTS,
            this.#keys.invalidations,
          ),
          this.#timeoutMs,
        )
      } catch (err) {
        this.#health.failed('announce', err)
        return false
      }
      onDirectAck = (member) => this.#acks.get(`${seq}\n${member}`)?.resolve()
      this.#order.record(seq, context, write?.keys ?? null)
      // A write announced between what this one's writer knew and itself, on the same customers (or
      // unknown here): the change applied here may be out of order. Drop it, as every instance will.
      if (write?.change != null && !this.#order.clean(write.after, seq, context, write.keys)) {
        this.#cache.invalidateContext(context)
      }
      await this.#settle(seq, redisNow, members, epoch, early)
      if (settledChannel.hasSubscribers) settledChannel.publish({ seq, leases: members.length / 2 })
      return true
    } finally {
      expectation?.done()
    }
  }

  /** Waits until every listed member other than this one has acknowledged `seq` or its lease has run out. */
  async #settle(seq: number, redisNow: number, members: string[], epoch: string, acked: Set<string>) {
    const waits: Promise<void>[] = []
    // A Redis that lost its data (restarted empty, flushed) does not list the leases its former self
    // granted; those end at most a lease after it went away, before this epoch was made.
    const sinceEpoch = epoch === '' ? 0 : redisNow - epochCreatedAt(epoch)
    const unlisted = this.#leaseMs - (Number.isFinite(sinceEpoch) ? sinceEpoch : 0)
    if (unlisted > 0) waits.push(new Promise((resolve) => setTimeout(resolve, unlisted).unref()))
    for (let i = 0; i + 1 < members.length; i += 2) {
      const member = members[i] as string
      if (member === this.instanceId || acked.has(member)) continue
      // Until the member acknowledges, or its lease (as StoreClient granted it) runs out.
      const remaining = Math.min(Number(members[i + 1]) - redisNow, this.#leaseMs + this.#timeoutMs)
      if (remaining > 0) waits.push(this.#awaitAck(`${seq}\n${member}`, remaining))
    }
    await Promise.all(waits)
  }

  #awaitAck(key: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#acks.delete(key)
        resolve()
      }, ms)
      timer.unref()
      this.#acks.set(key, {
        resolve: () => {
          clearTimeout(timer)
          this.#acks.delete(key)
          resolve()
        },
      })
    })
  }

  async #announcePending(): Promise<void> {
    if (this.#flushing) return
    this.#flushing = true
    try {
      for (const context of [...this.#unannounced.keys()]) {
        // Only the writes kept so far: one kept while this announcement runs needs the next one.
        const covered = [...(this.#unannounced.get(context) ?? [])]
        if (!(await this.#announce(context))) return
        const later = (this.#unannounced.get(context) ?? []).filter((w) => !covered.includes(w))
        if (later.length === 0) this.#unannounced.delete(context)
        else this.#unannounced.set(context, later)
        for (const w of covered) w.resolve()
      }
      // Some arrived while announcing: go again (a renewal would, but need not wait for one).
      if (this.#unannounced.size > 0 && this.#health.up) queueMicrotask(() => void this.#announcePending())
    } finally {
      this.#flushing = false
    }
  }

  #onMessage(channel: string, message: string): void {
    if (this.#closed) return
    if (channel === this.#keys.invalidations) {
      const event = parseEvent(message)
      if (!event) return
      if (event.writer !== this.instanceId && event.seq > this.#lastSeen)
        this.#appliedFromMessages.add(event.seq)
      this.#receive(event)
      return
    }
    const nl = message.indexOf('\n')
    this.#acks.get(`${message.slice(0, nl)}\n${message.slice(nl + 1)}`)?.resolve()
  }

  /** An announcement, from the channel or a renewal's catch-up, in the order that delivered it. */
  #receive(event: ParsedEvent): void {
    const inOrder = this.#order.arrived(event.seq)
    this.#order.record(event.seq, event.context, event.write?.keys ?? null)
    if (event.writer !== this.instanceId) this.#apply(event, inOrder)
  }

  /**
   * Applies the write's change to the context's entries here — when it came in order and crossed no
   * other write of its customers — or drops them, then tells the writer: directly when it asked (and
   * through Redis too when its receipt does not come), through Redis otherwise.
   */
  #apply(event: ParsedEvent, inOrder: boolean): void {
    const w = event.write
    const change =
      inOrder &&
      w !== null &&
      w.change !== null &&
      this.#order.clean(w.after, event.seq, event.context, w.keys)
        ? w.change
        : null
    applyOrDrop(this.#cache, event.context, change)
    const throughRedis = () => {
      this.#redis
        .publish(this.#keys.acks(event.writer), `${event.seq}\n${this.instanceId}`)
        .catch((err: unknown) => this.#health.noted('announce', err))
    }
    if (event.ack && this.#direct) this.#direct.send(event.ack, this.instanceId, throughRedis)
    else throughRedis()
  }

  #schedule(): void {
    if (this.#closed || !this.#started) return
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.renew(), Math.max(25, Math.floor(this.#leaseMs / 4)))
    this.#timer.unref()
  }
}

/** When Redis made `epoch` (`random:run id:ms`), in Redis' clock. */
function epochCreatedAt(epoch: string): number {
  return Number(epoch.slice(epoch.lastIndexOf(':') + 1))
}
