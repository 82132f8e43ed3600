/**
 * An OTLP/HTTP receiver for tests, on a loopback port: takes what an
 * OpenTelemetry exporter POSTs to `/v1/traces` in the JSON protocol and keeps
 * each span, flattened (ids in hex, kind as a name, attributes as plain values).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'

export interface ReceivedSpan {
  readonly name: string
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string
  readonly kind: 'internal' | 'server' | 'client' | 'producer' | 'consumer' | 'unspecified'
  readonly attributes: Record<string, unknown>
  readonly status: { code?: number; message?: string }
  readonly service: unknown
}

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const

type AnyValue = {
  stringValue?: string
  intValue?: number | string
  boolValue?: boolean
  doubleValue?: number
}
type KeyValue = { key: string; value: AnyValue }

function plain(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.boolValue !== undefined) return v.boolValue
  return v.doubleValue
}

function attributesOf(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, plain(kv.value)]))
}

export interface OtlpReceiver {
  /** The base URL to give as the OTLP endpoint. */
  readonly endpoint: string
  readonly spans: ReceivedSpan[]
  /** Export requests received. */
  posts(): number
  /** Resolves once `predicate` holds of the spans received (rejects after `ms`). */
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, ms?: number): Promise<void>
}

export async function startOtlpReceiver(t: Test): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  let posts = 0
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      posts++
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      for (const rs of body.resourceSpans ?? []) {
        const service = attributesOf(rs.resource?.attributes)['service.name']
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              name: s.name,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId ?? '',
              kind: KINDS[s.kind ?? 0] ?? 'unspecified',
              attributes: attributesOf(s.attributes),
              status: s.status ?? {},
              service,
            })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    posts: () => posts,
    async waitFor(predicate, ms = 10_000) {
      const deadline = Date.now() + ms
      while (!predicate(spans)) {
        if (Date.now() > deadline)
          throw new Error(`spans not received in time: ${JSON.stringify(spans.map((s) => s.name))}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
  }
}
