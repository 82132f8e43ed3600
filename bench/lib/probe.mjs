/**
 * One request from the orchestrator before a row is measured, to check that
 * each side answers what the row claims to measure (a cached HIT with the
 * upstream's exact bytes, a 304, a compressed body that decompresses to the
 * same bytes, a write that succeeded). A load generator only counts
 * responses; without this a misconfigured side would produce a fast number.
 * undici's `request` is used because Trisul needs a body on GET.
 */
import { createHash } from 'node:crypto'
import { gunzipSync } from 'node:zlib'
import { request } from 'undici'

export async function probe(url, { method = 'GET', headers = {}, body } = {}) {
  const res = await request(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body,
  })
  const bytes = Buffer.from(await res.body.arrayBuffer())
  return { status: res.statusCode, headers: res.headers, bytes }
}

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

export class ProbeError extends Error {}

export function expect(condition, message) {
  if (!condition) throw new ProbeError(message)
}

/** The identity body of a response, gunzipped when it says gzip. */
export function decoded(res) {
  return res.headers['content-encoding'] === 'gzip' ? gunzipSync(res.bytes) : res.bytes
}

/** A 200 whose body parses as JSON of the given kind ('array' or 'object'). */
export function expectJson(res, kind, what) {
  expect(res.status === 200, `${what}: HTTP ${res.status} ${res.bytes.toString('utf8').slice(0, 200)}`)
  let value
  try {
    value = JSON.parse(res.bytes.toString('utf8'))
  } catch {
    throw new ProbeError(`${what}: the body is not JSON`)
  }
  const isKind =
    kind === 'array'
      ? Array.isArray(value)
      : value !== null && typeof value === 'object' && !Array.isArray(value) && value.status === undefined
  expect(isKind, `${what}: expected a JSON ${kind}, got ${res.bytes.toString('utf8').slice(0, 200)}`)
  return value
}
