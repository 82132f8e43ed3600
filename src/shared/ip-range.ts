/**
 * IPv4/IPv6 addresses and CIDR subnets as inclusive numeric ranges. Used by the
 * gateway (the `ip=` lookup, `allowIPs`) and by the emulator (the mapping
 * overlap rule); it imports neither. Parsing is delegated to ipaddr.js, which
 * Fastify already depends on through proxy-addr.
 */
import ipaddr from 'ipaddr.js'

export interface IpRange {
  readonly version: 4 | 6
  readonly start: bigint
  readonly end: bigint
  /** Prefix length (32 or 128 for a single address). */
  readonly prefix: number
}

function toBigInt(bytes: number[]): bigint {
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  return n
}

/**
 * Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `v6/n`. IPv4-mapped IPv6
 * addresses are taken as IPv4. Host bits in a CIDR are ignored (`192.168.1.23/24`
 * is `192.168.1.0/24`, as Trisul's own docs write it). Returns null when invalid.
 */
export function parseIpRange(text: string): IpRange | null {
  if (typeof text !== 'string' || text.length === 0 || text.length > 64) return null
  const trimmed = text.trim()
  if (trimmed !== text) return null
  const slash = text.indexOf('/')
  const addrText = slash === -1 ? text : text.slice(0, slash)
  // Zone ids (`fe80::1%eth0`) name an interface, not an address.
  if (addrText.includes('%') || !ipaddr.isValid(addrText)) return null
  let addr: ipaddr.IPv4 | ipaddr.IPv6
  try {
    addr = ipaddr.parse(addrText)
  } catch {
    return null
  }
  // ipaddr.js accepts some legacy IPv4 forms (`1`, `0x1.2.3.4`, `010.1.1.1`); insist on dotted quads.
  // A leading zero would be read as octal (`010.0.0.1` is 8.0.0.1): refuse it.
  if (addr.kind() === 'ipv4' && !/^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/.test(addrText)) return null
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    addr = (addr as ipaddr.IPv6).toIPv4Address()
  }
  const version = addr.kind() === 'ipv4' ? 4 : 6
  const bits = version === 4 ? 32 : 128
  let prefix = bits
  if (slash !== -1) {
    const p = text.slice(slash + 1)
    if (!/^\d{1,3}$/.test(p)) return null
    prefix = Number(p)
    if (prefix > bits) return null
  }
  const value = toBigInt(addr.toByteArray())
  const hostBits = BigInt(bits - prefix)
  const mask = (1n << hostBits) - 1n
  const start = value & ~mask
  return { version, start, end: start | mask, prefix }
}

/** True when the two ranges share at least one address. */
export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  return a.version === b.version && a.start <= b.end && b.start <= a.end
}

/** True when `inner` lies entirely within `outer`. */
export function rangeContains(outer: IpRange, inner: IpRange): boolean {
  return outer.version === inner.version && outer.start <= inner.start && inner.end <= outer.end
}

/** The canonical text of a range: an address, or `network/prefix`. */
export function formatIpRange(r: IpRange): string {
  const bits = r.version === 4 ? 32 : 128
  const bytes: number[] = []
  let v = r.start
  for (let i = 0; i < bits / 8; i++) {
    bytes.unshift(Number(v & 0xffn))
    v >>= 8n
  }
  const addr = ipaddr.fromByteArray(bytes).toString()
  return r.prefix === bits ? addr : `${addr}/${r.prefix}`
}
