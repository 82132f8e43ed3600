/**
 * Child process: the minimal Trisul-like upstream (upstream-core.mjs).
 * Options: `{ n, delayMs }`. Handles `counts` and `reset` (row 6 counts the
 * listing requests that reach it).
 */
import { listenLoopback, serveAsChild } from '../lib/child.mjs'
import { listingBytes, recordBytes } from '../lib/listing-data.mjs'
import { createUpstream } from './upstream-core.mjs'

serveAsChild(async ({ n, delayMs = 0 }) => {
  const upstream = createUpstream({ listing: listingBytes(n), record: recordBytes(), delayMs })
  const url = await listenLoopback(upstream.server)
  return {
    info: { url },
    handle(type) {
      if (type === 'counts') return { ...upstream.counts }
      if (type === 'reset') return upstream.resetCounts()
      throw new Error(`unknown message ${type}`)
    },
    close: () =>
      new Promise((resolve) => {
        upstream.server.closeAllConnections()
        upstream.server.close(() => resolve())
      }),
  }
})
