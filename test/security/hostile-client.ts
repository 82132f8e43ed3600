/**
 * Hostile clients for the SPEC 13 tests, on raw sockets (bounded, loopback only):
 * an upload that sends up to `bytes` of body as fast as the server reads it and
 * reports the status it got and how much it managed to send; a client that sends
 * its body one byte at a time.
 */
import { connect, type Socket } from 'node:net'

export interface UploadResult {
  /** The status line's code, or 0 when none came. */
  readonly status: number
  /** Body bytes written before the server answered or closed. */
  readonly sent: number
  /** The whole answer as received. */
  readonly answer: string
}

const CHUNK = Buffer.alloc(64 * 1024, 0x41)

/** POSTs up to `bytes` of body (chunked unless `contentLength`), stopping when an answer or a close comes. */
export function upload(
  port: number,
  opts: {
    path: string
    bytes: number
    headers?: Record<string, string>
    contentLength?: boolean
    localAddress?: string
    timeoutMs?: number
  },
): Promise<UploadResult> {
  return new Promise((resolve) => {
    const chunked = opts.contentLength !== true
    const head = [
      `POST ${opts.path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Content-Type: text/csv',
      chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${opts.bytes}`,
      ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      '',
      '',
    ].join('\r\n')
    const socket: Socket = connect({
      port,
      host: '127.0.0.1',
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    })
    let answer = ''
    let sent = 0
    let done = false
    const finish = () => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      const m = /^HTTP\/1\.1 (\d{3})/.exec(answer)
      resolve({ status: m ? Number(m[1]) : 0, sent, answer })
    }
    const timer = setTimeout(finish, opts.timeoutMs ?? 30_000)
    socket.on('data', (d) => {
      answer += d.toString('latin1')
      // The whole answer (headers and a small body) is in: no need to wait for the close.
      if (/\r\n\r\n[\s\S]*\}$/.test(answer)) setTimeout(finish, 50)
    })
    socket.on('close', finish)
    socket.on('error', finish)
    socket.on('connect', async () => {
      socket.write(head)
      while (!done && sent < opts.bytes) {
        const n = Math.min(CHUNK.length, opts.bytes - sent)
        const piece = CHUNK.subarray(0, n)
        const ok = chunked
          ? socket.write(`${n.toString(16)}\r\n`) && socket.write(piece) && socket.write('\r\n')
          : socket.write(piece)
        sent += n
        if (!ok) await new Promise<void>((r) => socket.once('drain', r).once('close', r))
      }
      if (!done && chunked) socket.write('0\r\n\r\n')
    })
  })
}

/** A GET of `path` from `localAddress`; resolves with the status (0 on a refused or reset connection). */
export function probe(
  port: number,
  path: string,
  localAddress = '127.0.0.1',
  timeoutMs = 5000,
): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress })
    let answer = ''
    const timer = setTimeout(() => {
      socket.destroy()
      resolve(0)
    }, timeoutMs)
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    socket.on('data', (d) => {
      answer += d.toString('latin1')
    })
    const done = () => {
      clearTimeout(timer)
      const m = /^HTTP\/1\.1 (\d{3})/.exec(answer)
      resolve(m ? Number(m[1]) : 0)
    }
    socket.on('close', done)
    socket.on('error', () => undefined)
  })
}
