/**
 * Nothing secret echoed (SPEC 13), pure: an upstream message is relayed only
 * after every secret of the request has been replaced by `***`; a URL is logged
 * or echoed only with the values of secret-looking query parameters replaced;
 * an error message is cut so that a body stays within 4 KiB.
 */
import { CREDENTIAL_HEADERS, headerValues } from './credentials.js'

/** Query parameters whose values are never logged nor echoed. */
export const SECRET_QUERY_PARAMETERS: readonly string[] = ['api_token', 'token', 'key', 'password']

/** The most characters kept of an error message: with the rest of the body (well under 1 KiB), within SPEC 13's 4 KiB. */
export const MAX_ERROR_MESSAGE_CHARS = 2048

const MASK = '***'
// Shorter values would mask ordinary words of a message ("a", "id"): no Trisul token is that short.
const MIN_SECRET_LENGTH = 4

/** `text` with every occurrence of each secret (4 characters or more) replaced by `***`. */
export function scrubSecrets(text: string, secrets: Iterable<string>): string {
  let out = text
  // Longest first, so a secret that contains another is masked whole.
  const list = [...new Set(secrets)]
    .filter((s) => s.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length)
  for (const secret of list) if (out.includes(secret)) out = out.split(secret).join(MASK)
  return out
}

/** The secrets a request presented in its headers: Bearer tokens and gateway keys, Basic passwords. */
export function presentedSecrets(rawHeaders: readonly string[]): string[] {
  const out: string[] = []
  for (const value of headerValues(rawHeaders, CREDENTIAL_HEADERS).authorization ?? []) {
    const space = value.indexOf(' ')
    const scheme = (space === -1 ? value : value.slice(0, space)).toLowerCase()
    const param = space === -1 ? '' : value.slice(space + 1).trim()
    if (param === '') continue
    out.push(param)
    if (scheme === 'basic') {
      const decoded = Buffer.from(param, 'base64').toString('utf8')
      const colon = decoded.indexOf(':')
      if (colon !== -1) out.push(decoded.slice(colon + 1))
    }
  }
  return out
}

const SECRET_PARAMETER = new RegExp(`([?&](?:${SECRET_QUERY_PARAMETERS.join('|')})=)[^&#]*`, 'gi')

/** A request target with the values of {@link SECRET_QUERY_PARAMETERS} replaced by `***`. */
export function scrubUrl(url: string): string {
  if (!url.includes('?')) return url
  return url.replace(SECRET_PARAMETER, `$1${MASK}`)
}

/** The values of secret query parameters of `url` (as sent and decoded), for scrubbing messages that echo them. */
export function querySecrets(url: string): string[] {
  const q = url.indexOf('?')
  if (q === -1) return []
  const out: string[] = []
  const params = new URLSearchParams(url.slice(q + 1))
  for (const [name, value] of params) {
    if (SECRET_QUERY_PARAMETERS.includes(name.toLowerCase()) && value !== '') out.push(value)
  }
  return out
}

/** A message cut to {@link MAX_ERROR_MESSAGE_CHARS} characters, marked when cut. */
export function capMessage(message: string): string {
  return message.length <= MAX_ERROR_MESSAGE_CHARS
    ? message
    : `${message.slice(0, MAX_ERROR_MESSAGE_CHARS - 1)}…`
}
