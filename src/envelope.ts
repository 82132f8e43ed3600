/**
 * Trisul reports errors as `{"status": "ERROR"|"Error", "message": …}` with HTTP
 * 200 (customers) or 422 (most mapping errors). These pure functions recognise
 * such envelopes and map them to real status codes (shared/SPEC.md 3.3).
 */
import type { ErrorCode } from './errors.js'

export interface Envelope {
  readonly status: string
  readonly message: string
}

/** First match wins; matched case-insensitively against the message. */
const CLASSIFICATION: readonly (readonly [readonly string[], ErrorCode])[] = [
  [['invalid api token'], 'IPDR_GW_UPSTREAM_INVALID_TOKEN'],
  // The Query API spells its refusal "You and not allowed to acess the context" (sic).
  [
    ['not allowed to access the context', 'not allowed to acess the context'],
    'IPDR_GW_UPSTREAM_CONTEXT_FORBIDDEN',
  ],
  // The Query API's own (SPEC 12), before the generic "not found".
  [['query is not completed'], 'IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED'],
  [['not in new or inprogress state'], 'IPDR_GW_UPSTREAM_QUERY_NOT_CANCELABLE'],
  [['not authorized to access this query'], 'IPDR_GW_UPSTREAM_QUERY_FORBIDDEN'],
  [['invalid context name'], 'IPDR_GW_UPSTREAM_INVALID_CONTEXT'],
  [['not found'], 'IPDR_GW_UPSTREAM_NOT_FOUND'],
  [['duplicate', 'already exists'], 'IPDR_GW_UPSTREAM_CONFLICT'],
]

/** The envelope in a parsed JSON value, or null when it is not one. */
export function asEnvelope(value: unknown): Envelope | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null
  const { status, message } = value as Record<string, unknown>
  if (typeof status !== 'string' || status.toLowerCase() !== 'error') return null
  return { status, message: typeof message === 'string' ? message : '' }
}

/** The gateway error code for an envelope's message. */
export function classifyEnvelope(envelope: Envelope): ErrorCode {
  const m = envelope.message.toLowerCase()
  for (const [needles, code] of CLASSIFICATION) {
    if (needles.some((n) => m.includes(n))) return code
  }
  return 'IPDR_GW_UPSTREAM_REJECTED'
}

/** Index of the first non-whitespace byte of a JSON text, or -1. */
export function firstJsonByte(body: Buffer): number {
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as number
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c
  }
  return -1
}
