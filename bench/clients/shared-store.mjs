/**
 * Child process: the client of the shared-store rows (row 10). Handlers:
 * - `writes`: creates customers through one instance and reads each back at
 *   once through another; reports each write's latency and the stale reads,
 *   and with `observe` (a Redis URL and key prefix) how long each invalidation
 *   took to reach the other instances: from the writer's announcement to the
 *   last acknowledgement through Redis, as a subscriber of both channels sees
 *   them (an instance acknowledges once it has dropped the entries), and when
 *   each announcement arrived (to set against the writer's `settled`);
 * - `latency`: GETs one URL back to back for `ms`, `concurrency` at a time;
 *   reports each request's start time (relative) and latency;
 * - `budget`: fires `count` GETs at once, spread over `origins`; reports the
 *   statuses;
 * - `mixed`: for `ms`, `concurrency` loops over `origins` in turn, each tenth
 *   request a create (`prefix` + a counter), the others listing GETs; reports
 *   each request's start (`hostNow`), latency, status and kind (row 15);
 * - `observe` / `observed`: the same observation as `writes` makes, around
 *   announcements someone else sends (the floor of row 10 (b)).
 */
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import { hostNow, serveAsChild } from '../lib/child.mjs'

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

/**
 * Subscribes to the coherence channels under `keyPrefix`; `visible()` gives, per write, announcement →
 * last acknowledgement through Redis, and `announced` when each announcement arrived (`hostNow`).
 */
async function observeInvalidations({ redisUrl, keyPrefix }) {
  const sub = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 })
  await sub.connect()
  const announced = new Map()
  const lastAck = new Map()
  sub.on('pmessage', (_pattern, channel, message) => {
    const at = hostNow()
    const seq = message.slice(0, message.indexOf('\n'))
    if (channel === `${keyPrefix}invalidations`) announced.set(seq, at)
    else if (channel.startsWith(`${keyPrefix}acks:`)) lastAck.set(seq, at)
  })
  await sub.psubscribe(`${keyPrefix}*`)
  return {
    visible() {
      const out = []
      let unacknowledged = 0
      for (const [seq, at] of announced) {
        const acked = lastAck.get(seq)
        if (acked === undefined) unacknowledged++
        else out.push(acked - at)
      }
      return { visibleMs: out, unacknowledged, announced: [...announced] }
    },
    close: () => sub.disconnect(),
  }
}

async function writes({ writer, reader, headers, count, prefix, observe }) {
  const writeMs = []
  let stale = 0
  let failed = 0
  const observer = observe ? await observeInvalidations(observe) : null
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
  // The last acknowledgements are in before the last write was answered; one more turn to read them.
  await new Promise((r) => setTimeout(r, 50))
  const seen = observer?.visible() ?? null
  observer?.close()
  return { writeMs, stale, failed, ...(seen ?? {}) }
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

async function mixed({ origins, headers, ms, concurrency = 8, prefix }) {
  const end = performance.now() + ms
  const out = []
  let n = 0
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; performance.now() < end && out.length < 200_000; i++) {
        const origin = origins[(w + i) % origins.length]
        const write = i % 10 === 0
        const at = hostNow()
        const t0 = performance.now()
        let r
        try {
          r = write
            ? await call(origin, 'POST', '/api/ipdrcustomers', headers, {
                UserID: `${prefix}${n++}`,
                Name: 'Failover',
              })
            : await call(origin, 'GET', '/api/ipdrcustomers', headers)
        } catch {
          r = { status: 0, ms: performance.now() - t0 }
        }
        out.push({ at, ms: r.ms, status: r.status, write })
      }
    }),
  )
  return out
}

/** `observe`: starts watching the coherence channels under `keyPrefix`; `observed` stops and reports. */
let watching = null

serveAsChild(async () => ({
  info: {},
  async handle(type, args) {
    if (type === 'observe') {
      watching = await observeInvalidations(args)
      return null
    }
    if (type === 'observed') {
      // One more turn for the last acknowledgement, as `writes` gives it.
      await new Promise((r) => setTimeout(r, 50))
      const seen = watching.visible()
      watching.close()
      watching = null
      return seen
    }
    if (type === 'writes') return writes(args)
    if (type === 'latency') return latency(args)
    if (type === 'budget') return budget(args)
    if (type === 'mixed') return mixed(args)
    throw new Error(`unknown ${type}`)
  },
  async close() {
    for (const p of pools.values()) await p.close()
  },
}))
