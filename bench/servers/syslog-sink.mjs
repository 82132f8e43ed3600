/**
 * Child process: a syslog receiver for row 16 that takes every byte and keeps none (the gateway's
 * shipping cost without a receiver's). Handler `bytes`: how many arrived. Options: none.
 */
import { createServer } from 'node:net'
import { serveAsChild } from '../lib/child.mjs'

serveAsChild(async () => {
  let bytes = 0
  const server = createServer((socket) => {
    socket.on('data', (d) => {
      bytes += d.length
    })
    socket.on('error', () => {})
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    info: { port: server.address().port },
    handle(type) {
      if (type === 'bytes') return bytes
      throw new Error(`unknown ${type}`)
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  }
})
