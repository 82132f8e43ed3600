/**
 * Liveness and readiness (shared/SPEC.md 3.2). Neither needs credentials,
 * neither reaches the upstream: readiness reports the probe's last finding.
 */
import type { FastifyInstance } from 'fastify'
import type { Readiness } from '../../upstream/readiness.js'

export function registerHealthRoutes(app: FastifyInstance, deps: { readiness: Readiness }): void {
  app.get('/healthz', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { status: 'ok' }
  })
  app.get('/readyz', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    const up = deps.readiness.up
    reply.code(up ? 200 : 503)
    return { status: up ? 'ready' : 'upstream unreachable' }
  })
}
