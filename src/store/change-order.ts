/**
 * When a write's change may be applied to cached listings rather than drop them (SPEC 19). Trisul's
 * answer says what one record is after the write, not when: two writes to the same customer in flight
 * at once may have reached Trisul in either order, so the later answer is not necessarily the record's
 * state. A change is applied only when the gateway can tell that no other write touching the same
 * customers (by UserID, in the same context) crossed it:
 *
 * - on the writer's instance, no other write of those customers was in flight at any moment of this
 *   one's (`begin` marks both), and no announced write of them arrived since this one was sent;
 * - in the order of the announcements (Redis' sequence, or this instance's own counter without a
 *   store), every write announced between what the writer knew when it sent this one (`after`) and
 *   this one is known here and touches other customers (`clean`);
 * - on every other instance, the announcements are applied in sequence order with none missed
 *   (`arrived`); one that comes out of order, or after a gap, drops its context.
 *
 * Anything else drops the context's listings, as every write did before. Pure: no I/O, no clock.
 */

/** A write from before it is sent to the upstream until its invalidation. */
export interface WriteTicket {
  readonly context: string
  /** The customers it touches (UserIDs). */
  readonly keys: readonly string[]
  /** The highest announcement sequence this instance knew when the write was sent. */
  readonly after: number
  /** Another write of the same customers was in flight at the same time. */
  conflicted: boolean
}

/** An announced write as the order knows it; `keys` null: unknown (an older instance's, or a kept one): it meets every write. */
interface KnownWrite {
  readonly context: string
  readonly keys: readonly string[] | null
}

/** Announcements remembered for the checks; as many as the store's event list keeps. */
export const REMEMBERED_WRITES = 1000

function meets(a: readonly string[] | null, b: readonly string[]): boolean {
  return a === null || a.some((k) => b.includes(k))
}

export class ChangeOrder {
  readonly #inFlight = new Set<WriteTicket>()
  readonly #known = new Map<number, KnownWrite>()
  #highest = -1
  /** The sequence the ordered stream should deliver next; -1 until known. */
  #next = -1

  /** The highest sequence known here. */
  get highest(): number {
    return this.#highest
  }

  /** A write of `keys` in `context` is about to be sent. */
  begin(context: string, keys: readonly string[]): WriteTicket {
    const ticket: WriteTicket = { context, keys, after: this.#highest, conflicted: false }
    for (const other of this.#inFlight) {
      if (other.context === context && meets(other.keys, keys)) {
        other.conflicted = true
        ticket.conflicted = true
      }
    }
    this.#inFlight.add(ticket)
    return ticket
  }

  /** The write was not sent after all (the circuit was open). */
  abandon(ticket: WriteTicket): void {
    this.#inFlight.delete(ticket)
  }

  /** The write is answered: whether this instance may apply it now. Ends its flight. */
  settle(ticket: WriteTicket): boolean {
    this.#inFlight.delete(ticket)
    if (ticket.conflicted) return false
    if (this.#highest - ticket.after > REMEMBERED_WRITES) return false
    for (let seq = this.#highest; seq > ticket.after; seq--) {
      const w = this.#known.get(seq)
      if (w === undefined || (w.context === ticket.context && meets(w.keys, ticket.keys))) return false
    }
    return true
  }

  /** Remembers the announcement `seq` (this instance's own or another's). */
  record(seq: number, context: string, keys: readonly string[] | null): void {
    this.#known.set(seq, { context, keys })
    if (seq > this.#highest) this.#highest = seq
    // Sequences come almost in order: forget the one that just left the window, and sweep only when
    // stragglers have piled up (a write costs O(1) here).
    this.#known.delete(this.#highest - REMEMBERED_WRITES)
    if (this.#known.size > 2 * REMEMBERED_WRITES) {
      for (const s of this.#known.keys()) if (s <= this.#highest - REMEMBERED_WRITES) this.#known.delete(s)
    }
  }

  /** Numbers and remembers a write of this instance's own, when there is no store to number it. */
  recordLocal(context: string, keys: readonly string[]): number {
    const seq = this.#highest + 1
    this.record(seq, context, keys)
    return seq
  }

  /**
   * Whether every announcement between `after` and `seq` (both excluded) is known here and none of
   * them touches `keys` in `context`.
   */
  clean(after: number, seq: number, context: string, keys: readonly string[]): boolean {
    if (after < -1 || seq - after - 1 > REMEMBERED_WRITES) return false
    for (let s = after + 1; s < seq; s++) {
      const w = this.#known.get(s)
      if (w === undefined || (w.context === context && meets(w.keys, keys))) return false
    }
    return true
  }

  /** The stream of announcements delivered `seq`: true when it is the one expected next. */
  arrived(seq: number): boolean {
    const inOrder = this.#next !== -1 && seq === this.#next
    if (seq >= this.#next) this.#next = seq + 1
    return inOrder
  }

  /** Every announcement up to `seq` has been processed (a renewal caught up): the next is `seq + 1`. */
  caughtUp(seq: number): void {
    if (this.#next <= seq) this.#next = seq + 1
    if (seq > this.#highest) this.#highest = seq
  }
}
