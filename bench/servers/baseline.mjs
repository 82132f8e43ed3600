/**
 * Child process: the bare Fastify baseline, the physical limit a gateway
 * route is compared with. `GET /api/ipdrcustomers` sends the same bytes as
 * the upstream's listing with `reply.type('application/json').send(buffer)`
 * and nothing else (no hooks, no plugins). Options: `{ n, delayMs }`;
 * `delayMs` makes the handler sleep first (row 6: a 200 ms upstream).
 * `GET /not-modified` answers `304` to a matching `If-None-Match` (row 3).
 */
import Fastify from 'fastify'
import { serveAsChild } from '../lib/child.mjs'
import { listingBytes } from '../lib/listing-data.mjs'

const ETAG = '"bench-baseline-etag"'

serveAsChild(async ({ n, delayMs = 0 }) => {
  const listing = listingBytes(n)
  const app = Fastify({ logger: false })
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
  if (delayMs > 0) {
    app.get('/api/ipdrcustomers', async (_request, reply) => {
      await sleep(delayMs)
      return reply.type('application/json').send(listing)
    })
  } else {
    app.get('/api/ipdrcustomers', (_request, reply) => {
      reply.type('application/json').send(listing)
    })
  }
  app.get('/not-modified', (request, reply) => {
    reply.header('etag', ETAG)
    if (request.headers['if-none-match'] === ETAG) reply.code(304).send()
    else reply.type('application/json').send(listing)
  })
  app.get('/healthz', (_request, reply) => {
    reply.send('ok')
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { info: { url, etag: ETAG }, close: () => app.close() }
})
