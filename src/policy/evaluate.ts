/**
 * The policy engine: which consumer a credential belongs to, and whether that
 * consumer may perform an operation from an address. Pure (no Fastify, no
 * I/O); per-policy indexes are built once and kept in a WeakMap keyed by the
 * frozen policy object, so a reload simply brings a new index.
 */
import { timingSafeEqual } from 'node:crypto'
import type { JwtClaims } from '../credentials.js'
import type { ApiResourceName, PolicyOperation } from '../resources.js'
import { type IpRange, parseIpRange, rangeContains } from '../shared/ip-range.js'
import type { ConsumerPolicy, Policy } from './types.js'

/** How a request identified itself: a gateway key (its SHA-256 hex) or an upstream username. */
export type Identity = { kind: 'key'; keyHash: string } | { kind: 'username'; username: string }

export type Decision =
  | { allow: true }
  | {
      allow: false
      code: 'IPDR_GW_NO_CONSUMER' | 'IPDR_GW_ADDRESS_FORBIDDEN' | 'IPDR_GW_OPERATION_FORBIDDEN'
      message: string
    }

/** The consumer whose rules apply to requests that match no other consumer. */
export const DEFAULT_CONSUMER = 'default'

interface PolicyIndex {
  readonly byUsername: ReadonlyMap<string, ConsumerPolicy>
  /** Every consumer username, case- and compatibility-folded. */
  readonly folded: ReadonlySet<string>
  readonly keys: ReadonlyArray<{ readonly hash: Buffer; readonly consumer: ConsumerPolicy }>
  readonly fallback: ConsumerPolicy | null
  readonly ranges: ReadonlyMap<ConsumerPolicy, readonly IpRange[]>
}

const indexes = new WeakMap<Policy, PolicyIndex>()

function parseRanges(list: readonly string[]): IpRange[] {
  return list.map((text) => parseIpRange(text)).filter((r): r is IpRange => r !== null)
}

function indexOf(policy: Policy): PolicyIndex {
  let index = indexes.get(policy)
  if (index) return index
  const byUsername = new Map<string, ConsumerPolicy>()
  const keys: Array<{ hash: Buffer; consumer: ConsumerPolicy }> = []
  const ranges = new Map<ConsumerPolicy, IpRange[]>()
  const folded = new Set<string>()
  for (const c of policy.consumers) {
    for (const u of c.usernames) {
      if (!byUsername.has(u)) byUsername.set(u, c)
      folded.add(foldUsername(u))
    }
    for (const k of c.keys) keys.push({ hash: Buffer.from(k, 'hex'), consumer: c })
    if (c.allowIPs) ranges.set(c, parseRanges(c.allowIPs))
  }
  index = {
    byUsername,
    folded,
    keys,
    fallback: policy.consumers.find((c) => c.name === DEFAULT_CONSUMER) ?? null,
    ranges,
  }
  indexes.set(policy, index)
  return index
}

const KEY_HASH = /^[0-9a-f]{64}$/

/**
 * The consumer for an identity. A key hash matches the consumer listing it
 * (compared in constant time, every stored hash visited); an unknown gateway
 * key matches NOTHING, not the default consumer (a key is a claim to be a
 * specific consumer). A username matches the consumer listing it, else the
 * `default` consumer; else null.
 */
export function findConsumer(policy: Policy, identity: Identity): ConsumerPolicy | null {
  const index = indexOf(policy)
  if (identity.kind === 'key') {
    // Most policies have no gateway keys: skip the hex parsing on every Bearer request.
    if (index.keys.length === 0) return null
    if (!KEY_HASH.test(identity.keyHash)) return null
    const presented = Buffer.from(identity.keyHash, 'hex')
    let found: ConsumerPolicy | null = null
    for (const { hash, consumer } of index.keys) {
      if (timingSafeEqual(hash, presented) && found === null) found = consumer
    }
    return found
  }
  return index.byUsername.get(identity.username) ?? index.fallback
}

/**
 * The consumer a verified JWT belongs to (SPEC 16): the first, by name, whose `jwt` names the token's
 * issuer, its subject or client id, and only scopes the token carries; null when none does.
 */
export function findJwtConsumer(policy: Policy, claims: JwtClaims): ConsumerPolicy | null {
  for (const consumer of policy.consumers) {
    const rule = consumer.jwt
    if (rule === null || rule.issuer !== claims.issuer) continue
    const bySubject =
      rule.subjects !== null && claims.subject !== null && rule.subjects.includes(claims.subject)
    const byClient =
      rule.clientIds !== null && claims.clientId !== null && rule.clientIds.includes(claims.clientId)
    if (!bySubject && !byClient) continue
    if (rule.scopes.every((scope) => claims.scopes.has(scope))) return consumer
  }
  return null
}

/** A username with case and Unicode compatibility forms folded away ("ＣＲＭ", "Crm" → "crm"). */
export function foldUsername(username: string): string {
  return username.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC')
}

/**
 * True when `username` is no consumer's username but equals one once case and
 * Unicode compatibility are ignored (SPEC 13): such a request is refused, never
 * matched to the `default` consumer, so a look-alike cannot borrow its rules
 * or its budget, nor escape the named consumer's.
 */
export function isUsernameNearMiss(policy: Policy, username: string): boolean {
  const index = indexOf(policy)
  return !index.byUsername.has(username) && index.folded.has(foldUsername(username))
}

/**
 * Whether `consumer` may perform `operation` on `resource` from `clientIp`.
 * Order: no consumer, then the address (a refused address learns nothing about
 * operations), then the operation.
 */
export function evaluate(
  policy: Policy,
  req: {
    consumer: ConsumerPolicy | null
    resource: ApiResourceName
    operation: PolicyOperation
    clientIp: string
  },
): Decision {
  const { consumer } = req
  if (consumer === null) {
    return {
      allow: false,
      code: 'IPDR_GW_NO_CONSUMER',
      message: 'No consumer of the policy matches these credentials',
    }
  }
  if (consumer.allowIPs !== null) {
    // A consumer object from another policy version is parsed on the spot.
    const ranges = indexOf(policy).ranges.get(consumer) ?? parseRanges(consumer.allowIPs)
    const client = parseIpRange(req.clientIp)
    if (client === null || !ranges.some((r) => rangeContains(r, client))) {
      return {
        allow: false,
        code: 'IPDR_GW_ADDRESS_FORBIDDEN',
        message: 'Requests from this address are not allowed for this consumer',
      }
    }
  }
  const allowed = consumer.operations[req.resource] ?? []
  if (!allowed.includes(req.operation)) {
    return {
      allow: false,
      code: 'IPDR_GW_OPERATION_FORBIDDEN',
      message: `The policy does not allow ${req.operation} on ${req.resource}`,
    }
  }
  return { allow: true }
}
