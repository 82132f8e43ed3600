/**
 * A strict JSON validator for listings that never makes a string of the whole
 * body: one pass over the bytes checks that they are a JSON array of objects
 * (RFC 8259 grammar: strings with their escapes and no raw control
 * characters, numbers, literals, any nesting inside a record) and returns the
 * byte range of each record. Node cannot make a string past ~512 MiB and
 * `JSON.parse` of a 160 MB body blocks for seconds, so the whole-body parse
 * the cache used to do is gone; records are parsed one by one when needed.
 * Like `JSON.parse` of `toString('utf8')`, invalid UTF-8 is not an error.
 * Pure; runs on the event loop for small listings and in the listing worker
 * (src/cache/listing-worker.ts) for large ones.
 */

// Not a GatewayError: the scanner is pure and serves two callers that answer differently (502 for Trisul's listing, 400 for a sync input).
export class ListingScanError extends Error {
  override name = 'ListingScanError'
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
const COMMA = 0x2c
const COLON = 0x3a
const MINUS = 0x2d
const PLUS = 0x2b
const DOT = 0x2e
const ZERO = 0x30
const NINE = 0x39

const IN_OBJECT = 1
const IN_ARRAY = 2

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

function skipWs(b: Uint8Array, i: number): number {
  while (isWs(b[i])) i++
  return i
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= ZERO && c <= NINE
}

function isHex(c: number | undefined): boolean {
  return c !== undefined && ((c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66))
}

function fail(message: string, at: number): never {
  throw new ListingScanError(`${message} at byte ${at}`)
}

/** `b[i]` is a quote; returns the index after the closing quote. */
function skipString(b: Uint8Array, i: number): number {
  const n = b.length
  let j = i + 1
  for (;;) {
    if (j >= n) fail('unterminated string', i)
    const c = b[j] as number
    if (c === QUOTE) return j + 1
    if (c === BACKSLASH) {
      const e = b[j + 1]
      if (e === 0x75 /* u */) {
        if (!(isHex(b[j + 2]) && isHex(b[j + 3]) && isHex(b[j + 4]) && isHex(b[j + 5])))
          fail('bad \\u escape', j)
        j += 6
        continue
      }
      // " \ / b f n r t
      if (
        e === QUOTE ||
        e === BACKSLASH ||
        e === 0x2f ||
        e === 0x62 ||
        e === 0x66 ||
        e === 0x6e ||
        e === 0x72 ||
        e === 0x74
      ) {
        j += 2
        continue
      }
      fail('bad escape', j)
    }
    if (c < 0x20) fail('control character in string', j)
    j++
  }
}

function skipNumber(b: Uint8Array, i: number): number {
  let j = i
  if (b[j] === MINUS) j++
  if (b[j] === ZERO) j++
  else if (isDigit(b[j])) while (isDigit(b[j])) j++
  else fail('bad number', i)
  if (b[j] === DOT) {
    j++
    if (!isDigit(b[j])) fail('bad number', i)
    while (isDigit(b[j])) j++
  }
  if (b[j] === 0x65 || b[j] === 0x45) {
    j++
    if (b[j] === PLUS || b[j] === MINUS) j++
    if (!isDigit(b[j])) fail('bad number', i)
    while (isDigit(b[j])) j++
  }
  return j
}

function skipLiteral(b: Uint8Array, i: number, word: readonly number[]): number {
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) fail('unexpected token', i)
  return i + word.length
}

const TRUE = [0x74, 0x72, 0x75, 0x65]
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65]
const NULL = [0x6e, 0x75, 0x6c, 0x6c]

/** `b[i]` should start an object key; returns the index of the value after its colon. */
function skipKey(b: Uint8Array, i: number): number {
  if (b[i] !== QUOTE) fail('expected a key', i)
  i = skipWs(b, skipString(b, i))
  if (b[i] !== COLON) fail("expected ':'", i)
  return i + 1
}

/** Validates the JSON value at `i` (iteratively: a deep nesting cannot overflow the stack); returns the index after it. */
function skipValue(b: Uint8Array, i: number): number {
  const stack: number[] = []
  for (;;) {
    i = skipWs(b, i)
    const c = b[i]
    if (c === OPEN_BRACE) {
      i = skipWs(b, i + 1)
      if (b[i] === CLOSE_BRACE) i++
      else {
        stack.push(IN_OBJECT)
        i = skipKey(b, i)
        continue
      }
    } else if (c === OPEN_BRACKET) {
      i = skipWs(b, i + 1)
      if (b[i] === CLOSE_BRACKET) i++
      else {
        stack.push(IN_ARRAY)
        continue
      }
    } else if (c === QUOTE) i = skipString(b, i)
    else if (c === MINUS || isDigit(c)) i = skipNumber(b, i)
    else if (c === 0x74) i = skipLiteral(b, i, TRUE)
    else if (c === 0x66) i = skipLiteral(b, i, FALSE)
    else if (c === 0x6e) i = skipLiteral(b, i, NULL)
    else fail(c === undefined ? 'unexpected end' : 'unexpected token', i)
    // A value ended: close what it ends, or go on to the next one.
    for (;;) {
      if (stack.length === 0) return i
      i = skipWs(b, i)
      const top = stack[stack.length - 1]
      const d = b[i]
      if (d === COMMA) {
        i = skipWs(b, i + 1)
        if (top === IN_OBJECT) i = skipKey(b, i)
        break
      }
      if ((top === IN_OBJECT && d === CLOSE_BRACE) || (top === IN_ARRAY && d === CLOSE_BRACKET)) {
        stack.pop()
        i++
        continue
      }
      fail(
        d === undefined ? 'unexpected end' : `expected ',' or a closing ${top === IN_OBJECT ? '}' : ']'}`,
        i,
      )
    }
  }
}

/**
 * `[start0, end0, start1, end1, …]` (end exclusive) of the records of a JSON
 * array of objects. Throws `ListingScanError` naming the problem and its
 * byte, or the index of an element that is not an object.
 */
export function scanListing(body: Uint8Array, windowBytes = SCAN_WINDOW_BYTES): Uint32Array {
  if (body.length > 0xffffffff) throw new ListingScanError('listing too large to index')
  // The bytes are read through a window of `windowBytes` that moves along the body, so every index
  // stays a small integer (V8's Smi, below 2^30; past it the scan of a 1 GB body crawled). `i` is
  // relative to the window, which starts at `base`; a record is never begun in its second half.
  let base = 0
  let b = windowOf(body, 0, windowBytes)
  // Whitespace that runs to the window's end (never in practice, at 512 MiB): widen it to the rest.
  const ws = (from: number): number => {
    let j = skipWs(b, from)
    if (j === b.length && base + b.length < body.length) {
      b = body.subarray(base)
      j = skipWs(b, j)
    }
    return j
  }
  let i = ws(0)
  if (b[i] !== OPEN_BRACKET) fail('not a JSON array', base + i)
  i = ws(i + 1)
  let offsets = new Uint32Array(1024)
  let count = 0
  if (b[i] === CLOSE_BRACKET) i++
  else {
    for (;;) {
      if (i > windowBytes / 2) {
        base += i
        b = windowOf(body, base, windowBytes)
        i = 0
      }
      let next: number
      try {
        next = recordEnd(b, i, count)
      } catch (err) {
        // The window ended inside a record: widen it to the rest of the body.
        if (!(err instanceof ListingScanError) || base + b.length >= body.length) throw at(err, base)
        b = body.subarray(base)
        try {
          next = recordEnd(b, i, count)
        } catch (wide) {
          throw at(wide, base)
        }
      }
      if (2 * count + 2 > offsets.length) {
        const grown = new Uint32Array(offsets.length * 2)
        grown.set(offsets)
        offsets = grown
      }
      offsets[2 * count] = base + i
      offsets[2 * count + 1] = base + next
      count++
      i = ws(next)
      if (b[i] === COMMA) {
        i = ws(i + 1)
        continue
      }
      if (b[i] === CLOSE_BRACKET) {
        i++
        break
      }
      fail(b[i] === undefined ? 'unexpected end' : "expected ',' or ']'", base + i)
    }
  }
  i = ws(i)
  if (base + i !== body.length) fail('data after the array', base + i)
  return offsets.slice(0, 2 * count)
}

/** Bytes read at once by `scanListing`: indexes within stay below 2^30. */
const SCAN_WINDOW_BYTES = 512 * 1024 * 1024

function windowOf(body: Uint8Array, base: number, windowBytes: number): Uint8Array {
  return base === 0 && body.length <= windowBytes
    ? body
    : body.subarray(base, Math.min(body.length, base + windowBytes))
}

/** The end of the record (an object) at `i`; `count` names it when it is not an object. */
function recordEnd(b: Uint8Array, i: number, count: number): number {
  if (b[i] !== OPEN_BRACE) {
    if (b[i] === undefined) fail('unexpected end', i)
    throw new ListingScanError(`non-object element at index ${count}`)
  }
  return skipValue(b, i)
}

/** `err` with its byte position moved by `base` (it was found in a window starting there). */
function at(err: unknown, base: number): unknown {
  if (base === 0 || !(err instanceof ListingScanError)) return err
  return new ListingScanError(
    err.message.replace(/ at byte (\d+)$/, (_m, n: string) => ` at byte ${Number(n) + base}`),
  )
}

/** Picks the values of some members out of a record's bytes, for the index (no `JSON.parse` of the record). */
export class MemberPicker {
  readonly #names: readonly string[]
  readonly #bytes: readonly Uint8Array[]
  readonly #decoder = new TextDecoder()

  constructor(names: readonly string[]) {
    this.#names = names
    const encoder = new TextEncoder()
    this.#bytes = names.map((n) => encoder.encode(n))
  }

  /**
   * Fills `out` with the value range of each name in the object at `start`
   * (a record `scanListing` validated): `out[2k]`, `out[2k + 1]` are the start
   * and end of the value of name `k`, -1 when it is absent. The last
   * occurrence of a name wins and a name written with escapes is decoded, as
   * with `JSON.parse`.
   */
  pick(b: Uint8Array, start: number, out: Int32Array): void {
    out.fill(-1)
    let i = skipWs(b, start + 1)
    if (b[i] === CLOSE_BRACE) return
    for (;;) {
      const nameEnd = skipString(b, i)
      const k = this.#match(b, i + 1, nameEnd - 1)
      i = skipWs(b, skipWs(b, nameEnd) + 1)
      const valueStart = i
      // The usual values directly; skipValue (with its stack) only for nested ones.
      const c = b[i]
      if (c === QUOTE) i = skipString(b, i)
      else if (c === MINUS || isDigit(c)) i = skipNumber(b, i)
      else i = skipValue(b, i)
      if (k >= 0) {
        out[2 * k] = valueStart
        out[2 * k + 1] = i
      }
      i = skipWs(b, i)
      if (b[i] !== COMMA) return
      i = skipWs(b, i + 1)
    }
  }

  /** The index of the name between `s` and `e` (inside its quotes), or -1. */
  #match(b: Uint8Array, s: number, e: number): number {
    for (let j = s; j < e; j++) {
      if (b[j] === BACKSLASH) {
        const name = JSON.parse(this.#decoder.decode(b.subarray(s - 1, e + 1))) as string
        return this.#names.indexOf(name)
      }
    }
    next: for (let k = 0; k < this.#bytes.length; k++) {
      const want = this.#bytes[k] as Uint8Array
      if (want.length !== e - s) continue
      for (let j = 0; j < want.length; j++) if (b[s + j] !== want[j]) continue next
      return k
    }
    return -1
  }
}

/**
 * Whether the value at `[s, e)` is a string of printable ASCII with no escape,
 * whose bytes between the quotes are its characters.
 */
export function isPlainAsciiString(b: Uint8Array, s: number, e: number): boolean {
  if (b[s] !== QUOTE) return false
  for (let j = s + 1; j < e - 1; j++) {
    const c = b[j] as number
    if (c === BACKSLASH || c >= 0x80) return false
  }
  return true
}
