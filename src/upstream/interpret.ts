/**
 * What an upstream response means (shared/SPEC.md 3.3), decided once for every
 * route: a listing array, a record, an envelope error, an HTTP error or an
 * invalid response. Pure; arrays are left unparsed so a large listing is parsed
 * only once, by the cache entry that keeps it.
 */
import { asEnvelope, classifyEnvelope, type Envelope, firstJsonByte } from '../envelope.js'
import { type ErrorCode, GatewayError } from '../errors.js'
import type { UpstreamOutcome, UpstreamResponse } from './client.js'

export type Interpretation =
  | { kind: 'array'; raw: Buffer }
  | { kind: 'object'; value: Record<string, unknown> }
  | { kind: 'envelope'; envelope: Envelope; code: ErrorCode }
  | { kind: 'http_error'; statusCode: number }
  | { kind: 'invalid' }

const OPEN_BRACE = 0x7b
const OPEN_BRACKET = 0x5b

export function interpretResponse(res: UpstreamResponse, expect: 'array' | 'object'): Interpretation {
  if (res.statusCode >= 500) return { kind: 'http_error', statusCode: res.statusCode }
  const ok = res.statusCode >= 200 && res.statusCode < 300
  const first = firstJsonByte(res.body)
  if (first === OPEN_BRACE) {
    let value: unknown
    try {
      value = JSON.parse(res.body.toString('utf8'))
    } catch {
      return ok ? { kind: 'invalid' } : { kind: 'http_error', statusCode: res.statusCode }
    }
    const envelope = asEnvelope(value)
    if (envelope) return { kind: 'envelope', envelope, code: classifyEnvelope(envelope) }
    if (!ok) return { kind: 'http_error', statusCode: res.statusCode }
    return expect === 'object'
      ? { kind: 'object', value: value as Record<string, unknown> }
      : { kind: 'invalid' }
  }
  if (!ok) return { kind: 'http_error', statusCode: res.statusCode }
  if (first === OPEN_BRACKET && expect === 'array') return { kind: 'array', raw: res.body }
  return { kind: 'invalid' }
}

export function outcomeOf(i: Interpretation): UpstreamOutcome {
  switch (i.kind) {
    case 'array':
    case 'object':
      return 'ok'
    case 'envelope':
      return 'envelope_error'
    case 'http_error':
      return 'http_error'
    default:
      return 'invalid_response'
  }
}

/**
 * The error a client gets for an interpretation that is not the expected
 * success (a record where a listing was expected is an invalid response). An
 * envelope keeps the upstream's message, and its original bytes for
 * `upstream.normalizeErrors: false`.
 */
export function failureOf(meaning: Interpretation, res: UpstreamResponse): GatewayError {
  switch (meaning.kind) {
    case 'envelope':
      return new GatewayError(meaning.code, meaning.envelope.message || undefined, {
        passthrough: { statusCode: res.statusCode, body: res.body },
      })
    case 'http_error':
      return new GatewayError(
        'IPDR_GW_UPSTREAM_UNAVAILABLE',
        `The upstream answered HTTP ${meaning.statusCode}`,
      )
    default:
      return new GatewayError('IPDR_GW_UPSTREAM_BAD_RESPONSE')
  }
}
