/**
 * Sends bytes exactly as written (duplicate headers, absolute-form targets…)
 * and returns everything the server answered before closing.
 */
import { connect } from 'node:net'

export function rawHttp(port: number, text: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text))
    let data = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`no complete answer in ${timeoutMs} ms: ${data}`))
    }, timeoutMs)
    socket.on('data', (d) => {
      data += d.toString()
    })
    socket.on('end', () => {
      clearTimeout(timer)
      resolve(data)
    })
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}
