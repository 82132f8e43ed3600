/**
 * Tracing (SPEC 18): W3C Trace Context in and out, and, with an OTLP
 * endpoint, spans exported by OTLP/HTTP through the OpenTelemetry SDK: a
 * server span per request, a client span per upstream request, and spans
 * where the gateway already measures (cache fills, coherence waits, audit
 * writes, store round trips), sampled parent-based at `sampleRatio`.
 *
 * Without an endpoint no span is made: a request gets a trace id (the
 * client's, or a new one made only when something asks for it) and the
 * upstream request a `traceparent` that passes the client's parent on, so
 * Trisul's logs still join the client's trace.
 *
 * Spans are made with explicit parents (no global context manager): each
 * request's trace is kept under its request id while it runs (`bind`,
 * `of`, `release`), which is what every layer already carries.
 */
import {
  type Attributes,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from '@opentelemetry/api'
import { TraceState } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  ParentBasedSampler,
} from '@opentelemetry/sdk-trace-base'
import {
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseTraceparent,
  type TraceParent,
} from './trace-context.js'

export { SpanKind }

/** What one request's trace is: its id, whether it is sampled, its server span when one is made. */
export interface RequestTrace {
  /** The trace id (the client's, else new). */
  readonly traceId: string
  readonly sampled: boolean
  /** The server span; null when tracing is off or the request is not sampled. */
  readonly span: Span | null
  /** The `traceparent` to send on an upstream request made outside a client span. */
  traceparent(): string
  /** The client's `tracestate`, passed on unchanged. */
  readonly tracestate: string | null
  /** A child span of this trace's current span; null when there is none (off, unsampled). */
  child(name: string, kind: SpanKind, attributes?: Attributes): Span | null
  /**
   * Runs `fn` in a child span (or just runs it); the span records a throw. While `fn` runs, this
   * trace's current span is the child, so spans made inside (an upstream request) hang below it.
   */
  inSpan<T>(name: string, fn: () => Promise<T>, attributes?: Attributes): Promise<T>
}

/** A request's trace while tracing is off: nothing made until something asks for the id. */
class PassThroughTrace implements RequestTrace {
  readonly #parent: TraceParent | null
  #traceId: string | null
  readonly tracestate: string | null
  readonly span = null

  constructor(parent: TraceParent | null, tracestate: string | null) {
    this.#parent = parent
    this.#traceId = parent?.traceId ?? null
    this.tracestate = tracestate
  }

  get traceId(): string {
    this.#traceId ??= newTraceId()
    return this.#traceId
  }

  get sampled(): boolean {
    return this.#parent?.sampled ?? false
  }

  traceparent(): string {
    // A hop that records nothing passes its caller's parent on (W3C Trace Context 3.5).
    return formatTraceparent(this.traceId, this.#parent?.parentId ?? newSpanId(), this.sampled)
  }

  child(): null {
    return null
  }

  inSpan<T>(_name: string, fn: () => Promise<T>): Promise<T> {
    return fn()
  }
}
class SpanTrace implements RequestTrace {
  /** The server span. */
  readonly span: Span
  readonly tracestate: string | null
  readonly #tracer: Tracer
  /** The span children hang below now: the server span, or the `inSpan` running. */
  #current: Span

  constructor(tracer: Tracer, span: Span, tracestate: string | null) {
    this.#tracer = tracer
    this.span = span
    this.#current = span
    this.tracestate = tracestate
  }

  get traceId(): string {
    return this.span.spanContext().traceId
  }

  get sampled(): boolean {
    return (this.span.spanContext().traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED
  }

  traceparent(): string {
    const c = this.#current.spanContext()
    return formatTraceparent(c.traceId, c.spanId, this.sampled)
  }

  child(name: string, kind: SpanKind, attributes?: Attributes): Span | null {
    if (!this.#current.isRecording()) return null
    return this.#tracer.startSpan(
      name,
      { kind, ...(attributes ? { attributes } : {}) },
      trace.setSpan(ROOT_CONTEXT, this.#current),
    )
  }

  async inSpan<T>(name: string, fn: () => Promise<T>, attributes?: Attributes): Promise<T> {
    const span = this.child(name, SpanKind.INTERNAL, attributes)
    if (span === null) return fn()
    const outer = this.#current
    this.#current = span
    try {
      return await fn()
    } catch (err) {
      failSpan(span, err)
      throw err
    } finally {
      this.#current = outer
      span.end()
    }
  }
}

export interface TracingOptions {
  /** OTLP/HTTP base URL (`…:4318`); spans go to `{endpoint}/v1/traces`. null: no span is made. */
  readonly endpoint: string | null
  /** Root sampling ratio, 0–1; a client's sampled flag decides for its own traces. */
  readonly sampleRatio: number
  /** Most requests recorded per second, whatever the ratio and the clients ask. Default 1000. */
  readonly maxSampledPerSecond?: number
  /** `service.name` of the spans. Default `ipdr-gateway`. */
  readonly serviceName?: string
  /** `service.instance.id`. */
  readonly instanceId?: string
  /** Longest a finished span waits to be exported, in ms. Default 2000. */
  readonly exportDelayMs?: number
}

/** Headers a trace is read from (Node's `req.headers`: `traceparent`, `tracestate`). */
export type TraceHeaders = Readonly<Record<string, string | string[] | undefined>>

/** One app's tracing: the SDK when exporting, else trace ids only. */
export class Tracing {
  readonly enabled: boolean
  readonly #provider: BasicTracerProvider | null
  readonly #tracer: Tracer | null
  readonly #byRequest = new Map<string, RequestTrace>()
  readonly #ratio: number
  readonly #maxPerSecond: number
  #second = 0
  #sampledThisSecond = 0

  constructor(opts: TracingOptions) {
    this.#ratio = opts.sampleRatio
    this.#maxPerSecond = opts.maxSampledPerSecond ?? 1000
    if (opts.endpoint === null) {
      this.enabled = false
      this.#provider = null
      this.#tracer = null
      return
    }
    this.enabled = true
    const exporter = new OTLPTraceExporter({
      url: `${opts.endpoint.replace(/\/+$/, '')}/v1/traces`,
      timeoutMillis: 5000,
    })
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': opts.serviceName ?? 'ipdr-gateway',
        ...(opts.instanceId ? { 'service.instance.id': opts.instanceId } : {}),
      }),
      // Roots reach the SDK already sampled at the ratio (begin); parents decide for their own.
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
      spanProcessors: [
        new BatchSpanProcessor(exporter, {
          scheduledDelayMillis: opts.exportDelayMs ?? 2000,
          maxQueueSize: 8192,
          maxExportBatchSize: 512,
        }),
      ],
    })
    this.#tracer = this.#provider.getTracer('ipdr-gateway')
  }

  /** The trace of a request arriving with `headers`: a server span named `name()` when it is recorded. */
  begin(headers: TraceHeaders, name: () => string, startTime?: number): RequestTrace {
    const parent = parseTraceparent(headers.traceparent)
    const tracestate = headers.tracestate
    const state = typeof tracestate === 'string' && parent !== null ? tracestate : null
    // The sampling decision first (parent-based, else at the ratio): a trace that will not be recorded
    // costs what tracing off costs, with no SDK object at all (bench row 18).
    if (this.#tracer === null) return new PassThroughTrace(parent, state)
    if (parent === null ? Math.random() >= this.#ratio : !parent.sampled)
      return new PassThroughTrace(parent, state)
    // A hostile client can mark every request sampled: recording is bounded per second whatever it asks.
    if (!this.#admitSample()) return new PassThroughTrace(parent, state)
    const context =
      parent === null
        ? ROOT_CONTEXT
        : trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.parentId,
            traceFlags: parent.sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
            isRemote: true,
            ...(state === null ? {} : { traceState: new TraceState(state) }),
          })
    const span = this.#tracer.startSpan(
      name(),
      { kind: SpanKind.SERVER, ...(startTime === undefined ? {} : { startTime }) },
      context,
    )
    return new SpanTrace(this.#tracer, span, state)
  }

  /** Whether one more request may be recorded this second. */
  #admitSample(): boolean {
    const second = Math.floor(performance.now() / 1000)
    if (second !== this.#second) {
      this.#second = second
      this.#sampledThisSecond = 0
    }
    return ++this.#sampledThisSecond <= this.#maxPerSecond
  }

  /** Keeps `trace` as request `requestId`'s while it runs, for the layers that know only the id. */
  bind(requestId: string, t: RequestTrace): void {
    this.#byRequest.set(requestId, t)
  }

  of(requestId: string | undefined): RequestTrace | undefined {
    return requestId === undefined ? undefined : this.#byRequest.get(requestId)
  }

  release(requestId: string): void {
    this.#byRequest.delete(requestId)
  }

  /** Exports what is left and stops. */
  async shutdown(): Promise<void> {
    await this.#provider?.shutdown()
  }
}

/** Marks `span` failed by `err` (its class and message only: a gateway error carries no secret). */
function failSpan(span: Span, err: unknown): void {
  const e = err as { code?: unknown; message?: unknown }
  span.setStatus({ code: SpanStatusCode.ERROR, message: typeof e?.code === 'string' ? e.code : 'error' })
  if (typeof e?.code === 'string') span.setAttribute('ipdr.error_code', e.code)
}

/** Runs `fn` inside a child span of `parent` (the request's trace), or just runs it without one. */
export function inSpan<T>(
  parent: RequestTrace | null | undefined,
  name: string,
  fn: () => Promise<T>,
  attributes?: Attributes,
): Promise<T> {
  return parent == null ? fn() : parent.inSpan(name, fn, attributes)
}

/** Tracing that is off: trace ids and `traceparent` only. */
export const NO_TRACING = new Tracing({ endpoint: null, sampleRatio: 0 })
