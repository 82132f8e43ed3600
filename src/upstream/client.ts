/**
 * The one way the gateway talks to Trisul: undici's `Pool.dispatch`, which sends a
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
import { type RequestTrace, SpanKind, type Tracing } from '../telemetry/tracing.js'
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
  /** The caller's trace, when it has it at hand; else the one bound to `requestId` (`Tracing.bind`). */
  readonly trace?: RequestTrace | null
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
  /** The base URL's path, without a trailing slash: every call's path goes below it. */
  readonly #basePath: string

  constructor(opts: UpstreamClientOptions) {
    this.#opts = opts
    this.#base = new URL(opts.url)
    this.#basePath = this.#base.pathname.replace(/\/+$/, '')
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
    // Every upstream request carries the caller's trace (SPEC 18); a sampled one gets its client span.
    const caller = call.trace ?? this.#opts.tracing?.of(call.requestId)
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
    const payload = JSON.stringify(call.body)
    const headers = [
      'content-type',
      'application/json',
      'content-length',
      String(Buffer.byteLength(payload)),
      'accept',
      'application/json',
      'user-agent',
      'ipdr-gateway',
    ]
    if (call.requestId) headers.push('x-request-id', call.requestId)
    if (span !== null) {
      const c = span.spanContext()
      headers.push('traceparent', formatTraceparent(c.traceId, c.spanId, true))
    } else if (caller !== undefined) headers.push('traceparent', caller.traceparent())
    if (caller?.tracestate) headers.push('tracestate', caller.tracestate)
    const received = await this.#exchange(call, payload, headers)
    if (span !== null) {
      if (received.status !== null) span.setAttribute('http.response.status_code', received.status)
      if (!received.ok) {
        span.setAttribute('ipdr.upstream_outcome', received.failure.kind)
        span.setStatus({ code: SpanStatusCode.ERROR, message: received.failure.kind })
      }
      span.end()
    }
    if (received.ok) {
      this.#breaker.onSuccess()
      const { statusCode, contentType, body } = received.response
      const seconds = (performance.now() - started) / 1000
      return { ok: true, response: { statusCode, contentType, body, seconds } }
    }
    const { failure } = received
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
  }

  /**
   * One request and its answer, collected into memory the gateway owns. Through undici's `dispatch`
   * with a handler that collects the body, rather than `request`, which makes a Readable, an
   * AbortController and its listeners for every call (issue 35: about 5 µs of a write's CPU). The
   * timeout is the whole exchange's: at the deadline the call fails, and a request still queued for
   * a connection is aborted before a byte of it is sent.
   */
  #exchange(
    call: UpstreamCall,
    payload: string,
    headers: string[],
  ): Promise<
    | { ok: true; status: number; response: Omit<UpstreamResponse, 'seconds'> }
    | { ok: false; status: number | null; failure: Failure }
  > {
    return new Promise((resolve) => {
      let abort: ((reason: Error) => void) | null = null
      let reason: Error | null = null
      let status: number | null = null
      let contentType: string | null = null
      let received: BodyBuffer | null = null
      let done = false
      const maxBytes = call.maxBytes ?? MAX_UPSTREAM_BODY_BYTES
      const onSignal = () => stop(call.signal?.reason ?? new Error('aborted'), false)
      const finish = (out: Parameters<typeof resolve>[0]) => {
        if (done) return
        done = true
        clearTimeout(timer)
        call.signal?.removeEventListener('abort', onSignal)
        resolve(out)
      }
      const fail = (err: unknown, timedOut: boolean) =>
        finish({ ok: false, status, failure: classify(err, status !== null, timedOut) })
      /** Ends the exchange now: fails it, and aborts the request (once it has a connection). */
      const stop = (err: Error, timedOut: boolean) => {
        fail(err, timedOut)
        reason = err
        abort?.(err)
      }
      const timer = setTimeout(() => stop(new Error('upstream timeout'), true), this.#opts.timeoutMs)
      if (call.signal?.aborted) {
        onSignal()
        return
      }
      call.signal?.addEventListener('abort', onSignal, { once: true })
      this.#pool.dispatch(
        {
          method: call.method,
          path: this.#basePath + call.path,
          headers,
          body: payload,
          idempotent: call.method === 'GET',
        },
        {
          onConnect: (abortRequest: (reason: Error) => void) => {
            abort = abortRequest
            if (reason !== null) abortRequest(reason)
          },
          onHeaders: (statusCode: number, rawHeaders: Buffer[]) => {
            status = statusCode
            this.#opts.onResponse?.()
            let declared = Number.NaN
            for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
              const name = (rawHeaders[i] as Buffer).toString('latin1').toLowerCase()
              if (name === 'content-length')
                declared = Number((rawHeaders[i + 1] as Buffer).toString('latin1'))
              else if (name === 'content-type') contentType = (rawHeaders[i + 1] as Buffer).toString('latin1')
            }
            if (Number.isFinite(declared) && declared > maxBytes) {
              stop(
                new BodyTooLargeError(
                  `The upstream answer (${declared} bytes) exceeds the limit of ${maxBytes} bytes`,
                ),
                false,
              )
              return false
            }
            // Into memory the gateway owns, chunk by chunk (src/upstream/body-buffer.ts).
            received = new BodyBuffer(Number.isFinite(declared) ? declared : null, maxBytes)
            return true
          },
          onData: (chunk: Buffer) => {
            if (done || received === null) return false
            received.push(chunk)
            if (received.size > maxBytes) {
              stop(new BodyTooLargeError(`The upstream answer exceeds the limit of ${maxBytes} bytes`), false)
              return false
            }
            return true
          },
          onComplete: () => {
            if (received === null || status === null) fail(new Error('no response'), false)
            else
              finish({
                ok: true,
                status,
                response: { statusCode: status, contentType, body: received.body() },
              })
          },
          onError: (err: Error) => fail(err, false),
        },
      )
    })
  }

  /** Records the outcome of a call that returned a response (the caller classified it). */
  report(method: UpstreamMethod, resource: ApiResourceName, outcome: UpstreamOutcome, seconds: number): void {
    this.#opts.onAttempt?.({ method, resource, outcome, seconds })
  }

  async close(): Promise<void> {
    await this.#pool.close()
  }
}
