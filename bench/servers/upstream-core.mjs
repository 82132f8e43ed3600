/**
 * A minimal Trisul-like upstream on node:http: pre-serialized bytes, nothing
 * computed per request beyond what Trisul itself must do, i.e. read the JSON
 * body and check its credentials (api_token, username, contextname) on every
 * method, GET included. Bad credentials get Trisul's HTTP 200 envelope. So what
 * a benchmark through the gateway measures is the gateway's own cost.
 *
 * Accepted users: `bench` and any `bench-*` (row 6 uses a fresh username per
 * trial to get a cold cache key in a warm gateway), all with BENCH_TOKEN, in
 * the context `default`.
 */
import http from 'node:http'
import { BENCH_CONTEXT, BENCH_TOKEN, BENCH_USER } from '../lib/listing-data.mjs'

const LIST_PATH = '/api/ipdrcustomers'
const RECORD_PREFIX = '/api/ipdrcustomers/'
const INVALID_TOKEN = Buffer.from('{"status":"ERROR","message":"Invalid API token"}')
const NOT_FOUND = Buffer.from('{"status":"Error","message":"Not found"}')
/** Bodies are tiny; anything bigger is refused rather than buffered. */
const MAX_BODY = 64 * 1024

function credentialProblem(body) {
  let parsed
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    return INVALID_TOKEN
  }
  if (parsed === null || typeof parsed !== 'object') return INVALID_TOKEN
  const { api_token: token, username, contextname } = parsed
  if (token !== BENCH_TOKEN) return INVALID_TOKEN
  if (typeof username !== 'string' || (username !== BENCH_USER && !username.startsWith(`${BENCH_USER}-`))) {
    return INVALID_TOKEN
  }
  if (contextname !== BENCH_CONTEXT) {
    return Buffer.from(JSON.stringify({ status: 'Error', message: `Invalid Context name - ${contextname}` }))
  }
  return null
}

/**
 * @param {{ listing: Buffer, record: Buffer, delayMs?: number }} opts
 *   `delayMs` delays listing GETs only (a slow Trisul listing); writes answer at once.
 */
export function createUpstream({ listing, record, delayMs = 0 }) {
  const counts = { requests: 0, listings: 0, writes: 0, rejected: 0 }
  const send = (res, bytes) => {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length })
    res.end(bytes)
  }
  const server = http.createServer((req, res) => {
    const chunks = []
    let size = 0
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > MAX_BODY) req.destroy()
      else chunks.push(chunk)
    })
    req.on('end', () => {
      counts.requests++
      const problem = credentialProblem(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
      if (problem) {
        counts.rejected++
        send(res, problem)
        return
      }
      const path = req.url ?? ''
      if (req.method === 'GET' && path === LIST_PATH) {
        counts.listings++
        if (delayMs > 0) setTimeout(() => send(res, listing), delayMs)
        else send(res, listing)
        return
      }
      const isWrite =
        (req.method === 'POST' && path === LIST_PATH) ||
        (['PUT', 'PATCH', 'DELETE'].includes(req.method ?? '') && path.startsWith(RECORD_PREFIX))
      if (isWrite) {
        counts.writes++
        send(res, record)
        return
      }
      send(res, NOT_FOUND)
    })
  })
  server.keepAliveTimeout = 60_000
  return {
    server,
    counts,
    resetCounts() {
      for (const k of Object.keys(counts)) counts[k] = 0
    },
  }
}
