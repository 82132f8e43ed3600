/**
 * The one way the gateway talks to Trisul: undici's `Pool.request`, which sends a
 * JSON body on GET and DELETE (fetch and @fastify/reply-from refuse to; see
 * docs/decisions.md). The client owns timeouts, the circuit breaker and the
 * single retry of listing GETs on a connect error. It never forwards a client
 * header: the upstream request is built from scratch.
 */

import { readFileSync } from 'node:fs'
import { SpanStatusCode } from '@opentelemetry/api'
import { Pool, errors as undiciErrors } from 'undici'
import { GatewayError } from '../errors.js'
import type { ApiResourceName } from '../resources.js'
import { formatTraceparent } from '../telemetry/trace-context.js'
import { SpanKind, type Tracing } from '../telemetry/tracing.js'
import { BodyBuffer } from './body-buffer.js'
import { CircuitBreaker } from './circuit-breaker.js'

export type UpstreamMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
export type UpstreamOutcome =
  | 'ok'
  | 'envelope_error'
  | 'http_error'
  | 'timeout'
  | 'connect_error'
  | 'invalid_response'

/**
 * Largest body of an upstream answer that is not a listing (a write answers one record). Listings
 * have their own bound, `upstream.maxListingBytes` (`UpstreamCall.maxBytes`).
 */
export const MAX_UPSTREAM_BODY_BYTES = 16 * 1024 * 1024

/** The upstream body was larger than the call allows (`IPDR_GW_UPSTREAM_TOO_LARGE`). */
// Internal to the client: caught where the body is read and turned into IPDR_GW_UPSTREAM_TOO_LARGE.
class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError'
}

export interface UpstreamClientOptions {
  /** Base URL, `http://` or `https://`; a path prefix is kept. */
  readonly url: string
  /** Whole request, headers and body. */
  readonly timeoutMs: number
  readonly connectTimeoutMs: number
  /** PEM file with an extra CA for an https upstream. */
  readonly caFile: string | null
  readonly circuit: { readonly failures: number; readonly resetSeconds: number }
  /** Pool size. Default 32. */
  readonly connections?: number
  readonly now?: () => number
  /** Called once per finished upstream attempt (metrics). */
  readonly onAttempt?: (info: {
    method: UpstreamMethod
    resource: ApiResourceName
    outcome: UpstreamOutcome
    seconds: number
  }) => void
  /** Called whenever any HTTP response arrives (readiness: the upstream answered). */
  readonly onResponse?: () => void
  /** Trace context (SPEC 18): each request carries `traceparent`, in a client span when the caller's is sampled. */
  readonly tracing?: Tracing
}

export interface UpstreamCall {
  readonly method: UpstreamMethod
  /** Path below the base URL, starting with `/api/`; already encoded. */
  readonly path: string
  readonly resource: ApiResourceName
  /** Serialized with JSON.stringify, never concatenated. */
  readonly body: Record<string, unknown>
  readonly requestId?: string
  /** Listing GETs only: retry once on a connect error. Writes are never retried. */
  readonly retryOnConnectError?: boolean
  readonly signal?: AbortSignal
  /** Largest body accepted; past it the call fails with `IPDR_GW_UPSTREAM_TOO_LARGE`. Default `MAX_UPSTREAM_BODY_BYTES`. */
  readonly maxBytes?: number
}

export interface UpstreamResponse {
  readonly statusCode: number
  readonly contentType: string | null
  readonly body: Buffer
  readonly seconds: number
}

const CONNECT_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
])

type Failure = { kind: 'timeout' | 'connect_error' | 'invalid_response'; cause: unknown }

function classify(err: unknown, headersReceived: boolean, timedOut: boolean): Failure {
  if (timedOut) return { kind: 'timeout', cause: err }
  const code = (err as { code?: string } | null)?.code
  if (
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return { kind: 'timeout', cause: err }
  }
  if (headersReceived) return { kind: 'invalid_response', cause: err }
  if (code !== undefined && CONNECT_ERROR_CODES.has(code)) return { kind: 'connect_error', cause: err }
  if (err instanceof undiciErrors.UndiciError) return { kind: 'connect_error', cause: err }
  return { kind: 'connect_error', cause: err }
}

export class UpstreamClient {
  readonly #pool: Pool
  readonly #base: URL
  readonly #opts: UpstreamClientOptions
  readonly #breaker: CircuitBreaker
  readonly #now: () => number

  constructor(opts: UpstreamClientOptions) {
    this.#opts = opts
    this.#base = new URL(opts.url)
    if (this.#base.protocol !== 'http:' && this.#base.protocol !== 'https:') {
      throw new Error(`upstream.url: must be http:// or https://, got ${this.#base.protocol}`)
    }
    this.#now = opts.now ?? Date.now
    this.#breaker = new CircuitBreaker({
      failures: opts.circuit.failures,
      resetMs: opts.circuit.resetSeconds * 1000,
      now: this.#now,
    })
    const ca = opts.caFile ? readFileSync(opts.caFile) : undefined
    this.#pool = new Pool(this.#base.origin, {
      connections: opts.connections ?? 32,
      pipelining: 1,
      keepAliveTimeout: 4000,
      connect: { timeout: opts.connectTimeoutMs, ...(ca ? { ca } : {}) },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
    })
  }

  /**
   * Makes the call. Resolves with any HTTP response (the caller interprets
   * envelopes and statuses); rejects with a GatewayError for a refused or reset
   * connection (502), a timeout (504) or an open circuit (503).
   */
  async request(call: UpstreamCall): Promise<UpstreamResponse> {
    const first = await this.#attempt(call)
    if (first.ok) return first.response
    if (first.failure.kind === 'connect_error' && call.retryOnConnectError && call.method === 'GET') {
      const second = await this.#attempt(call)
      if (second.ok) return second.response
      // A retry the breaker refused says nothing new: report what actually happened.
      throw this.#toError(second.failure.kind === 'circuit_open' ? first.failure : second.failure)
    }
    throw this.#toError(first.failure)
  }

  #toError(f: Failure | { kind: 'circuit_open' }): GatewayError {
    switch (f.kind) {
      case 'circuit_open':
        return new GatewayError('IPDR_GW_CIRCUIT_OPEN', undefined, {
          headers: { 'retry-after': String(this.#breaker.retryAfterSeconds()) },
        })
      case 'timeout':
        return new GatewayError('IPDR_GW_UPSTREAM_TIMEOUT', undefined, { cause: f.cause })
      case 'invalid_response':
        return f.cause instanceof BodyTooLargeError
          ? new GatewayError('IPDR_GW_UPSTREAM_TOO_LARGE', f.cause.message, { cause: f.cause })
          : new GatewayError('IPDR_GW_UPSTREAM_BAD_RESPONSE', undefined, { cause: f.cause })
      default:
        return new GatewayError('IPDR_GW_UPSTREAM_UNAVAILABLE', undefined, { cause: f.cause })
    }
  }

  async #attempt(
    call: UpstreamCall,
  ): Promise<
    { ok: true; response: UpstreamResponse } | { ok: false; failure: Failure | { kind: 'circuit_open' } }
  > {
    if (!this.#breaker.tryAcquire()) return { ok: false, failure: { kind: 'circuit_open' } }
    const started = performance.now()
    const payload = Buffer.from(JSON.stringify(call.body), 'utf8')
    const controller = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      controller.abort(new Error('upstream timeout'))
    }, this.#opts.timeoutMs)
    const onAbort = () => controller.abort(call.signal?.reason)
    call.signal?.addEventListener('abort', onAbort, { once: true })
    let headersReceived = false
    const basePath = this.#base.pathname.replace(/\/+$/, '')
    // Every upstream request carries the caller's trace (SPEC 18); a sampled one gets its client span.
    const caller = this.#opts.tracing?.of(call.requestId)
    const urlPath = caller?.span == null ? '' : (call.path.split('?')[0] as string)
    const span =
      caller?.span == null
        ? null
        : caller.child(`${call.method} ${urlPath}`, SpanKind.CLIENT, {
            'http.request.method': call.method,
            'url.path': urlPath,
            'server.address': this.#base.hostname,
            'ipdr.resource': call.resource,
          })
    const traceHeaders: Record<string, string> = {}
    if (span !== null) {
      const c = span.spanContext()
      traceHeaders.traceparent = formatTraceparent(c.traceId, c.spanId, true)
    } else if (caller !== undefined) traceHeaders.traceparent = caller.traceparent()
    if (caller?.tracestate) traceHeaders.tracestate = caller.tracestate
    let status: number | null = null
    try {
      const res = await this.#pool.request({
        method: call.method,
        path: basePath + call.path,
        headers: {
          'content-type': 'application/json',
          'content-length': String(payload.length),
          accept: 'application/json',
          'user-agent': 'ipdr-gateway',
          ...(call.requestId ? { 'x-request-id': call.requestId } : {}),
          ...traceHeaders,
        },
        body: payload,
        signal: controller.signal,
        idempotent: call.method === 'GET',
      })
      headersReceived = true
      status = res.statusCode
      this.#opts.onResponse?.()
      const maxBytes = call.maxBytes ?? MAX_UPSTREAM_BODY_BYTES
      const declared = Number(res.headers['content-length'])
      if (Number.isFinite(declared) && declared > maxBytes) {
        res.body.destroy()
        throw new BodyTooLargeError(
          `The upstream answer (${declared} bytes) exceeds the limit of ${maxBytes} bytes`,
        )
      }
      // Into memory the gateway owns, chunk by chunk (src/upstream/body-buffer.ts).
      const received = new BodyBuffer(Number.isFinite(declared) ? declared : null, maxBytes)
      for await (const chunk of res.body) {
        received.push(chunk as Buffer)
        if (received.size > maxBytes) {
          res.body.destroy()
          throw new BodyTooLargeError(`The upstream answer exceeds the limit of ${maxBytes} bytes`)
        }
      }
      const seconds = (performance.now() - started) / 1000
      this.#breaker.onSuccess()
      const ct = res.headers['content-type']
      return {
        ok: true,
        response: {
          statusCode: res.statusCode,
          contentType: typeof ct === 'string' ? ct : null,
          body: received.body(),
          seconds,
        },
      }
    } catch (err) {
      const failure = classify(err, headersReceived, timedOut)
      if (span !== null) {
        span.setAttribute('ipdr.upstream_outcome', failure.kind)
        span.setStatus({ code: SpanStatusCode.ERROR, message: failure.kind })
      }
      // A response that arrived but broke is still proof the upstream is up.
      if (failure.kind === 'invalid_response') this.#breaker.onSuccess()
      else this.#breaker.onFailure()
      this.#opts.onAttempt?.({
        method: call.method,
        resource: call.resource,
        outcome: failure.kind,
        seconds: (performance.now() - started) / 1000,
      })
      return { ok: false, failure }
    } finally {
      clearTimeout(timer)
      call.signal?.removeEventListener('abort', onAbort)
      if (span !== null) {
        if (status !== null) span.setAttribute('http.response.status_code', status)
        span.end()
      }
    }
  }

  /** Records the outcome of a call that returned a response (the caller classified it). */
  report(method: UpstreamMethod, resource: ApiResourceName, outcome: UpstreamOutcome, seconds: number): void {
    this.#opts.onAttempt?.({ method, resource, outcome, seconds })
  }

  async close(): Promise<void> {
    await this.#pool.close()
  }
}
