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
