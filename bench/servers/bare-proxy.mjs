/**
 * Child process: the floor of any Fastify gateway, for reference rows: a bare
 * Fastify server that forwards every request to the upstream with undici
 * (the gateway's HTTP client), adding the body credentials, and sends the
 * upstream's bytes back. No auth, policy, validation, rate limit, metrics or
 * cache. Options: `{ upstreamUrl }`.
 */
import Fastify from 'fastify'
import { Pool } from 'undici'
import { serveAsChild } from '../lib/child.mjs'
import { withBodyCredentials } from '../lib/listing-data.mjs'

serveAsChild(async ({ upstreamUrl }) => {
  const pool = new Pool(upstreamUrl, { connections: 32, pipelining: 1, keepAliveTimeout: 4000 })
  const app = Fastify({ logger: false })
  const forward = async (request, reply) => {
    const payload = JSON.stringify(withBodyCredentials(request.body ?? {}))
    const res = await pool.request({
      method: request.method,
      path: request.url,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) },
      body: payload,
    })
    const chunks = []
    for await (const chunk of res.body) chunks.push(chunk)
    reply
      .type('application/json; charset=utf-8')
      .send(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
  }
  app.route({ method: ['GET', 'POST'], url: '/api/ipdrcustomers', handler: forward })
  app.route({ method: ['PUT', 'PATCH', 'DELETE'], url: '/api/ipdrcustomers/:UserID', handler: forward })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    info: { url },
    close: async () => {
      await app.close()
      await pool.close()
    },
  }
})
