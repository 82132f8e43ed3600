import t from 'tap'
import { type CompressedEncoding, ListingBody } from '../../src/cache/listing-body.js'

t.test('a failed compression is not memoized; the next ask retries', async (t) => {
  const calls: CompressedEncoding[] = []
  let fail = true
  const body = new ListingBody(Buffer.from('[]'), '"tag"', undefined, async (raw, encoding) => {
    calls.push(encoding)
    if (fail) throw new Error('out of memory')
    return Buffer.concat([Buffer.from(encoding), raw])
  })
  await t.rejects(body.encoded('gzip'), /out of memory/)
  t.equal(body.peekEncoded('gzip'), undefined)
  t.equal(body.bytes, 2)
  fail = false
  t.equal((await body.encoded('gzip')).toString(), 'gzip[]')
  t.equal((await body.encoded('br')).toString(), 'br[]')
  t.same(calls, ['gzip', 'gzip', 'br'])
  t.equal(body.bytes, 2 + 6 + 4)
  t.equal(body.etagFor('br'), '"tag.br"')
})

t.test('compression started while the index is built is narrowed until it is in', async (t) => {
  const seen: (Promise<unknown> | null)[] = []
  const body = new ListingBody(Buffer.from('[]'), '"tag"', undefined, async (raw, _encoding, options) => {
    seen.push(options.narrowUntil)
    return raw
  })
  let indexed = (): void => {}
  body.narrowWhile(new Promise<void>((resolve) => (indexed = resolve)))
  await body.encoded('gzip')
  t.not(seen[0], null, 'while the index is pending, the compressor is told to narrow')
  indexed()
  await seen[0]
  await body.encoded('br')
  t.equal(seen[1], null, 'once it is in, not')
  // A failed index build ends the narrowing too (the synchronous build takes over).
  const again = new ListingBody(Buffer.from('[]'), '"tag"', undefined, async (raw, _e, options) => {
    seen.push(options.narrowUntil)
    return raw
  })
  again.narrowWhile(Promise.reject(new Error('worker died')))
  await new Promise((resolve) => setImmediate(resolve))
  await again.encoded('gzip')
  t.equal(seen[2], null, 'a rejected index build widens at once')
})
