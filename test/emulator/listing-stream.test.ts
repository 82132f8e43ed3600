// The emulator's listing streamed a page at a time (src/emulator/listing-stream.ts): the bytes of
// JSON.stringify over the whole listing at every size around the page boundaries, and over HTTP a
// chunked answer with no whole-body string, the same rows as the store holds.
import t from 'tap'
import { LISTING_PAGE_ROWS, listingStream } from '../../src/emulator/listing-stream.js'
import { seedCustomer } from '../../src/emulator/seed.js'
import { EmulatorStore } from '../../src/emulator/store.js'
import { cred, mcred, startTestEmulator } from './harness.js'

async function text(stream: NodeJS.ReadableStream): Promise<{ text: string; chunks: number }> {
  const parts: Buffer[] = []
  for await (const chunk of stream) parts.push(chunk as Buffer)
  return { text: Buffer.concat(parts).toString('utf8'), chunks: parts.length }
}

t.test('the stream is JSON.stringify of every row, at every size around a page', async (t) => {
  const pageRows = 3
  for (const size of [0, 1, 2, 3, 4, 6, 7, 10]) {
    // Unusual contents: multi-byte UTF-8, quotes, backslashes, a null.
    const rows = Array.from({ length: size }, (_, i) => ({
      id: i * 2 + 1,
      Name: `Ñame "${i}" \\ 名前 🙂`,
      endtime: i % 2 ? null : i,
    }))
    const asked: number[] = []
    const stream = listingStream((afterId, limit) => {
      asked.push(afterId)
      return rows.filter((r) => r.id > afterId).slice(0, limit)
    }, pageRows)
    const got = await text(stream)
    t.equal(got.text, JSON.stringify(rows), `${size} rows`)
    t.equal(asked[0], 0, 'the first page starts at the beginning')
    t.equal(
      asked.length,
      Math.floor(size / pageRows) + 1,
      `${size} rows: one query per page, one to find the end`,
    )
  }
})

t.test('a page is read only when the previous one has been taken', async (t) => {
  // Pages larger than the stream's buffer (16 KiB), as the emulator's are (about 1 MB).
  let reads = 0
  const pad = 'x'.repeat(40_000)
  const stream = listingStream((afterId, limit) => {
    reads++
    return Array.from({ length: limit }, (_, i) => ({ id: afterId + i + 1, pad })).filter((r) => r.id <= 100)
  }, 1)
  t.equal(reads, 0, 'nothing read before the stream is consumed')
  stream.pause()
  const first = await new Promise<Buffer>((resolve) => {
    stream.once('readable', () => resolve(stream.read() as Buffer))
  })
  await new Promise((r) => setTimeout(r, 20))
  t.ok(first.length > 40_000)
  t.ok(reads <= 3, `pages read ahead of the consumer: ${reads} of 101`)
  stream.destroy()
})

t.test('over HTTP the listing is chunked, with the store rows, pages apart', async (t) => {
  const count = LISTING_PAGE_ROWS * 2 + 17
  const emu = await startTestEmulator(t, { seed: count })
  const reply = await emu.call('GET', '/api/ipdrcustomers', cred())
  t.equal(reply.status, 200)
  t.equal(reply.headers['content-type'], 'application/json; charset=utf-8')
  t.equal(reply.headers['transfer-encoding'], 'chunked', 'streamed, not one buffer with a length')
  t.equal(reply.headers['content-length'], undefined)
  const rows = reply.json as { id: number; UserID: string }[]
  t.equal(rows.length, count)
  t.same(rows[count - 1], { id: count, ...seedCustomer(count) }, 'the last row of the last page')
  t.same(
    rows.map((r) => r.id),
    Array.from({ length: count }, (_, i) => i + 1),
    'every row once, in id order',
  )
  // Byte for byte what the store's whole listing serializes to.
  const store = new EmulatorStore(':memory:')
  t.teardown(() => store.close())
  store.seed('default', count)
  t.equal(reply.text, JSON.stringify(store.listCustomers('default')))
  const mappings = await emu.call('GET', '/api/ipdrcustomers_mapping', mcred())
  t.equal(mappings.status, 200)
  t.equal(mappings.text, '[]', 'an empty listing is []')
})
