/**
 * Checks the operator's regular expressions (`validation.userIdPattern`,
 * `validation.phonePattern`) before they reach the request validator. They run
 * on every request against client input, so a pattern must compile (with the
 * `u` flag, as ajv compiles `pattern`), be anchored (an unanchored pattern
 * accepts anything that merely contains a valid run), and avoid nested
 * quantifiers such as `(a+)+`, the shape behind catastrophic backtracking
 * (the star-height test of safe-regex). Pure.
 */

/** Returns the problems of one pattern (empty when fine). */
export function checkPattern(source: string): string[] {
  try {
    new RegExp(source, 'u')
  } catch (err) {
    return [`does not compile: ${(err as Error).message}`]
  }
  const problems: string[] = []
  if (!source.startsWith('^') || !endsWithAnchor(source)) {
    problems.push('must be anchored: start with ^ and end with $')
  } else if (hasTopLevelAlternation(source)) {
    problems.push('a top-level | escapes the anchors: wrap the alternatives, as in ^(?:a|b)$')
  }
  if (hasNestedQuantifier(source)) {
    problems.push('nested quantifiers (a repeated group that repeats inside) can backtrack catastrophically')
  }
  return problems
}

function endsWithAnchor(source: string): boolean {
  if (!source.endsWith('$')) return false
  // `\$` is a literal dollar: count the backslashes before it.
  let backslashes = 0
  for (let i = source.length - 2; i >= 0 && source[i] === '\\'; i--) backslashes++
  return backslashes % 2 === 0
}

/** Index just past a character class that starts at `i` (`[`). */
function skipClass(source: string, i: number): number {
  let j = i + 1
  while (j < source.length && source[j] !== ']') j += source[j] === '\\' ? 2 : 1
  return j + 1
}

function hasTopLevelAlternation(source: string): boolean {
  let depth = 0
  for (let i = 0; i < source.length; ) {
    const c = source[i]
    if (c === '\\') i += 2
    else if (c === '[') i = skipClass(source, i)
    else {
      if (c === '(') depth++
      else if (c === ')') depth--
      else if (c === '|' && depth === 0) return true
      i++
    }
  }
  return false
}

/**
 * Reads the quantifier at `i`, if any: its length and whether it repeats
 * (`*`, `+`, `{n,}`, `{n,m}` with m > 1; `?` and `{0,1}` do not).
 */
function quantifierAt(source: string, i: number): { length: number; repeats: boolean } | null {
  const c = source[i]
  let length: number
  let repeats: boolean
  if (c === '*' || c === '+') {
    length = 1
    repeats = true
  } else if (c === '?') {
    length = 1
    repeats = false
  } else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i))
    if (!m) return null
    length = m[0].length
    const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3])
    repeats = max > 1
  } else {
    return null
  }
  // A lazy or possessive-looking suffix belongs to the quantifier.
  if (source[i + length] === '?') length++
  return { length, repeats }
}

function hasNestedQuantifier(source: string): boolean {
  // One frame per open group: does anything inside it repeat?
  const frames: boolean[] = [false]
  let i = 0
  while (i < source.length) {
    const c = source[i]
    let groupRepeats = false
    if (c === '(') {
      frames.push(false)
      i++
      continue
    }
    if (c === ')') {
      groupRepeats = frames.pop() ?? false
      i++
    } else if (c === '\\') i += 2
    else if (c === '[') i = skipClass(source, i)
    else i++
    const q = quantifierAt(source, i)
    if (q) {
      if (q.repeats && groupRepeats) return true
      i += q.length
    }
    if (groupRepeats || q?.repeats) frames[frames.length - 1] = true
  }
  return false
}
