/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/), pure: reading a
 * `traceparent`, writing one, and making ids. Ids come from a pool of random
 * bytes filled 4 KiB at a time, so a request that needs one costs a slice, not
 * a system call.
 */
import { randomFillSync } from 'node:crypto'

export interface TraceParent {
  /** 32 lower-case hex digits, not all zero. */
  readonly traceId: string
  /** 16 lower-case hex digits, not all zero: the caller's span. */
  readonly parentId: string
  /** The sampled flag (bit 0 of trace-flags). */
  readonly sampled: boolean
}

// version 00; later versions are read for their first four fields (section 4.3: "forward compatibility").
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

/** The `traceparent` header's fields, or null when absent or invalid (then a new trace starts). */
export function parseTraceparent(value: unknown): TraceParent | null {
  if (typeof value !== 'string' || value.length > 512) return null
  const m = TRACEPARENT.exec(value.trim())
  if (m === null) return null
  const [, version, traceId, parentId, flags, rest] = m as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ]
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return null
  return { traceId, parentId, sampled: (Number.parseInt(flags, 16) & 1) === 1 }
}

/** A `traceparent` value (version 00). */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`
}

const pool = Buffer.alloc(4096)
let used = pool.length

function randomHex(bytes: number): string {
  for (;;) {
    if (used + bytes > pool.length) {
      randomFillSync(pool)
      used = 0
    }
    const hex = pool.toString('hex', used, used + bytes)
    used += bytes
    // An all-zero id is invalid; 2^-64 at worst, but never send one.
    if (!/^0+$/.test(hex)) return hex
  }
}

/** A new trace id (16 random bytes). */
export function newTraceId(): string {
  return randomHex(16)
}

/** A new span id (8 random bytes). */
export function newSpanId(): string {
  return randomHex(8)
}
