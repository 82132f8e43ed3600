/**
 * The listings every benchmark serves: N deterministic customers from the
 * emulator's seed (realistic Indian names, addresses, phones; customer `i`
 * depends on `i` alone), serialized once. The upstream, the bare Fastify
 * baseline and the in-process measurements all build the same bytes from the
 * same N, so "the same bytes" holds across processes without shipping them.
 */
import { seedCustomer, seedUserId } from '../../dist/emulator/seed.js'

/** Fake credentials of the benchmark upstream: obviously not a secret. */
export const BENCH_TOKEN = 'bench-token-0000'
export const BENCH_USER = 'bench'
export const BENCH_CONTEXT = 'default'

/** Customer `i` (from 1), fields in the order the upstream documents them (shared/SPEC.md 2). */
export function customerRecord(i) {
  const c = seedCustomer(i)
  return {
    id: i,
    Name: c.Name,
    Address: c.Address,
    Email: c.Email,
    PhoneNumber: c.PhoneNumber,
    AltPhoneNumber: c.AltPhoneNumber,
    UserID: c.UserID,
  }
}

/** The N customers. */
export function customers(n) {
  const out = new Array(n)
  for (let i = 1; i <= n; i++) out[i - 1] = customerRecord(i)
  return out
}

export function listingBytes(n) {
  return Buffer.from(JSON.stringify(customers(n)), 'utf8')
}

/** What the upstream answers to a create or update: one customer, pre-serialized. */
export function recordBytes() {
  return Buffer.from(JSON.stringify(customers(1)[0]), 'utf8')
}

export { seedUserId }

/** The body of a create through the gateway (valid under the default validation rules). */
export const CREATE_FIELDS = Object.freeze({
  UserID: 'Z99z99',
  Name: 'Bench Customer',
  Address: '12, MG Road, Bengaluru',
  Email: 'bench.customer@example.com',
  PhoneNumber: '9876543210',
})

/** The body of an update through the gateway. */
export const UPDATE_FIELDS = Object.freeze({ Name: 'Bench Renamed' })

/** The same fields with Trisul's body credentials (v2), for requests sent straight to an upstream. */
export function withBodyCredentials(fields = {}, username = BENCH_USER) {
  return { ...fields, api_token: BENCH_TOKEN, username, contextname: BENCH_CONTEXT }
}

/** Headers of credential form 2 (shared/SPEC.md 3.1): Bearer token + X-Trisul-Username. */
export function gatewayHeaders(username = BENCH_USER) {
  return { authorization: `Bearer ${BENCH_TOKEN}`, 'x-trisul-username': username }
}
