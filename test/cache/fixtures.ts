import type { CustomerRecord } from '../../src/emulator/index.js'
/**
 * Deterministic listing data for the cache tests and the measurement script
 * (not a test file: no `.test.ts`). Shaped like the upstream's records
 * (shared/SPEC.md section 2).
 */

/** A small seeded PRNG (mulberry32) so every run builds the same bytes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const FIRST = ['Aarav', 'Vivaan', 'Aditya', 'Ananya', 'Diya', 'Ishaan', 'Kavya', 'Rohan', 'Saanvi', 'Meera']
const LAST = ['Sharma', 'Iyer', 'Nair', 'Reddy', 'Gupta', 'Menon', 'Patel', 'Das', 'Rao', 'Kulkarni']
const STREETS = ['MG Road', 'Brigade Road', 'Anna Salai', 'Park Street', 'Linking Road', 'FC Road']
const CITIES = ['Bengaluru, Karnataka', 'Chennai, Tamil Nadu', 'Kolkata, West Bengal', 'Mumbai, Maharashtra']

/** A customer as Trisul returns it (the emulator's record type). */
export type Customer = CustomerRecord

export function makeCustomers(n: number, seed = 1): Customer[] {
  const rnd = prng(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T
  const digits = (k: number): string => {
    let s = ''
    for (let i = 0; i < k; i++) s += Math.floor(rnd() * 10)
    return s
  }
  const out: Customer[] = []
  for (let i = 0; i < n; i++) {
    const first = pick(FIRST)
    const last = pick(LAST)
    out.push({
      id: i + 1,
      Name: `${first} ${last}`,
      Address: `${1 + Math.floor(rnd() * 300)}, ${pick(STREETS)}, ${pick(CITIES)} ${digits(6)}`,
      Email: `${first.toLowerCase()}.${last.toLowerCase()}${i}@example.com`,
      PhoneNumber: `+91 9${digits(4)} ${digits(5)}`,
      AltPhoneNumber: `+91 8${digits(4)} ${digits(5)}`,
      UserID: `U${(i + 1).toString(36).toUpperCase().padStart(6, '0')}`,
    })
  }
  return out
}

export interface Mapping {
  id: number
  ipdr_customer_id: number
  ipsubnet: string
  starttime: number
  endtime: number | null
  terminalid: string
}

/** Mappings: IPv4 addresses and /24 subnets, some IPv6, some closed time spans. */
export function makeMappings(n: number, seed = 2): Mapping[] {
  const rnd = prng(seed)
  const out: Mapping[] = []
  for (let i = 0; i < n; i++) {
    const kind = i % 10
    const ipsubnet =
      kind === 9
        ? `2001:db8:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}::/64`
        : kind === 8
          ? `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.0/24`
          : `172.${16 + ((i >> 16) & 0x0f)}.${(i >> 8) & 0xff}.${i & 0xff}`
    const starttime = 1_600_000_000 + Math.floor(rnd() * 1_000_000)
    out.push({
      id: i + 1,
      ipdr_customer_id: 1 + Math.floor(i / 2),
      ipsubnet,
      starttime,
      endtime: i % 3 === 0 ? starttime + 86_400 : null,
      terminalid: `T${i}`,
    })
  }
  return out
}

export function toRaw(records: readonly object[]): Buffer {
  return Buffer.from(JSON.stringify(records))
}
