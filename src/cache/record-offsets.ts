/**
 * Byte offsets of the elements of a JSON array of objects, so a record can be
 * sent or parsed straight from the upstream bytes and the parsed objects need
 * not be kept. Not a validator: the caller has already parsed `raw` with
 * `JSON.parse` and checked that it is an array of `count` objects.
 */

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d

/**
 * `[start0, end0, start1, end1, …]` (end exclusive) of the `count` top-level
 * objects in `raw`. Throws if the structure disagrees with `count`, which
 * would mean `raw` was not the array the caller parsed.
 */
export function findRecordOffsets(raw: Buffer, count: number): Uint32Array {
  if (raw.length > 0xffffffff) throw new RangeError('listing too large to index')
  const offsets = new Uint32Array(count * 2)
  const n = raw.length
  let i = raw.indexOf(OPEN_BRACKET)
  if (i === -1) throw new Error('listing is not an array')
  i++
  let depth = 0
  let k = 0
  let start = 0
  while (i < n) {
    const c = raw[i] as number
    if (c === QUOTE) {
      // Jump to the closing quote: one preceded by an even number of backslashes.
      let close = raw.indexOf(QUOTE, i + 1)
      while (close !== -1) {
        let b = close - 1
        while (raw[b] === BACKSLASH) b--
        if ((close - 1 - b) % 2 === 0) break
        close = raw.indexOf(QUOTE, close + 1)
      }
      if (close === -1) throw new Error('unterminated string in listing')
      i = close + 1
      continue
    }
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (depth === 0) start = i
      depth++
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      if (depth === 0) break
      depth--
      if (depth === 0) {
        if (k >= count) throw new Error('listing has more elements than parsed')
        offsets[2 * k] = start
        offsets[2 * k + 1] = i + 1
        k++
      }
    }
    i++
  }
  if (k !== count) throw new Error('listing has fewer elements than parsed')
  return offsets
}
