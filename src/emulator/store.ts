/**
 * The emulator's data: customers and IP mappings per context in SQLite
 * (better-sqlite3, synchronous). Every write runs in an IMMEDIATE
 * transaction, so its checks and its change see one state even when a second
 * process writes the same file. Uniqueness (a UserID per context, a subnet per
 * customer) is left to UNIQUE constraints, whose violations become the same
 * envelopes a check would give.
 */
import type Database from 'better-sqlite3'
import { type IpRange, parseIpRange } from '../shared/ip-range.js'
import { ENVELOPES } from './envelopes.js'
import {
  type CustomerFields,
  checkSpan,
  type MappingChanges,
  type MappingInput,
  type MappingSelector,
} from './request-body.js'
import { openDatabase } from './schema.js'
import { seedCustomer, seedUserId } from './seed.js'

/** Start of every seeded mapping: 01-01-2024 00:00:00 UTC. */
const SEED_MAPPING_START = 1_704_067_200

/** A customer as the API returns it. */
export interface CustomerRecord {
  id: number
  Name: string
  Address: string
  Email: string
  PhoneNumber: string
  AltPhoneNumber: string
  UserID: string
}

/** A mapping as the API returns it. */
export interface MappingRecord {
  id: number
  ipdr_customer_id: number
  ipsubnet: string
  starttime: number
  endtime: number | null
  terminalid: string
}

const CUSTOMER_COLUMNS = `id, name AS Name, address AS Address, email AS Email, phone_number AS PhoneNumber,
  alt_phone_number AS AltPhoneNumber, user_id AS UserID`
const MAPPING_COLUMNS = 'id, customer_id AS ipdr_customer_id, ipsubnet, starttime, endtime, terminalid'

/** Fixed-width hex: 32 digits hold an IPv6 address and sort like the number. */
export function rangeKey(n: bigint): string {
  return n.toString(16).padStart(32, '0')
}

/**
 * The network addresses of every CIDR block that contains `range` (prefix 0
 * up to its own). Two CIDR blocks overlap only when one contains the other,
 * so "blocks containing mine" plus "blocks starting inside mine" is every
 * overlap, each found through the range index.
 */
export function enclosingStarts(range: IpRange): string[] {
  const bits = range.version === 4 ? 32 : 128
  const starts: string[] = []
  for (let p = 0; p <= range.prefix; p++) {
    const mask = (1n << BigInt(bits - p)) - 1n
    starts.push(rangeKey(range.start & ~mask))
  }
  return starts
}

function isConstraint(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code
}

/** An open time span ends at infinity; this stands for it in comparisons. */
const OPEN_END = Number.MAX_SAFE_INTEGER

interface CustomerRow extends CustomerRecord {}
interface MappingRow extends MappingRecord {
  ip_version: number
  range_start: string
  prefix: number
}

/** Seeded rows per INSERT statement (7 parameters each, far below SQLite's 32,766). */
const SEED_BATCH_ROWS = 200
const SEED_COLUMNS = 7

function seedInsert(rows: number): string {
  return `INSERT OR IGNORE INTO customers (context, user_id, name, address, email, phone_number, alt_phone_number)
    VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`
}

/** Writes seeded customer `i`'s row into `params` at `at`, in the column order of {@link seedInsert}. */
function seedParams(params: string[], at: number, context: string, i: number): void {
  const c = seedCustomer(i)
  params[at] = context
  params[at + 1] = c.UserID
  params[at + 2] = c.Name
  params[at + 3] = c.Address
  params[at + 4] = c.Email
  params[at + 5] = c.PhoneNumber
  params[at + 6] = c.AltPhoneNumber
}

/** A mapping that held an address, with its customer (EmulatorStore.holdersOf). */
export interface MappingHolder {
  UserID: string
  mappingId: number
  ipsubnet: string
  starttime: number
  endtime: number | null
  terminalid: string
}

export class EmulatorStore {
  readonly #db: Database.Database
  readonly #stmt

  /** Opens (and migrates) the database at `path`, or `':memory:'`. */
  constructor(path: string) {
    this.#db = openDatabase(path)
    const db = this.#db
    this.#stmt = {
      listCustomers: db.prepare<[string], CustomerRow>(
        `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE context = ? ORDER BY id`,
      ),
      customersAfter: db.prepare<[string, number, number], CustomerRow>(
        `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE context = ? AND id > ? ORDER BY id LIMIT ?`,
      ),
      customerByUserId: db.prepare<[string, string], CustomerRow>(
        `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE context = ? AND user_id = ?`,
      ),
      customerById: db.prepare<[number], CustomerRow>(
        `SELECT ${CUSTOMER_COLUMNS} FROM customers WHERE id = ?`,
      ),
      insertCustomer: db.prepare(
        `INSERT INTO customers (context, user_id, name, address, email, phone_number, alt_phone_number)
         VALUES (@context, @UserID, @Name, @Address, @Email, @PhoneNumber, @AltPhoneNumber)`,
      ),
      seedCustomer: db.prepare(seedInsert(1)),
      seedCustomers: db.prepare(seedInsert(SEED_BATCH_ROWS)),
      updateCustomer: db.prepare(
        `UPDATE customers SET user_id = @UserID, name = @Name, address = @Address, email = @Email,
         phone_number = @PhoneNumber, alt_phone_number = @AltPhoneNumber WHERE id = @id`,
      ),
      deleteCustomer: db.prepare<[number]>('DELETE FROM customers WHERE id = ?'),
      countCustomers: db.prepare<[string], { n: number }>(
        'SELECT count(*) AS n FROM customers WHERE context = ?',
      ),

      listMappings: db.prepare<[string], MappingRecord>(
        `SELECT ${MAPPING_COLUMNS} FROM mappings WHERE context = ? ORDER BY id`,
      ),
      mappingsAfter: db.prepare<[string, number, number], MappingRecord>(
        `SELECT ${MAPPING_COLUMNS} FROM mappings WHERE context = ? AND id > ? ORDER BY id LIMIT ?`,
      ),
      mappingById: db.prepare<[number], MappingRecord>(
        `SELECT ${MAPPING_COLUMNS} FROM mappings WHERE id = ?`,
      ),
      mappingBySelector: db.prepare<[number, number, string, number], MappingRow>(
        `SELECT ${MAPPING_COLUMNS}, ip_version, range_start, prefix FROM mappings
         WHERE customer_id = ? AND ip_version = ? AND range_start = ? AND prefix = ?`,
      ),
      insertMapping: db.prepare(
        `INSERT INTO mappings (customer_id, context, ipsubnet, ip_version, range_start, range_end, prefix,
           starttime, endtime, terminalid)
         VALUES (@customerId, @context, @ipsubnet, @version, @start, @end, @prefix, @starttime, @endtime, @terminalid)`,
      ),
      updateMapping: db.prepare(
        'UPDATE mappings SET starttime = @starttime, endtime = @endtime, terminalid = @terminalid WHERE id = @id',
      ),
      deleteMapping: db.prepare<[number]>('DELETE FROM mappings WHERE id = ?'),
      // Mappings whose block contains one address (range_start <= it <= range_end) in a time window.
      holdersOf: db.prepare<unknown[], MappingHolder>(
        `SELECT c.user_id AS UserID, m.id AS mappingId, m.ipsubnet, m.starttime, m.endtime, m.terminalid
         FROM mappings m JOIN customers c ON c.id = m.customer_id
         WHERE m.context = @context AND m.ip_version = @version AND m.range_start <= @at AND m.range_end >= @at
           AND m.starttime < @tEnd AND coalesce(m.endtime, ${OPEN_END}) > @tStart
         ORDER BY m.starttime, m.id LIMIT 100`,
      ),
      // Blocks of other customers starting inside the new one (it contains them, or they are equal) ...
      overlapInside: db.prepare<unknown[], { UserID: string }>(
        `SELECT c.user_id AS UserID FROM mappings m JOIN customers c ON c.id = m.customer_id
         WHERE m.context = @context AND m.ip_version = @version AND m.range_start BETWEEN @start AND @end
           AND m.customer_id <> @customerId AND m.starttime < @tEnd AND coalesce(m.endtime, ${OPEN_END}) > @tStart
         LIMIT 1`,
      ),
      // ... and blocks of other customers containing it: their network address is one of its enclosing ones.
      overlapAround: db.prepare<unknown[], { UserID: string }>(
        `SELECT c.user_id AS UserID FROM mappings m JOIN customers c ON c.id = m.customer_id
         WHERE m.context = @context AND m.ip_version = @version
           AND m.range_start IN (SELECT value FROM json_each(@starts)) AND m.range_end >= @end
           AND m.customer_id <> @customerId AND m.starttime < @tEnd AND coalesce(m.endtime, ${OPEN_END}) > @tStart
         LIMIT 1`,
      ),
    }
  }

  close(): void {
    if (this.#db.open) this.#db.close()
  }

  #write<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate()
  }

  #customer(context: string, userId: string): CustomerRow {
    const row = this.#stmt.customerByUserId.get(context, userId)
    if (row === undefined) throw ENVELOPES.customerNotFound()
    return row
  }

  listCustomers(context: string): CustomerRecord[] {
    return this.#stmt.listCustomers.all(context)
  }

  /** Up to `limit` customers of `context` after id `afterId`, in id order: one page of the listing. */
  customersAfter(context: string, afterId: number, limit: number): CustomerRecord[] {
    return this.#stmt.customersAfter.all(context, afterId, limit)
  }

  /** Up to `limit` mappings of `context` after id `afterId`, in id order: one page of the listing. */
  mappingsAfter(context: string, afterId: number, limit: number): MappingRecord[] {
    return this.#stmt.mappingsAfter.all(context, afterId, limit)
  }

  /**
   * The mappings (with their customer's UserID) whose address or subnet held
   * `address` at some time in [from, to): who had this IP then (the Query API's rows).
   */
  holdersOf(context: string, address: IpRange, from: number, to: number): MappingHolder[] {
    return this.#stmt.holdersOf.all({
      context,
      version: address.version,
      at: rangeKey(address.start),
      tStart: from,
      tEnd: to,
    })
  }

  countCustomers(context: string): number {
    return this.#stmt.countCustomers.get(context)?.n ?? 0
  }

  createCustomer(context: string, input: CustomerFields): CustomerRecord {
    return this.#write(() => {
      let id: number
      try {
        id = Number(this.#stmt.insertCustomer.run({ context, ...input }).lastInsertRowid)
      } catch (err) {
        // UNIQUE (context, user_id) decides, inside the transaction: no window between a check and the insert.
        if (isConstraint(err, 'SQLITE_CONSTRAINT_UNIQUE')) throw ENVELOPES.duplicateUserId(input.UserID)
        throw err
      }
      return this.#stmt.customerById.get(id) as CustomerRow
    })
  }

  /** PUT and PATCH: `changes` are laid over the stored record; a new UserID renames the customer. */
  updateCustomer(context: string, userId: string, changes: Partial<CustomerFields>): CustomerRecord {
    return this.#write(() => {
      const current = this.#customer(context, userId)
      const next = { ...current, ...changes }
      try {
        this.#stmt.updateCustomer.run(next)
      } catch (err) {
        if (isConstraint(err, 'SQLITE_CONSTRAINT_UNIQUE')) throw ENVELOPES.duplicateUserId(next.UserID)
        throw err
      }
      return this.#stmt.customerById.get(current.id) as CustomerRow
    })
  }

  /** Deletes the customer and, through the foreign key, its mappings. */
  deleteCustomer(context: string, userId: string): CustomerRecord {
    return this.#write(() => {
      const current = this.#customer(context, userId)
      this.#stmt.deleteCustomer.run(current.id)
      return current
    })
  }

  listMappings(context: string): MappingRecord[] {
    return this.#stmt.listMappings.all(context)
  }

  /** Refuses a span of `range` that overlaps another customer's mapping in time. */
  #checkOverlap(
    context: string,
    customerId: number,
    userId: string,
    range: IpRange,
    start: number,
    end: number | null,
  ) {
    const params = {
      context,
      customerId,
      version: range.version,
      start: rangeKey(range.start),
      end: rangeKey(range.end),
      tStart: start,
      tEnd: end ?? OPEN_END,
    }
    const clash =
      this.#stmt.overlapInside.get(params) ??
      this.#stmt.overlapAround.get({ ...params, starts: JSON.stringify(enclosingStarts(range)) })
    if (clash !== undefined) throw ENVELOPES.duplicateMapping(userId)
  }

  #mapping(customerId: number, sel: MappingSelector): MappingRow {
    const row = this.#stmt.mappingBySelector.get(
      customerId,
      sel.range.version,
      rangeKey(sel.range.start),
      sel.range.prefix,
    )
    if (row === undefined) throw ENVELOPES.mappingNotFound(sel.ipsubnet)
    return row
  }

  createMapping(context: string, userId: string, input: MappingInput): MappingRecord {
    return this.#write(() => {
      const customer = this.#customer(context, userId)
      this.#checkOverlap(context, customer.id, userId, input.range, input.starttime, input.endtime)
      let id: number
      try {
        id = Number(
          this.#stmt.insertMapping.run({
            customerId: customer.id,
            context,
            ipsubnet: input.ipsubnet,
            version: input.range.version,
            start: rangeKey(input.range.start),
            end: rangeKey(input.range.end),
            prefix: input.range.prefix,
            starttime: input.starttime,
            endtime: input.endtime,
            terminalid: input.terminalid,
          }).lastInsertRowid,
        )
      } catch (err) {
        // The same customer already maps this very address or subnet.
        if (isConstraint(err, 'SQLITE_CONSTRAINT_UNIQUE')) throw ENVELOPES.duplicateMapping(userId)
        throw err
      }
      return this.#stmt.mappingById.get(id) as MappingRecord
    })
  }

  /** PUT and PATCH: `changes` are laid over the selected mapping, then the span and overlap are checked again. */
  updateMapping(
    context: string,
    userId: string,
    sel: MappingSelector,
    changes: MappingChanges,
  ): MappingRecord {
    return this.#write(() => {
      const customer = this.#customer(context, userId)
      const current = this.#mapping(customer.id, sel)
      const next = {
        id: current.id,
        starttime: changes.starttime ?? current.starttime,
        endtime: changes.endtime !== undefined ? changes.endtime : current.endtime,
        terminalid: changes.terminalid ?? current.terminalid,
      }
      checkSpan(next.starttime, next.endtime)
      this.#checkOverlap(context, customer.id, userId, sel.range, next.starttime, next.endtime)
      this.#stmt.updateMapping.run(next)
      return this.#stmt.mappingById.get(current.id) as MappingRecord
    })
  }

  deleteMapping(context: string, userId: string, sel: MappingSelector): MappingRecord {
    return this.#write(() => {
      const customer = this.#customer(context, userId)
      const current = this.#mapping(customer.id, sel)
      const record = this.#stmt.mappingById.get(current.id) as MappingRecord
      this.#stmt.deleteMapping.run(current.id)
      return record
    })
  }

  /**
   * Adds the deterministic customers 1..`count` to `context`, skipping any
   * whose UserID is already there, in one transaction. Seeding the same
   * count twice adds nothing the second time. Returns how many were added.
   */
  /**
   * Gives seeded customer i (1..count) one mapping, the address 10.x.y.z with
   * x.y.z = i in base 256, from 01-01-2024 00:00:00 UTC, open-ended (the demo's
   * "who had this IP" data). A customer that has a mapping already is skipped.
   */
  seedMappings(context: string, count: number): number {
    let added = 0
    for (let i = 1; i <= count; i++) {
      const row = this.#stmt.customerByUserId.get(context, seedUserId(i))
      if (row === undefined) continue
      const has = this.#db
        .prepare<[number], { n: number }>('SELECT count(*) AS n FROM mappings WHERE customer_id = ?')
        .get(row.id)
      if ((has?.n ?? 0) > 0) continue
      const ipsubnet = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`
      const range = parseIpRange(ipsubnet) as IpRange
      this.createMapping(context, row.UserID, {
        ipsubnet,
        range,
        starttime: SEED_MAPPING_START,
        endtime: null,
        terminalid: `T${String(i).padStart(4, '0')}`,
      })
      added++
    }
    return added
  }

  seed(context: string, count: number): number {
    return this.#write(() => {
      // Into an empty context (the usual case), many rows per statement, bound by position: per-statement
      // and per-name binding cost was most of the time (13 s for 1,000,000 one at a time; docs/emulator.md).
      // Seeded UserIDs are distinct, so none is skipped there. Into a non-empty one, one at a time (a skipped
      // row can use up an id, and how many would then depend on the batching).
      let added = 0
      const params: string[] = new Array(SEED_BATCH_ROWS * SEED_COLUMNS)
      let i = 1
      const empty = this.countCustomers(context) === 0
      for (; empty && i + SEED_BATCH_ROWS - 1 <= count; i += SEED_BATCH_ROWS) {
        for (let k = 0; k < SEED_BATCH_ROWS; k++) seedParams(params, k * SEED_COLUMNS, context, i + k)
        added += this.#stmt.seedCustomers.run(params).changes
      }
      const one: string[] = new Array(SEED_COLUMNS)
      for (; i <= count; i++) {
        seedParams(one, 0, context, i)
        added += this.#stmt.seedCustomer.run(one).changes
      }
      return added
    })
  }
}
