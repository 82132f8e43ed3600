/**
 * Content negotiation and conditional-request helpers for cached listings:
 * pure functions over header values, no Fastify imports.
 */

export type ContentEncoding = 'br' | 'gzip' | 'identity'

/** Compressed codings the gateway can serve, in order of preference on a tie. */
const CODINGS = ['br', 'gzip'] as const

// RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/

/**
 * Picks the response coding for an `Accept-Encoding` value (RFC 9110 12.5.3).
 *
 * - absent or empty: `identity` (a client that said nothing may not decode);
 * - `q=0` forbids a coding; `*` stands for every coding not listed;
 *   `x-gzip` is `gzip`; the first entry for a coding wins; an entry with a
 *   malformed q-value is ignored;
 * - the acceptable compressed coding with the highest q wins, `br` on a tie;
 * - `identity` wins only when it is listed explicitly with a higher q than
 *   every compressed coding, or when no compressed coding is acceptable (also
 *   when the client forbade identity too: sending it then beats a 406).
 */
export function negotiateEncoding(acceptEncoding: string | undefined): ContentEncoding {
  if (acceptEncoding === undefined || acceptEncoding.length === 0) return 'identity'
  const listed = new Map<string, number>()
  for (const item of acceptEncoding.split(',')) {
    const [codingText, ...params] = item.split(';')
    let coding = (codingText ?? '').trim().toLowerCase()
    if (coding.length === 0) continue
    if (coding === 'x-gzip') coding = 'gzip'
    let q = 1
    let valid = true
    for (const param of params) {
      const eq = param.indexOf('=')
      const name = (eq === -1 ? param : param.slice(0, eq)).trim().toLowerCase()
      if (name !== 'q') continue
      const value = eq === -1 ? '' : param.slice(eq + 1).trim()
      if (!QVALUE.test(value)) valid = false
      else q = Number(value)
    }
    if (valid && !listed.has(coding)) listed.set(coding, q)
  }
  const wildcard = listed.get('*')
  let best: ContentEncoding = 'identity'
  let bestQ = 0
  for (const coding of CODINGS) {
    const q = listed.get(coding) ?? wildcard ?? 0
    if (q > bestQ) {
      best = coding
      bestQ = q
    }
  }
  const identityQ = listed.get('identity')
  if (best !== 'identity' && identityQ !== undefined && identityQ > bestQ) return 'identity'
  return best
}

/**
 * True when an `If-None-Match` value matches `etag`, so a `GET` may answer
 * `304` (RFC 9110 13.1.2). `*` matches any current representation; otherwise
 * the value is a comma-separated list of entity tags compared with the weak
 * comparison (`W/"x"` matches `"x"`). Commas inside a quoted tag are part of
 * the tag. An unquoted member (not valid, but sent by some clients) is taken
 * as if it were quoted; anything else malformed matches nothing.
 */
export function ifNoneMatchMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  const target = opaqueTag(etag)
  const n = header.length
  let i = 0
  while (i < n) {
    const c = header.charCodeAt(i)
    // skip OWS and list separators
    if (c === 0x20 || c === 0x09 || c === 0x2c) {
      i++
      continue
    }
    let start = i
    if (header.startsWith('W/', i)) start = i + 2
    if (header.charCodeAt(start) === 0x22) {
      const close = header.indexOf('"', start + 1)
      if (close === -1) return false
      if (header.slice(start, close + 1) === target) return true
      i = close + 1
      continue
    }
    let end = header.indexOf(',', start)
    if (end === -1) end = n
    const bare = header.slice(start, end).trim()
    if (bare === '*' && start === i) return true
    if (bare.length > 0 && `"${bare}"` === target) return true
    i = end
  }
  return false
}

/** The quoted opaque part of a tag, without a `W/` prefix. */
function opaqueTag(etag: string): string {
  return etag.startsWith('W/') ? etag.slice(2) : etag
}
