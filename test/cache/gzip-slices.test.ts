// gzip in slices (src/cache/gzip-slices.ts): one gzip member whatever the slicing, the body back
// byte for byte from any decoder, the CRC-32 and length of RFC 1952 in its trailer.
import { randomBytes } from 'node:crypto'
import zlib from 'node:zlib'
import t from 'tap'
import {
  deflateSlices,
  gzipInSlices,
  gzipSlices,
  SLICED_GZIP_MIN_BYTES,
} from '../../src/cache/gzip-slices.js'
import { compressWithZlib, GZIP_LEVEL, LARGE_GZIP_LEVEL } from '../../src/cache/listing-body.js'

/** JSON-like text with some incompressible runs, so slices differ in what they hold. */
function body(bytes: number): Buffer {
  const parts: Buffer[] = []
  let size = 0
  for (let i = 0; size < bytes; i++) {
    const piece =
      i % 7 === 0
        ? randomBytes(64)
        : Buffer.from(`{"id":${i},"Name":"Ñame ${i} 名前","Email":"u${i}@example.in"},`)
    parts.push(piece)
    size += piece.length
  }
  return Buffer.concat(parts).subarray(0, bytes)
}

t.test('one member, the same bytes back, for every slicing', async (t) => {
  for (const size of [0, 1, 5, 1000, 65_537, 300_000]) {
    const raw = body(size)
    for (const slices of [1, 2, 3, 4, 7]) {
      const gz = await gzipInSlices(raw, 6, slices)
      const label = `${size} bytes in ${slices} slices`
      t.ok(zlib.gunzipSync(gz).equals(raw), `${label}: gunzip gives the body`)
      t.same([...gz.subarray(0, 4)], [0x1f, 0x8b, 8, 0], `${label}: a gzip header without flags`)
      // The deflate data alone holds the whole body and ends with a final block: one member, so a
      // decoder that reads only the first member still gets everything.
      t.ok(zlib.inflateRawSync(gz.subarray(10, gz.length - 8)).equals(raw), `${label}: one deflate stream`)
      t.equal(gz.readUInt32LE(gz.length - 8), zlib.crc32(raw) >>> 0, `${label}: CRC-32`)
      t.equal(gz.readUInt32LE(gz.length - 4), raw.length, `${label}: ISIZE`)
    }
  }
})

t.test('large bodies are sliced, small ones are not', async (t) => {
  t.equal(gzipSlices(0), 1)
  t.equal(gzipSlices(SLICED_GZIP_MIN_BYTES - 1), 1)
  t.equal(gzipSlices(SLICED_GZIP_MIN_BYTES), 4)
  const raw = body(SLICED_GZIP_MIN_BYTES + 123)
  const gz = await gzipInSlices(raw, 6, gzipSlices(raw.length))
  t.ok(zlib.gunzipSync(gz).equals(raw), 'a sliced 8 MiB body decodes')
  const plain = zlib.gzipSync(raw, { level: 6 })
  t.ok(gz.length < plain.length * 1.01, `within 1% of one gzip (${gz.length} vs ${plain.length})`)
  const variant = await compressWithZlib(raw, 'gzip')
  t.ok(
    variant.equals(await gzipInSlices(raw, LARGE_GZIP_LEVEL, gzipSlices(raw.length))),
    "a large cached listing's gzip variant is made so, at the large level",
  )
  t.ok(zlib.gunzipSync(variant).equals(raw), 'and decodes')
  const small = body(1000)
  t.ok(
    (await compressWithZlib(small, 'gzip')).equals(zlib.gzipSync(small, { level: GZIP_LEVEL })),
    'a small one in one piece, at the default level',
  )
})

/** A few loop turns: enough for promise chains to run out. */
async function turns(): Promise<void> {
  for (let k = 0; k < 5; k++) await new Promise((r) => setImmediate(r))
}

/** A deflate stand-in that records how many run at once; each settles when the test says. */
function fakeDeflate() {
  let inFlight = 0
  let most = 0
  const order: number[] = []
  const waiting: (() => void)[] = []
  const deflate = (i: number) =>
    new Promise<Buffer>((resolve) => {
      inFlight++
      most = Math.max(most, inFlight)
      order.push(i)
      waiting.push(() => {
        inFlight--
        resolve(Buffer.from([i]))
      })
    })
  const settleOne = async () => {
    waiting.shift()?.()
    await turns()
  }
  return { deflate, settleOne, started: () => order.length, most: () => most }
}

const order = async (slices: Promise<Buffer[]>) => (await slices).map((b) => b[0])

t.test('slices all at once, or one at a time while narrowed', async (t) => {
  const wide = fakeDeflate()
  const all = deflateSlices(4, wide.deflate, null)
  t.equal(wide.started(), 4, 'no narrowing: all four start at once')
  for (let i = 0; i < 4; i++) await wide.settleOne()
  t.same(await order(all), [0, 1, 2, 3], 'in order')

  const narrow = fakeDeflate()
  let indexed = (): void => {}
  const until = new Promise<void>((resolve) => (indexed = resolve))
  const pieces = deflateSlices(4, narrow.deflate, until)
  await new Promise((r) => setImmediate(r))
  t.equal(narrow.started(), 1, 'narrowed: one slice')
  await narrow.settleOne()
  t.equal(narrow.started(), 2, 'the next once it is done')
  t.equal(narrow.most(), 1, 'never two at once while narrowed')
  indexed()
  await turns()
  t.equal(narrow.started(), 4, 'widened: the rest start at once, beside the one in flight')
  for (let i = 0; i < 3; i++) await narrow.settleOne()
  t.same(await order(pieces), [0, 1, 2, 3], 'in order')

  const failed = fakeDeflate()
  const gone = deflateSlices(3, failed.deflate, Promise.reject(new Error('worker died')))
  await turns()
  t.equal(failed.started(), 3, 'a rejected wait widens too')
  for (let i = 0; i < 3; i++) await failed.settleOne()
  t.equal((await gone).length, 3)
})

t.test('a narrowed gzip is the same bytes', async (t) => {
  const raw = body(300_000)
  let indexed = (): void => {}
  const until = new Promise<void>((resolve) => (indexed = resolve))
  const narrowed = gzipInSlices(raw, 6, 4, until)
  setTimeout(indexed, 5)
  t.ok((await narrowed).equals(await gzipInSlices(raw, 6, 4)))
})
