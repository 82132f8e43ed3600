/**
 * Measures one cache entry at N = 100,000 (not a test; docs/cache.md quotes
 * its output). Run from the repository root:
 *
 *   TS_NODE_TRANSPILE_ONLY=1 node --expose-gc --import @tapjs/typescript/import test/cache/measure-listing.ts [N]
 */

import { buildListingEntry } from '../../src/cache/listing-entry.js'
import { applyListingQuery, parseListingQuery } from '../../src/cache/listing-query.js'
import { RESOURCE_BY_NAME } from '../../src/resources.js'
import { makeCustomers, makeMappings, toRaw } from './fixtures.js'

const gc = (globalThis as { gc?: () => void }).gc
const n = Number(process.argv[2] ?? 100_000)

function settle(): void {
  for (let i = 0; i < 4; i++) gc?.()
}

/** Heap plus off-heap (Buffers) in use. */
function used(): number {
  const m = process.memoryUsage()
  return m.heapUsed + m.external
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`
}

function p50(label: string, runs: number, fn: () => unknown): number {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    fn()
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  const median = times[Math.floor(times.length / 2)] as number
  const p95 = times[Math.floor(times.length * 0.95)] as number
  console.log(`${label.padEnd(48)} p50 ${median.toFixed(3)} ms  p95 ${p95.toFixed(3)} ms`)
  return median
}

/** In its own frame, so the interpreter keeps no hidden reference to the records while we measure. */
function mappingsBytes(count: number): Buffer {
  return toRaw(makeMappings(count))
}

async function main(): Promise<void> {
  const mappingsFacts = RESOURCE_BY_NAME.mappings
  const mappingsRaw = mappingsBytes(n)
  settle()
  const mappingsBefore = used()
  let t = performance.now()
  const mappings = buildListingEntry(mappingsRaw, mappingsFacts)
  const mappingsMs = performance.now() - t
  settle()
  const mappingsHeap = used() - mappingsBefore + mappingsRaw.length
  console.log(
    `mappings N=${n}: raw ${mb(mappingsRaw.length)}, build ${mappingsMs.toFixed(0)} ms, ` +
      `measured ${mb(mappingsHeap)} = ${(mappingsHeap / mappingsRaw.length).toFixed(2)}x raw, ` +
      `estimated entry.bytes ${mb(mappings.bytes)} = ${(mappings.bytes / mappingsRaw.length).toFixed(2)}x raw`,
  )

  const customersFacts = RESOURCE_BY_NAME.customers
  const customers = makeCustomers(n)
  let raw: Buffer | null = toRaw(customers)
  const rawLength = raw.length
  console.log(`customers N=${n}: raw JSON ${mb(rawLength)}`)

  // Parsed records kept (the design not taken), for comparison.
  settle()
  let before = used()
  let parsed: unknown = JSON.parse(raw.toString('utf8'))
  settle()
  console.log(
    `parsed records retained: ${mb(used() - before)} = ${((used() - before) / rawLength).toFixed(2)}x raw`,
  )
  parsed = null
  void parsed

  settle()
  before = used()
  t = performance.now()
  const entry = buildListingEntry(raw, customersFacts)
  const buildMs = performance.now() - t
  raw = null // the entry holds the only reference now
  settle()
  const indexHeap = used() - before + rawLength
  console.log(`build (parse, offsets, index, etag): ${buildMs.toFixed(0)} ms`)
  console.log(
    `entry without variants: measured ${mb(indexHeap)} = ${(indexHeap / rawLength).toFixed(2)}x raw; ` +
      `estimated entry.bytes ${mb(entry.bytes)}`,
  )

  t = performance.now()
  const gz = await entry.encoded('gzip')
  const gzipMs = performance.now() - t
  t = performance.now()
  const br = await entry.encoded('br')
  const brMs = performance.now() - t
  console.log(
    `gzip: ${mb(gz.length)} in ${gzipMs.toFixed(0)} ms; br: ${mb(br.length)} in ${brMs.toFixed(0)} ms`,
  )
  // Let zlib close its handles before measuring.
  await new Promise((resolve) => setTimeout(resolve, 100))
  settle()
  const total = used() - before + rawLength
  console.log(
    `entry with gzip + br: measured ${mb(total)} = ${(total / rawLength).toFixed(2)}x raw; ` +
      `estimated entry.bytes ${mb(entry.bytes)} = ${(entry.bytes / rawLength).toFixed(2)}x raw`,
  )

  t = performance.now()
  const view = entry.redacted(['PhoneNumber', 'AltPhoneNumber'])
  console.log(
    `redacted view (PhoneNumber, AltPhoneNumber): ${mb(view.raw.length)} built in ${(performance.now() - t).toFixed(0)} ms (sync, once per entry and field set)`,
  )

  const q = (text: string) => {
    const parsedQuery = parseListingQuery(customersFacts, Object.fromEntries(new URLSearchParams(text)))
    if (!parsedQuery.ok) throw new Error(parsedQuery.message)
    return parsedQuery.query
  }
  const someone = customers[Math.floor(n / 2)]
  if (someone === undefined) throw new Error('N too small')
  const runs = 101
  p50('single read: lookup(UserID) + record()', 1001, () =>
    entry.record(entry.lookup(someone.UserID)[0] as number),
  )
  p50('single read: lookup(UserID) + recordRaw()', 1001, () =>
    entry.recordRaw(entry.lookup(someone.UserID)[0] as number),
  )
  const byUser = q(`UserID=${someone.UserID}`)
  p50('UserID= filter (applyListingQuery + body)', 1001, () => applyListingQuery(entry, byUser).body())
  for (const text of [
    'q=zzzz',
    `q=${someone.Email.slice(0, 12)}`,
    'q=sharma&limit=100',
    'q=sharma',
    'q=mg road&limit=50&offset=100',
    `Email=${someone.Email.toUpperCase()}`,
    `PhoneNumber=${encodeURIComponent(someone.PhoneNumber)}`,
    'limit=100&offset=50000',
  ]) {
    const query = q(text)
    const total = applyListingQuery(entry, query).total
    p50(`${text} (total ${total}) + body`, runs, () => applyListingQuery(entry, query).body())
  }
  p50(
    'q=sharma + records (parsed page of all matches)',
    11,
    () => applyListingQuery(entry, q('q=sharma')).records,
  )

  console.log('')
  const mq = (text: string) => {
    const parsedQuery = parseListingQuery(mappingsFacts, Object.fromEntries(new URLSearchParams(text)))
    if (!parsedQuery.ok) throw new Error(parsedQuery.message)
    return parsedQuery.query
  }
  for (const text of [
    'ip=172.16.1.7',
    'ip=10.0.3.9&at=1600500000',
    'ip=2001:db8:1:3::5',
    'at=1600500000&limit=100',
    'ipdr_customer_id=77',
  ]) {
    const query = mq(text)
    const total = applyListingQuery(mappings, query).total
    p50(`${text} (total ${total}) + body`, runs, () => applyListingQuery(mappings, query).body())
  }
}

// Test runners that pick up every file of the folder run this too: without --expose-gc, say so and do nothing.
if (gc === undefined) console.log('# measure-listing: run with node --expose-gc (see the header)')
else await main()
