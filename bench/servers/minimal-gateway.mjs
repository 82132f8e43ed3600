/**
 * Child process: the floor of any authenticating Fastify gateway, a reference
 * for rows 1 and 1b. `GET /api/ipdrcustomers` does only what every gateway of
 * this SPEC must do per request, each in its cheapest form: one `onRequest`
 * hook reads `Authorization: Bearer` + `X-Trisul-Username` (401 otherwise),
 * hashes the token (the gateway's memoized `sha256Hex`), counts the request in
 * a `Map` fixed-window counter, sets the gateway's nine extra headers in one
 * `reply.headers()` call and sends the listing buffer; `onResponse` records
 * the SPEC 5 HTTP metrics with the gateway's `recordHttp`. No policy, no
 * cache lookup, no CORS, no failed-auth limiter. Options: `{ n }`.
 */
import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { sha256Hex } from '../../dist/credentials.js'
import { createMetrics, recordHttp } from '../../dist/metrics.js'
import { serveAsChild } from '../lib/child.mjs'
import { listingBytes } from '../lib/listing-data.mjs'
import { BENCH_RATE_LIMIT } from '../lib/policy.mjs'

const WINDOW_MS = 60_000

serveAsChild(async ({ n }) => {
  const listing = listingBytes(n)
  const etag = `"${sha256Hex(listing.toString('latin1')).slice(0, 27)}"`
  const metrics = createMetrics()
  const counters = new Map()
  const app = Fastify({ logger: false, genReqId: () => randomUUID() })
  // Callback style (three parameters) without calling `_done`: the hook answers every request itself.
  app.addHook('onRequest', (request, reply, _done) => {
    const auth = request.headers.authorization
    const username = request.headers['x-trisul-username']
    if (typeof auth !== 'string' || !auth.startsWith('Bearer ') || typeof username !== 'string') {
      reply.code(401).send({ statusCode: 401, error: 'Unauthorized' })
      return
    }
    const key = `${username}\n${sha256Hex(auth.slice(7))}`
    const now = Date.now()
    let counter = counters.get(key)
    if (counter === undefined || counter.resetAt <= now) {
      counter = { count: 0, resetAt: now + WINDOW_MS }
      counters.set(key, counter)
    }
    counter.count++
    reply.headers({
      'x-request-id': request.id,
      'ratelimit-limit': BENCH_RATE_LIMIT.max,
      'ratelimit-remaining': Math.max(0, BENCH_RATE_LIMIT.max - counter.count),
      'ratelimit-reset': Math.ceil((counter.resetAt - now) / 1000),
      'x-cache': 'HIT',
      'cache-control': 'private',
      vary: 'Origin, Accept-Encoding, Authorization, X-Trisul-Username, X-Trisul-Context',
      etag,
      'content-type': 'application/json; charset=utf-8',
    })
    reply.send(listing)
  })
  app.addHook('onResponse', (request, reply, done) => {
    recordHttp(metrics, {
      method: request.method,
      route: request.routeOptions.url,
      statusCode: reply.statusCode,
      consumer: 'default',
      seconds: reply.elapsedTime / 1000,
    })
    done()
  })
  // Never reached for an authenticated GET: the hook answers first.
  app.get('/api/ipdrcustomers', (_request, reply) => {
    reply.send(listing)
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { info: { url }, close: () => app.close() }
})
