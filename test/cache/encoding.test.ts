import t from 'tap'
import { ifNoneMatchMatches, negotiateEncoding } from '../../src/cache/encoding.js'

t.test('negotiateEncoding honours q-values, * and prefers br on ties', async (t) => {
  const table: [string | undefined, string][] = [
    [undefined, 'identity'],
    ['', 'identity'],
    ['gzip', 'gzip'],
    ['br', 'br'],
    ['gzip, br', 'br'],
    ['br, gzip', 'br'],
    ['GZIP, BR', 'br'],
    ['gzip, deflate, br, zstd', 'br'],
    ['gzip;q=1, br;q=0.9', 'gzip'],
    ['gzip;q=0.5, br;q=0.5', 'br'],
    ['gzip; q=0.8 , br ; q=0.2', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['br;q=0, gzip;q=0', 'identity'],
    ['*', 'br'],
    ['*;q=0', 'identity'],
    ['*;q=0.5, br;q=0', 'gzip'],
    ['*, br;q=0, gzip;q=0', 'identity'],
    ['identity', 'identity'],
    ['identity, gzip', 'gzip'],
    ['identity;q=1, gzip;q=0.5', 'identity'],
    ['identity;q=0.5, gzip;q=0.5', 'gzip'],
    ['identity;q=0, gzip;q=0', 'identity'],
    ['deflate', 'identity'],
    ['x-gzip', 'gzip'],
    ['gzip;q=2', 'identity'],
    ['gzip;q=abc, br;q=0.1', 'br'],
    ['gzip;q=0.1234', 'identity'],
    ['gzip;q=1.000', 'gzip'],
    ['gzip;q=1.001', 'identity'],
    ['gzip;q', 'identity'],
    ['gzip;level=1', 'gzip'],
    [',,gzip,,', 'gzip'],
    ['br;q=0, br;q=1, gzip;q=0.1', 'gzip'],
    [';q=1', 'identity'],
  ]
  for (const [header, want] of table) {
    t.equal(negotiateEncoding(header), want, JSON.stringify(header))
  }
})

t.test('ifNoneMatchMatches uses weak comparison over lists', async (t) => {
  const tag = '"abc"'
  const table: [string | undefined, string, boolean][] = [
    [undefined, tag, false],
    ['', tag, false],
    ['*', tag, true],
    [' * ', tag, true],
    ['"abc"', tag, true],
    ['W/"abc"', tag, true],
    ['"abc"', 'W/"abc"', true],
    ['"xyz", "abc"', tag, true],
    ['"xyz",W/"abc"', tag, true],
    ['"xyz"', tag, false],
    ['"ab"', tag, false],
    ['"abcd"', tag, false],
    ['"a,bc", "abc"', tag, true],
    ['"a,b"', '"a,b"', true],
    ['abc', tag, true],
    ['xyz, abc', tag, true],
    ['"abc', tag, false],
    ['W/', tag, false],
    ['"xyz", *', tag, true],
    [', ,', tag, false],
  ]
  for (const [header, etag, want] of table) {
    t.equal(ifNoneMatchMatches(header, etag), want, `${JSON.stringify(header)} vs ${etag}`)
  }
})
