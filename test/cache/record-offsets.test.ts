import t from 'tap'
import { findRecordOffsets } from '../../src/cache/record-offsets.js'

t.test('offsets of top-level objects, skipping strings with brackets and escapes', async (t) => {
  const text = '[{"a":"}\\\\"},{"b":["{",{"c":"\\"]"}]}, {}]'
  const raw = Buffer.from(text)
  const offsets = findRecordOffsets(raw, 3)
  const slices = [0, 1, 2].map((i) => raw.subarray(offsets[2 * i], offsets[2 * i + 1]).toString())
  t.same(slices, ['{"a":"}\\\\"}', '{"b":["{",{"c":"\\"]"}]}', '{}'])
})

t.test('disagreement with the parsed count or the structure throws', async (t) => {
  t.throws(() => findRecordOffsets(Buffer.from('[{},{}]'), 1), /more elements/)
  t.throws(() => findRecordOffsets(Buffer.from('[{}]'), 2), /fewer elements/)
  t.throws(() => findRecordOffsets(Buffer.from('{}'), 0), /not an array/)
  t.throws(() => findRecordOffsets(Buffer.from('[{"a":"x}]'), 1), /unterminated/)
  t.throws(() => findRecordOffsets(Buffer.from('[{"a":"x\\"}]'), 1), /unterminated/)
})
