import t from 'tap'
import { deriveEtag, strongEtag } from '../../src/cache/etag.js'

t.test('strong tags are quoted digests of the bytes', async (t) => {
  const tag = strongEtag(Buffer.from('[]'))
  t.match(tag, /^"[A-Za-z0-9_-]{27}"$/)
  t.equal(strongEtag(Buffer.from('[]')), tag)
  t.not(strongEtag(Buffer.from('[ ]')), tag)
})

t.test('derived tags depend on the base and every part, unambiguously', async (t) => {
  const base = strongEtag(Buffer.from('[]'))
  const a = deriveEtag(base, ['q=x'])
  t.match(a, /^"[A-Za-z0-9_-]{27}"$/)
  t.equal(deriveEtag(base, ['q=x']), a)
  t.not(deriveEtag(base, ['q=y']), a)
  t.not(deriveEtag(strongEtag(Buffer.from('[1]')), ['q=x']), a)
  t.not(deriveEtag(base, ['a,b']), deriveEtag(base, ['a', 'b']))
  t.not(deriveEtag(base, []), base)
})
