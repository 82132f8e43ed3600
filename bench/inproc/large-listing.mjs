/**
 * Child process (started with --expose-gc): row 8, one listing of N = 100,000
 * customers inside one process.
 *
 * - fill: `buildListingEntry(raw)` (parse, record offsets, index, ETag), median of several;
 * - heap: heapUsed + external after forced GCs, before and after building an
 *   entry and asking it for its gzip and br variants; the raw bytes, which
 *   the entry keeps, count as part of it: ratio = (delta + raw) / raw;
 * - `GET /{UserID}` and `GET ?q=` through the real app with `inject()` (the
 *   whole Fastify pipeline: hooks, auth, rate limit, cache lookup, reply;
 *   not the socket or the HTTP parser), after the listing was cached from an
 *   in-process upstream;
 * - the same filter in the cache core alone (`applyListingQuery`), for reference.
 */
import { rmSync } from 'node:fs'
import { buildApp } from '../../dist/app.js'
import { buildListingEntry } from '../../dist/cache/listing-entry.js'
import { applyListingQuery, parseListingQuery } from '../../dist/cache/listing-query.js'
import { loadPolicy } from '../../dist/policy/load.js'
import { RESOURCE_BY_NAME } from '../../dist/resources.js'
import { listenLoopback, serveAsChild } from '../lib/child.mjs'
import { gatewayHeaders, listingBytes, recordBytes, seedUserId } from '../lib/listing-data.mjs'
import { writeBenchPolicy } from '../lib/policy.mjs'
import { median, percentile } from '../lib/stats.mjs'
import { createUpstream } from '../servers/upstream-core.mjs'

const facts = RESOURCE_BY_NAME.customers

async function fullGc() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

function memory() {
  const m = process.memoryUsage()
  // `external` includes ArrayBuffer backing stores (the Buffers: raw, gzip, br, typed arrays).
  return m.heapUsed + m.external
}

function timeIt(fn) {
  const t = performance.now()
  fn()
  return performance.now() - t
}

async function timeSamples(count, warmup, fn) {
  const out = []
  for (let i = 0; i < warmup + count; i++) {
    const t = performance.now()
    await fn(i)
    const ms = performance.now() - t
    if (i >= warmup) out.push(ms)
  }
  return out
}

const summary = (samples) => ({
  p50Ms: percentile(samples, 50),
  p99Ms: percentile(samples, 99),
  samples: samples.length,
})

async function measureEntry(raw, fillRuns) {
  const fills = []
  for (let i = 0; i < fillRuns; i++) fills.push(timeIt(() => buildListingEntry(raw, facts)))
  await fullGc()
  const before = memory()
  const entry = buildListingEntry(raw, facts)
  let t = performance.now()
  const gzip = await entry.encoded('gzip')
  const gzipMs = performance.now() - t
  t = performance.now()
  const br = await entry.encoded('br')
  const brMs = performance.now() - t
  await fullGc()
  const grown = memory() - before
  return {
    entry,
    fill: { medianMs: median(fills), runsMs: fills },
    heap: {
      rawBytes: raw.length,
      entryBytesMeasured: grown + raw.length,
      ratio: (grown + raw.length) / raw.length,
      entryBytesEstimate: entry.bytes,
      gzipBytes: gzip.length,
      brBytes: br.length,
      gzipMs,
      brMs,
    },
  }
}

async function measureApp(raw, n, samples) {
  const upstream = createUpstream({ listing: raw, record: recordBytes() })
  const upstreamUrl = await listenLoopback(upstream.server)
  const dir = writeBenchPolicy({ upstreamUrl })
  const loaded = await loadPolicy(dir, {})
  rmSync(dir, { recursive: true, force: true })
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'))
  const app = await buildApp({ policy: loaded.policy, upstreamUrl, logger: false, probe: false })
  await app.ready()
  const headers = gatewayHeaders()
  const get = async (url, expect = 200) => {
    const res = await app.inject({ method: 'GET', url, headers })
    if (res.statusCode !== expect) throw new Error(`GET ${url}: ${res.statusCode} ${res.body.slice(0, 200)}`)
    return res
  }
  try {
    let t = performance.now()
    const first = await get('/api/ipdrcustomers')
    const coldFillMs = performance.now() - t
    if (first.rawPayload.length !== raw.length)
      throw new Error('the cached listing differs from the upstream bytes')
    t = performance.now()
    await get('/api/ipdrcustomers')
    const cachedFullMs = performance.now() - t

    // Customers spread over the whole listing (a stride coprime to n).
    const ids = Array.from({ length: 997 }, (_, i) => seedUserId(1 + ((i * 7919) % n)))
    const reads = await timeSamples(samples, Math.min(200, samples), (i) =>
      get(`/api/ipdrcustomers/${ids[i % ids.length]}`),
    )
    // Selective: a customer's UserID (one match); broad: a common surname (thousands of matches, full body).
    const selective = await timeSamples(Math.ceil(samples / 10), 10, (i) =>
      get(`/api/ipdrcustomers?q=${encodeURIComponent(ids[i % ids.length].toLowerCase())}`),
    )
    const broadRes = await get('/api/ipdrcustomers?q=sharma')
    const broad = await timeSamples(Math.ceil(samples / 10), 10, () => get('/api/ipdrcustomers?q=sharma'))
    const paged = await timeSamples(Math.ceil(samples / 10), 10, () =>
      get('/api/ipdrcustomers?q=sharma&limit=50'),
    )

    // The same broad filter in the cache core, without Fastify.
    const entry = buildListingEntry(raw, facts)
    const parsed = parseListingQuery(facts, { q: 'sharma' })
    if (!parsed.ok) throw new Error(parsed.message)
    const core = await timeSamples(Math.ceil(samples / 10), 10, () =>
      applyListingQuery(entry, parsed.query).body(),
    )
    return {
      coldFillMs,
      cachedFullMs,
      read: summary(reads),
      qSelective: summary(selective),
      qBroad: {
        ...summary(broad),
        matches: Number(broadRes.headers['x-total-count']),
        bodyBytes: broadRes.rawPayload.length,
      },
      qBroadLimit50: summary(paged),
      qBroadCore: summary(core),
    }
  } finally {
    await app.close()
    upstream.server.closeAllConnections()
    upstream.server.close()
  }
}

serveAsChild(async () => ({
  info: {},
  async handle(type, { n, fillRuns, samples }) {
    if (type !== 'run') throw new Error(`unknown message ${type}`)
    if (typeof globalThis.gc !== 'function') throw new Error('start with --expose-gc')
    let raw = listingBytes(n)
    const { entry, fill, heap } = await measureEntry(raw, fillRuns)
    void entry
    const app = await measureApp(raw, n, samples)
    raw = null
    return { n, fill, heap, app }
  },
}))
