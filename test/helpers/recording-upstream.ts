/**
 * A small `node:http` upstream for tests: it records exactly what it receives
 * (method, path, headers, body) and answers as told, or misbehaves (refuse,
 * hang, reset before headers or mid-body, invalid JSON, 5xx, a body that trickles
 * in, or a listener that refuses connections for a while).
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
  /** Headers at once, then one chunk every `intervalMs` (a body slower than any timeout). */
  | { kind: 'trickle'; status?: number; chunks: readonly string[]; intervalMs: number }
  /** Waits `delayMs`, then drops the connection without a response. */
  | { kind: 'reset-after'; delayMs: number }
  /** Holds the request until `ready` resolves, then behaves as `next` (a gate the test opens). */
  | { kind: 'when'; ready: Promise<unknown>; next: Behaviour }

export type Responder = (req: RecordedRequest) => Behaviour

export interface RecordingUpstream {
  readonly url: string
  readonly port: number
  readonly requests: RecordedRequest[]
  respond(fn: Responder): void
  /** Stops listening and drops every open connection: new connections are refused. */
  refuseConnections(): Promise<void>
  /** Listens again on the same port after `refuseConnections`. */
  acceptConnections(): Promise<void>
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
      const later = (ms: number | undefined, fn: () => void) => {
        if (!ms) return fn()
        const t = setTimeout(() => {
          timers.delete(t)
          fn()
        }, ms)
        timers.add(t)
      }
      const act = (b: Behaviour): void => {
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
          case 'trickle': {
            res.writeHead(b.status ?? 200, { 'content-type': 'application/json' })
            const chunks = [...b.chunks]
            const next = () => {
              if (res.destroyed) return
              const chunk = chunks.shift()
              if (chunk === undefined) {
                res.end()
                return
              }
              res.write(chunk)
              later(b.intervalMs, next)
            }
            next()
            return
          }
          case 'reset-after':
            later(b.delayMs, () => req.socket.destroy())
            return
          case 'when':
            void b.ready.then(() => act(b.next))
            return
        }
      }
      act(responder(recorded))
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
    refuseConnections() {
      for (const s of sockets) s.destroy()
      if (!server.listening) return Promise.resolve()
      return new Promise((resolve) => server.close(() => resolve()))
    },
    acceptConnections() {
      if (server.listening) return Promise.resolve()
      return new Promise((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, '127.0.0.1', () => {
          server.off('error', reject)
          resolve()
        })
      })
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
