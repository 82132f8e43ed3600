/**
 * Child process: bare `node:http` sending the listing buffer, the platform's
 * own ceiling (issue 17's reference rows next to bare Fastify). Options: `{ n }`.
 */
import { createServer } from 'node:http'
import { listenLoopback, serveAsChild } from '../lib/child.mjs'
import { listingBytes } from '../lib/listing-data.mjs'

serveAsChild(async ({ n }) => {
  const listing = listingBytes(n)
  const server = createServer((req, res) => {
    if (req.url !== '/api/ipdrcustomers') {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': listing.length })
    res.end(listing)
  })
  const url = await listenLoopback(server)
  return {
    info: { url },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
})
