/**
 * The access line and the HTTP metrics of an answered request, in one function for both paths that
 * answer: Fastify's `onResponse` hook and the hit handler below Fastify
 * (src/http/listing/hit-handler.ts), so a hit leaves the same trace whichever path answered it.
 * One line per request, as nginx's access log (`"msg":"request"`), with secret query values masked
 * (SPEC 13).
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { type GatewayMetrics, recordHttp } from '../metrics.js'
import { scrubUrl } from '../secrets.js'
import type { RequestTrace, Tracing } from '../telemetry/tracing.js'
import './request-context.js'

export interface Answered {
  /** Set when the logger is not the request's child (which carries it already). */
  readonly reqId?: string
  readonly method: string
  readonly url: string
  /** The route pattern (a metric label), never the raw URL. */
  readonly route: string | undefined
  readonly statusCode: number
  readonly ms: number
  readonly consumer: string
  /** The request's trace (SPEC 18): its id goes in the line, its server span ends here. */
  readonly trace?: RequestTrace | null
  /** `X-Cache` of the answer, when it has one. */
  readonly cache?: string | undefined
}

/** Writes the access line (at info) and records the request's metrics. */
export function recordAnswer(log: FastifyBaseLogger, metrics: GatewayMetrics, a: Answered): void {
  // pino's level check; a logger without it (logger: false gives an abstract one) logs nothing here.
  if ((log as { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled?.('info')) {
    const line = { method: a.method, url: scrubUrl(a.url), statusCode: a.statusCode }
    const ms = Math.round(a.ms * 1000) / 1000
    const traceId = a.trace ? { traceId: a.trace.traceId } : {}
    log.info(
      { ...(a.reqId === undefined ? {} : { reqId: a.reqId }), ...line, ms, consumer: a.consumer, ...traceId },
      'request',
    )
  }
  const span = a.trace?.span
  if (span != null && span.isRecording()) {
    span.setAttributes({
      'http.request.method': a.method,
      'http.route': a.route ?? 'unmatched',
      'http.response.status_code': a.statusCode,
      'ipdr.consumer': a.consumer,
      ...(a.cache === undefined ? {} : { 'ipdr.cache': a.cache }),
    })
    if (a.statusCode >= 500) span.setStatus({ code: 2 })
    span.end()
  }
  recordHttp(metrics, {
    method: a.method,
    route: a.route,
    statusCode: a.statusCode,
    consumer: a.consumer,
    seconds: a.ms / 1000,
  })
}

/** The `onResponse` hook that records every request Fastify answered. */
export function registerAccessLog(app: FastifyInstance, metrics: GatewayMetrics, tracing: Tracing): void {
  app.addHook('onResponse', async (request, reply) => {
    const cache = reply.getHeader('x-cache')
    recordAnswer(request.log, metrics, {
      method: request.method,
      url: request.url,
      route: request.routeOptions.url,
      statusCode: reply.statusCode,
      ms: reply.elapsedTime,
      consumer: request.gw?.consumerName ?? 'unknown',
      trace: request.gw?.trace ?? null,
      cache: typeof cache === 'string' ? cache : undefined,
    })
    tracing.release(String(request.id))
  })
}
