/**
 * A small `node:http` upstream for tests: it records exactly what it receives
 * (method, path, headers, body) and answers as told, or misbehaves (refuse,
 * hang, reset before headers or mid-body, invalid JSON, 5xx).
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly rawBody: string
  /** The parsed JSON body, or undefined. */
  readonly body: Record<string, unknown> | undefined
}

export type Behaviour =
  | { kind: 'json'; status?: number; body: unknown; delayMs?: number }
  | { kind: 'raw'; status?: number; body: string | Buffer; contentType?: string; delayMs?: number }
  | { kind: 'hang' }
  | { kind: 'reset' }
  | { kind: 'reset-mid-body'; status?: number; partial: string }

export type Responder = (req: RecordedRequest) => Behaviour

export interface RecordingUpstream {
  readonly url: string
  readonly port: number
  readonly requests: RecordedRequest[]
  respond(fn: Responder): void
  close(): Promise<void>
}

export async function startRecordingUpstream(initial?: Responder): Promise<RecordingUpstream> {
  let responder: Responder = initial ?? (() => ({ kind: 'json', body: [] }))
  const requests: RecordedRequest[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  const server: Server = createServer((req, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8')
      let body: Record<string, unknown> | undefined
      try {
        body = rawBody ? (JSON.parse(rawBody) as Record<string, unknown>) : undefined
      } catch {
        body = undefined
      }
      const recorded = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawBody, body }
      requests.push(recorded)
      const b = responder(recorded)
      const later = (ms: number | undefined, fn: () => void) => {
        if (!ms) return fn()
        const t = setTimeout(() => {
          timers.delete(t)
          fn()
        }, ms)
        timers.add(t)
      }
      switch (b.kind) {
        case 'json':
          later(b.delayMs, () => {
            const text = JSON.stringify(b.body)
            res.writeHead(b.status ?? 200, { 'content-type': 'application/json' })
            res.end(text)
          })
          return
        case 'raw':
          later(b.delayMs, () => {
            res.writeHead(b.status ?? 200, { 'content-type': b.contentType ?? 'application/json' })
            res.end(b.body)
          })
          return
        case 'hang':
          return
        case 'reset':
          req.socket.destroy()
          return
        case 'reset-mid-body':
          res.writeHead(b.status ?? 200, { 'content-type': 'application/json', 'content-length': '100000' })
          res.write(b.partial, () => req.socket.destroy())
          return
      }
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    respond(fn) {
      responder = fn
    },
    close() {
      for (const t of timers) clearTimeout(t)
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}

/** A port on 127.0.0.1 where nothing listens (bound then released). */
export async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}
