/**
 * Child process: the client of the shared-store rows (row 10). Handlers:
 * - `writes`: creates customers through one instance and reads each back at
 *   once through another; reports each write's latency and the stale reads;
 * - `latency`: GETs one URL back to back for `ms`, `concurrency` at a time;
 *   reports each request's start time (relative) and latency;
 * - `budget`: fires `count` GETs at once, spread over `origins`; reports the
 *   statuses.
 */
import { Pool } from 'undici'
import { serveAsChild } from '../lib/child.mjs'

const pools = new Map()
function pool(origin) {
  let p = pools.get(origin)
  if (!p) {
    p = new Pool(origin, { connections: 64, keepAliveTimeout: 60_000 })
    pools.set(origin, p)
  }
  return p
}

async function call(origin, method, path, headers, body) {
  const started = performance.now()
  const res = await pool(origin).request({
    method,
    path,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await res.body.text()
  return { status: res.statusCode, text, ms: performance.now() - started }
}

async function writes({ writer, reader, headers, count, prefix }) {
  const writeMs = []
  let stale = 0
  let failed = 0
  for (let i = 0; i < count; i++) {
    const id = `${prefix}${i}`
    const w = await call(writer, 'POST', '/api/ipdrcustomers', headers, { UserID: id, Name: `Bench ${i}` })
    if (w.status !== 200) failed++
    writeMs.push(w.ms)
    const r = await call(reader, 'GET', `/api/ipdrcustomers/${id}`, headers)
    if (r.status !== 200) stale++
    // Keep the reader's cache warm, so the next read is a hit unless invalidated.
    await call(reader, 'GET', '/api/ipdrcustomers', headers)
  }
  return { writeMs, stale, failed }
}

async function latency({ origin, path, headers, ms, concurrency = 4 }) {
  const start = performance.now()
  const out = []
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - start < ms && out.length < 200_000) {
        const at = performance.now() - start
        const r = await call(origin, 'GET', path, headers)
        out.push({ at, ms: r.ms, status: r.status })
      }
    }),
  )
  return out
}

async function budget({ origins, headers, count }) {
  const replies = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      call(origins[i % origins.length], 'GET', '/api/ipdrcustomers', headers),
    ),
  )
  const statuses = {}
  for (const r of replies) statuses[r.status] = (statuses[r.status] ?? 0) + 1
  return statuses
}

serveAsChild(async () => ({
  info: {},
  handle(type, args) {
    if (type === 'writes') return writes(args)
    if (type === 'latency') return latency(args)
    if (type === 'budget') return budget(args)
    throw new Error(`unknown ${type}`)
  },
  async close() {
    for (const p of pools.values()) await p.close()
  },
}))
