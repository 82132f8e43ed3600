/**
 * Requests on real sockets for the tests of the handlers below Fastify (`inject` never reaches the
 * server's listener): what came back on the wire, and how many requests each app's Fastify answered.
 */
import { type Agent, type IncomingMessage, request } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { VOLATILE } from './listing-fast-path-fixtures.js'

export interface Wire {
  status: number
  /** Names lower-cased, in the order sent, volatile ones left out. */
  headers: string[]
  body: string
}

/** One request on `agent`; the answer as it came on the wire (body in base64) and Node's message. */
export function send(
  agent: Agent,
  base: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  payload?: string,
): Promise<Wire & { raw: IncomingMessage }> {
  const url = new URL(path, base)
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const headers: string[] = []
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          const name = (res.rawHeaders[i] as string).toLowerCase()
          if (!VOLATILE.has(name)) headers.push(`${name}: ${res.rawHeaders[i + 1]}`)
        }
        resolve({
          status: res.statusCode ?? 0,
          headers,
          body: Buffer.concat(chunks).toString('base64'),
          raw: res,
        })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Counts the requests Fastify answered, per app (an `onRequest` hook may answer before later ones run). */
export function fastifyRequests() {
  const seen = new Map<FastifyInstance, number>()
  return {
    prepare: (app: FastifyInstance) =>
      app.addHook('onResponse', async () => {
        seen.set(app, (seen.get(app) ?? 0) + 1)
      }),
    of: (app: FastifyInstance) => seen.get(app) ?? 0,
  }
}
