/**
 * The plan of a CRM sync (shared/SPEC.md 10), pure: what Trisul holds, what
 * the CRM wants, the rules → the writes that make the first equal to the
 * second, and what was left alone. No I/O and no clock (`now` comes in the rules).
 *
 * Records are added one at a time (`SyncPlanner.add`), so a large input never
 * has to be held as objects; `planSync` is the same over an array.
 *
 * - A customer absent from Trisul is created; one present is updated with only
 *   its changed fields (PATCH); an equal one is unchanged. A field the input
 *   leaves out (JSON) is not compared; CSV rows carry every field.
 * - A customer in Trisul and not in the input is deleted only with `delete`;
 *   otherwise it is counted and listed as absent. Under `expireMappings` its
 *   mappings are retired as below, and it is kept (absent) when they hold history. A customer whose input record
 *   is invalid is never absent (it is in the CRM, just not usable).
 * - A UserID twice in the input makes every copy invalid: which one is right
 *   cannot be known, so neither is sent.
 * - Mappings (CSV only, `mappings` set): per customer, matched by `ipsubnet`.
 *   A wanted one that is missing is created, one that differs in times or
 *   terminal is updated; a current one the input no longer lists is ended
 *   (`endtime` = now) when still open, or deleted when it has not started yet.
 *   Ended mappings are history and are left as they are.
 * - With `keepWrites: false` (a plan only) the writes are counted, not kept.
 * - The writes come in phases: customers created and updated, mappings
 *   updated, ended and deleted (freeing addresses), mappings created,
 *   customers deleted.
 */

import { runSteps, type Steps } from '../cache/steps.js'

/**
 * A Map split in {@link SHARDS} by a hash of the key. A Map grows by rehashing every entry at once:
 * at 500,000 UserIDs one rehash held the loop ~80 ms; a shard rehashes 1/64 of them.
 */
class ShardedMap<V> {
  readonly #shards: Map<string, V>[] = Array.from({ length: SHARDS }, () => new Map<string, V>())

  #shard(key: string): Map<string, V> {
    let h = 0
    for (let i = 0; i < key.length; i++) h = (h * 31 + key.charCodeAt(i)) | 0
    return this.#shards[(h >>> 0) % SHARDS] as Map<string, V>
  }

  has(key: string): boolean {
    return this.#shard(key).has(key)
  }

  get(key: string): V | undefined {
    return this.#shard(key).get(key)
  }

  set(key: string, value: V): void {
    this.#shard(key).set(key, value)
  }
}

const SHARDS = 64

/** Customers handled between two yields of {@link SyncPlanner.finishSteps}. */
const STEP = 5000

export interface MappingWanted {
  readonly ipsubnet: string
  readonly starttime: number
  /** null: an open end. */
  readonly endtime: number | null
  readonly terminalid: string
}

/** One customer as the CRM wants it, already validated. */
export interface CustomerWanted {
  readonly kind: 'customer'
  readonly UserID: string
  /** The fields to hold, UserID excluded; strings. */
  readonly fields: Readonly<Record<string, string>>
  /** The customer's mappings (CSV input); undefined: mappings are not reconciled. */
  readonly mappings?: readonly MappingWanted[]
  /** Where it came from, for reports: `record 3`, `line 5`. */
  readonly source: string
}

/** An input record that failed validation. */
export interface InvalidInput {
  readonly kind: 'invalid'
  readonly UserID: string | null
  readonly source: string
  readonly message: string
}

export type SyncInput = CustomerWanted | InvalidInput

/** What Trisul holds, as fetched for the job. */
export interface CurrentState {
  customer(userId: string): Readonly<Record<string, unknown>> | undefined
  /** Every current UserID, in listing order. */
  userIds(): Iterable<string>
  /** The mappings of the customer with this `id`. */
  mappingsOf(customerId: unknown): readonly Readonly<Record<string, unknown>>[]
}

export interface SyncRules {
  /** Delete customers absent from the input. */
  readonly delete: boolean
  /**
   * `mappings.delete: expire` (SPEC 17): with `delete`, an absent customer's open mappings are ended
   * rather than deleted with it, and a customer whose mappings hold history is kept (listed in
   * `absent`). Needs the mappings in `CurrentState`. Default false.
   */
  readonly expireMappings?: boolean
  /** Unix seconds: the `endtime` given to mappings the input no longer lists. */
  readonly now: number
  /**
   * Fields the consumer's `redact` hides (SPEC 13): never compared with Trisul's values, so a plan
   * cannot confirm a hidden value; one the input carries is written whatever Trisul holds. Default none.
   */
  readonly blind?: readonly string[]
  /**
   * Keep the writes (`mode=apply`). false (`mode=plan`): only the counts are kept per customer, so
   * a plan of a million records holds a few bytes for each instead of its writes. Default true.
   */
  readonly keepWrites?: boolean
}

export type SyncResource = 'customers' | 'mappings'

/** One upstream write of the plan. `fields` is the body to send (mappings carry their `ipsubnet` selector). */
export interface SyncWrite {
  readonly resource: SyncResource
  readonly operation: 'create' | 'update' | 'delete'
  readonly UserID: string
  readonly fields: Readonly<Record<string, unknown>>
  /** What Trisul held before, for the audit; null for a create. */
  readonly before: unknown
  /** `end` for a mapping update that closes it. */
  readonly why?: 'end'
}

export interface PlanCounts {
  readonly create: number
  readonly update: number
  readonly delete: number
  readonly unchanged: number
  readonly invalid: number
}

export interface MappingCounts {
  readonly create: number
  readonly update: number
  readonly end: number
  readonly delete: number
  readonly unchanged: number
}

export interface SyncPlan {
  /** Customers (SPEC 10's `plan`). */
  readonly counts: PlanCounts
  /** Mappings, when the input carried them. */
  readonly mappings: MappingCounts | null
  /** Every write, in the order to send them. */
  readonly writes: readonly SyncWrite[]
  readonly invalid: readonly InvalidInput[]
  /** Customers in Trisul and not in the input, not deleted (`delete` false). */
  readonly absent: readonly string[]
}

interface Planned {
  /** Where the record came from, for a duplicate's report. */
  readonly source: string
  /** The customer's own write, or `unchanged`. */
  readonly customer: 'create' | 'update' | 'unchanged'
  /** Its writes when they are kept (`keepWrites`), else empty. */
  readonly writes: SyncWrite[]
  /** Its mapping writes by kind (counted whether or not the writes are kept). */
  readonly mappings: { create: number; update: number; end: number; delete: number; unchanged: number }
}

const CUSTOMER_FIELDS = ['Name', 'Address', 'Email', 'PhoneNumber', 'AltPhoneNumber'] as const

function asText(v: unknown): string {
  return v === null || v === undefined ? '' : String(v)
}

function asTime(v: unknown): number | null {
  if (v === null || v === undefined || v === '') return null
  const n = Number(v)
  return Number.isFinite(n) ? n : null
}

export class SyncPlanner {
  readonly #current: CurrentState
  readonly #rules: SyncRules
  /** Per UserID: the customer's writes (customers and mappings), or null once invalid. */
  readonly #byUser = new ShardedMap<Planned | null>()
  /** Every UserID of the input, once each, in input order. */
  readonly #userIds: string[] = []
  readonly #invalid: InvalidInput[] = []
  #mappingsSeen = false

  constructor(current: CurrentState, rules: SyncRules) {
    this.#current = current
    this.#rules = rules
  }

  add(input: SyncInput): void {
    if (input.kind === 'invalid') {
      this.#invalid.push(input)
      // Known to the CRM, so never absent; a valid copy elsewhere is a duplicate all the same.
      if (input.UserID !== null) this.#spoil(input.UserID, null)
      return
    }
    if (this.#byUser.has(input.UserID)) {
      this.#spoil(input.UserID, input)
      return
    }
    this.#userIds.push(input.UserID)
    this.#byUser.set(input.UserID, this.#diff(input))
  }

  finish(): SyncPlan {
    return runSteps(this.finishSteps())
  }

  /** Every UserID the input named (valid or not, duplicates once). */
  inputUserIds(): readonly string[] {
    return this.#userIds
  }

  /** {@link finish} as steps (a yield every few thousand customers), for a caller that gives the loop turns. */
  *finishSteps(): Steps<SyncPlan> {
    const phases: SyncWrite[][] = [[], [], [], []]
    let create = 0
    let update = 0
    let unchanged = 0
    const m = { create: 0, update: 0, end: 0, delete: 0, unchanged: 0 }
    let n = 0
    // In input order: the writes of a phase go in the order the CRM listed its customers.
    for (const userId of this.#userIds) {
      if (++n % STEP === 0) yield
      const entry = this.#byUser.get(userId)
      if (entry === null || entry === undefined) continue
      if (entry.customer === 'create') create += 1
      else if (entry.customer === 'update') update += 1
      else unchanged += 1
      for (const k of ['create', 'update', 'end', 'delete', 'unchanged'] as const) m[k] += entry.mappings[k]
      for (const w of entry.writes) {
        if (w.resource === 'customers') phases[0]?.push(w)
        else if (w.operation === 'create') phases[2]?.push(w)
        else phases[1]?.push(w)
      }
    }
    const absent: string[] = []
    let deletes = 0
    for (const userId of this.#current.userIds()) {
      if (++n % STEP === 0) yield
      if (this.#byUser.has(userId)) continue
      if (!this.#rules.delete) {
        absent.push(userId)
        continue
      }
      if (this.#rules.expireMappings === true) {
        // `mappings.delete: expire` (SPEC 17): the customer's mappings are ended, not dropped with it,
        // and a customer whose mappings hold history is kept (Trisul would delete them with it).
        this.#mappingsSeen = true
        const customer = this.#current.customer(userId)
        const have = customer === undefined ? [] : this.#current.mappingsOf(customer.id)
        for (const w of retiredMappings(userId, have, this.#rules.now)) {
          if (w.operation === 'delete') m.delete += 1
          else m.end += 1
          if (this.#rules.keepWrites !== false) phases[1]?.push(w)
        }
        if (have.some((r) => hasHistory(r, this.#rules.now))) {
          absent.push(userId)
          continue
        }
      }
      deletes += 1
      if (this.#rules.keepWrites === false) continue
      phases[3]?.push({
        resource: 'customers',
        operation: 'delete',
        UserID: userId,
        fields: {},
        before: this.#current.customer(userId) ?? null,
      })
    }
    return {
      counts: {
        create,
        update,
        delete: this.#rules.delete ? deletes : absent.length,
        unchanged,
        invalid: this.#invalid.length,
      },
      mappings: this.#mappingsSeen ? m : null,
      writes: phases.flat(),
      invalid: this.#invalid,
      absent,
    }
  }

  /** Every copy of a duplicated UserID becomes invalid. */
  #spoil(userId: string, duplicate: CustomerWanted | null): void {
    const prior = this.#byUser.get(userId)
    if (prior) {
      this.#invalid.push({
        kind: 'invalid',
        UserID: userId,
        source: prior.source,
        message: `UserID ${userId} appears more than once in the input`,
      })
    }
    if (duplicate) {
      this.#invalid.push({
        kind: 'invalid',
        UserID: userId,
        source: duplicate.source,
        message: `UserID ${userId} appears more than once in the input`,
      })
    }
    if (!this.#byUser.has(userId)) this.#userIds.push(userId)
    this.#byUser.set(userId, null)
  }

  #diff(wanted: CustomerWanted): Planned {
    const writes: SyncWrite[] = []
    const current = this.#current.customer(wanted.UserID)
    if (current === undefined) {
      writes.push({
        resource: 'customers',
        operation: 'create',
        UserID: wanted.UserID,
        fields: { UserID: wanted.UserID, ...wanted.fields },
        before: null,
      })
    } else {
      const changed: Record<string, string> = {}
      const blind = this.#rules.blind ?? []
      for (const f of CUSTOMER_FIELDS) {
        const want = wanted.fields[f]
        if (want !== undefined && (blind.includes(f) || want !== asText(current[f]))) changed[f] = want
      }
      if (Object.keys(changed).length > 0) {
        writes.push({
          resource: 'customers',
          operation: 'update',
          UserID: wanted.UserID,
          fields: changed,
          before: current,
        })
      }
    }
    let unchangedMappings = 0
    if (wanted.mappings !== undefined) {
      this.#mappingsSeen = true
      const have = current === undefined ? [] : this.#current.mappingsOf(current.id)
      const bySubnet = new Map(have.map((r) => [asText(r.ipsubnet), r]))
      for (const want of wanted.mappings) {
        const cur = bySubnet.get(want.ipsubnet)
        bySubnet.delete(want.ipsubnet)
        if (cur === undefined) {
          writes.push({
            resource: 'mappings',
            operation: 'create',
            UserID: wanted.UserID,
            fields: mappingBody(wanted.UserID, want),
            before: null,
          })
          continue
        }
        const changed: Record<string, unknown> = {}
        const blind = this.#rules.blind ?? []
        if (blind.includes('starttime') || asTime(cur.starttime) !== want.starttime)
          changed.starttime = String(want.starttime)
        if (blind.includes('endtime') || asTime(cur.endtime) !== want.endtime)
          changed.endtime = want.endtime === null ? null : String(want.endtime)
        if (blind.includes('terminalid') || asText(cur.terminalid) !== want.terminalid)
          changed.terminalid = want.terminalid
        if (Object.keys(changed).length === 0) unchangedMappings += 1
        else
          writes.push({
            resource: 'mappings',
            operation: 'update',
            UserID: wanted.UserID,
            fields: { ipsubnet: want.ipsubnet, ...changed },
            before: cur,
          })
      }
      writes.push(...retiredMappings(wanted.UserID, bySubnet.values(), this.#rules.now))
    }
    const mappings = { create: 0, update: 0, end: 0, delete: 0, unchanged: unchangedMappings }
    for (const w of writes) {
      if (w.resource !== 'mappings') continue
      if (w.operation === 'create') mappings.create += 1
      else if (w.operation === 'delete') mappings.delete += 1
      else if (w.why === 'end') mappings.end += 1
      else mappings.update += 1
    }
    const own = writes.find((w) => w.resource === 'customers')
    const customer = own === undefined ? 'unchanged' : own.operation === 'create' ? 'create' : 'update'
    return {
      source: wanted.source,
      customer,
      writes: this.#rules.keepWrites === false ? [] : writes,
      mappings,
    }
  }
}

/**
 * The writes that retire mappings a CRM no longer lists: an open one is ended (`endtime` = now), one
 * not yet started is deleted (it answered nothing), an ended one is history and left alone.
 */
function retiredMappings(
  userId: string,
  mappings: Iterable<Readonly<Record<string, unknown>>>,
  now: number,
): SyncWrite[] {
  const writes: SyncWrite[] = []
  for (const cur of mappings) {
    const ipsubnet = asText(cur.ipsubnet)
    const start = asTime(cur.starttime) ?? 0
    const end = asTime(cur.endtime)
    if (end !== null && end <= now) continue // history
    if (start >= now) {
      writes.push({
        resource: 'mappings',
        operation: 'delete',
        UserID: userId,
        fields: { ipsubnet },
        before: cur,
      })
    } else {
      writes.push({
        resource: 'mappings',
        operation: 'update',
        UserID: userId,
        fields: { ipsubnet, endtime: String(now) },
        before: cur,
        why: 'end',
      })
    }
  }
  return writes
}

/** Whether a mapping ever answered for an address: deleting its customer would drop that history. */
function hasHistory(mapping: Readonly<Record<string, unknown>>, now: number): boolean {
  return (asTime(mapping.starttime) ?? 0) < now
}

function mappingBody(userId: string, m: MappingWanted): Record<string, unknown> {
  return {
    UserID: userId,
    ipsubnet: m.ipsubnet,
    starttime: String(m.starttime),
    ...(m.endtime === null ? {} : { endtime: String(m.endtime) }),
    terminalid: m.terminalid,
  }
}

/** The plan of `desired` against `current`. */
export function planSync(current: CurrentState, desired: Iterable<SyncInput>, rules: SyncRules): SyncPlan {
  const planner = new SyncPlanner(current, rules)
  for (const input of desired) planner.add(input)
  return planner.finish()
}
