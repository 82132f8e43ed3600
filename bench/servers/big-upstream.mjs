/**
 * Child process: the minimal Trisul-like upstream (upstream-core.mjs) with a
 * listing of `n` customers built in slices, so it can exceed the longest
 * string Node can make (5,000,000 customers are ~800 MB). Options: `{ n }`.
 */
import { listenLoopback, serveAsChild } from '../lib/child.mjs'
import { customerRecord, recordBytes } from '../lib/listing-data.mjs'
import { createUpstream } from './upstream-core.mjs'

function bigListing(n) {
  const parts = [Buffer.from('[')]
  const step = 50_000
  for (let from = 0; from < n; from += step) {
    const slice = []
    for (let i = from + 1; i <= Math.min(n, from + step); i++) slice.push(customerRecord(i))
    const json = JSON.stringify(slice)
    parts.push(Buffer.from(from === 0 ? json.slice(1, -1) : `,${json.slice(1, -1)}`))
  }
  parts.push(Buffer.from(']'))
  return Buffer.concat(parts)
}

serveAsChild(async ({ n }) => {
  const listing = bigListing(n)
  const upstream = createUpstream({ listing, record: recordBytes(), delayMs: 0 })
  const url = await listenLoopback(upstream.server)
  return { info: { url, bytes: listing.length }, close: () => upstream.server.close() }
})
