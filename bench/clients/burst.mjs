/**
 * Child process: the row 6 client. For each `burst` message it opens
 * `count` keep-alive connections (warmed with concurrent GETs of `warmPath`,
 * which never reaches an upstream), then fires `count` GETs of `path` at
 * once and reports, per request, the time from the moment the burst was
 * fired to its last body byte, its status and its X-Cache.
 */
import { Pool } from 'undici'
import { serveAsChild } from '../lib/child.mjs'

async function drain(body) {
  let bytes = 0
  for await (const chunk of body) bytes += chunk.length
  return bytes
}

/**
 * @param {{ origin: string, path: string, warmPath: string, headers: Record<string,string>, count: number }} args
 */
async function burst({ origin, path, warmPath, headers, count }) {
  const pool = new Pool(origin, { connections: count, pipelining: 1, keepAliveTimeout: 60_000 })
  try {
    // All dispatched in one turn: the pool opens one connection per request in flight.
    await Promise.all(
      Array.from({ length: count }, async () => {
        const res = await pool.request({ method: 'GET', path: warmPath })
        await drain(res.body)
      }),
    )
    const connected = pool.stats.connected
    const started = performance.now()
    const results = await Promise.all(
      Array.from({ length: count }, async () => {
        const res = await pool.request({ method: 'GET', path, headers })
        const bytes = await drain(res.body)
        return {
          ms: performance.now() - started,
          status: res.statusCode,
          xCache: res.headers['x-cache'] ?? null,
          bytes,
        }
      }),
    )
    return { connected, results }
  } finally {
    await pool.close()
  }
}

serveAsChild(async () => ({
  info: {},
  handle(type, args) {
    if (type === 'burst') return burst(args)
    throw new Error(`unknown message ${type}`)
  },
}))
