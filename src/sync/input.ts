/**
 * Sync input, read one record at a time (shared/SPEC.md 10): a JSON array of
 * customers (the listing's shape, `id` ignored), or Trisul's admin CSV import
 * layout, which also carries each customer's mappings. Each record is checked
 * with the validators of single writes (SPEC 3.5) and comes out as a
 * `CustomerWanted` or an `InvalidInput`; nothing here talks to the upstream.
 */
import { Readable } from 'node:stream'
import type { ValidateFunction } from 'ajv'
import { parse } from 'csv-parse'
import { ListingScanError, scanListing } from '../cache/listing-scan.js'
import { describeSchemaError, timeOrderProblem } from '../http/request-schema.js'
import { parseTrisulTime } from '../shared/trisul-time.js'
import type { CustomerWanted, InvalidInput, MappingWanted, SyncInput } from './plan.js'

export interface InputRules {
  /** The customers create validator of the policy in force. */
  readonly customer: ValidateFunction
  /** The mappings create validator. */
  readonly mapping: ValidateFunction
  /** `upstream.timeZone`, for the CSV's Valid From / Valid To. */
  readonly timeZone: string
}

/** The whole input is unusable (not a JSON array of objects, not CSV): a 400 before any planning. */
export class SyncInputError extends Error {
  override name = 'SyncInputError'
}

function userIdOf(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 && value.length <= 256 ? value : null
}

/** One customer record (already an object) → wanted or invalid. */
export function customerOf(
  record: Record<string, unknown>,
  source: string,
  rules: InputRules,
): CustomerWanted | InvalidInput {
  const { id: _ignored, ...body } = record
  const userId = userIdOf(body.UserID)
  if (!rules.customer(body)) {
    return { kind: 'invalid', UserID: userId, source, message: describeSchemaError(rules.customer.errors) }
  }
  const { UserID, ...fields } = body as Record<string, string>
  return { kind: 'customer', UserID: UserID as string, fields, source }
}

/** The records of a JSON array, one at a time; throws SyncInputError when it is not an array of objects. */
export function* jsonInputs(bytes: Buffer, rules: InputRules): Generator<SyncInput> {
  let offsets: Uint32Array
  try {
    offsets = scanListing(bytes)
  } catch (err) {
    const message = err instanceof ListingScanError ? err.message : 'not JSON'
    throw new SyncInputError(`The body must be a JSON array of customers: ${message}`)
  }
  for (let i = 0; i < offsets.length; i += 2) {
    const record = JSON.parse(bytes.toString('utf8', offsets[i], offsets[i + 1])) as Record<string, unknown>
    yield customerOf(record, `record ${i / 2 + 1}`, rules)
  }
}

/** Trisul's import columns, in order. */
export const CSV_COLUMNS = [
  'IP/subnet(s)',
  'Name',
  'Address',
  'Email',
  'Phone',
  'Alt Phone',
  'Customer ID',
  'Valid From',
  'Valid To',
  'Terminal ID',
] as const

function isHeader(row: readonly string[]): boolean {
  return row[1]?.trim().toLowerCase() === 'name' && /customer\s*id/i.test(row[6] ?? '')
}

/** One CSV row → the customer it describes with its mappings, or why it is invalid. */
export function csvRowOf(
  row: readonly string[],
  source: string,
  rules: InputRules,
): CustomerWanted | InvalidInput {
  const userId = userIdOf(row[6]?.trim())
  if (row.length !== CSV_COLUMNS.length) {
    return {
      kind: 'invalid',
      UserID: userId,
      source,
      message: `${row.length} columns where ${CSV_COLUMNS.length} were expected (${CSV_COLUMNS.join(', ')})`,
    }
  }
  const [ips, Name, Address, Email, PhoneNumber, AltPhoneNumber, , from, to, terminal] = row.map((c) =>
    c.trim(),
  )
  const customer = customerOf(
    { UserID: userId ?? '', Name, Address, Email, PhoneNumber, AltPhoneNumber },
    source,
    rules,
  )
  if (customer.kind === 'invalid') return { ...customer, UserID: userId }
  const starttime = from === '' ? 0 : parseTrisulTime(from ?? '', rules.timeZone)
  if (starttime === null) return invalid(userId, source, 'Valid From must be DD-MM-YYYY HH:MM:SS')
  const endtime = to === '' ? null : parseTrisulTime(to ?? '', rules.timeZone)
  if (to !== '' && endtime === null) return invalid(userId, source, 'Valid To must be DD-MM-YYYY HH:MM:SS')
  const subnets = (ips ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
  if (new Set(subnets).size !== subnets.length) return invalid(userId, source, 'an IP/subnet is listed twice')
  const mappings: MappingWanted[] = []
  for (const ipsubnet of subnets) {
    const body = {
      UserID: customer.UserID,
      ipsubnet,
      starttime: String(starttime),
      ...(endtime === null ? {} : { endtime: String(endtime) }),
      terminalid: terminal ?? '',
    }
    if (!rules.mapping(body)) {
      return invalid(userId, source, `${ipsubnet}: ${describeSchemaError(rules.mapping.errors)}`)
    }
    const order = timeOrderProblem(body)
    if (order) return invalid(userId, source, 'Valid To must be after Valid From')
    mappings.push({ ipsubnet, starttime, endtime, terminalid: terminal ?? '' })
  }
  return { ...customer, mappings }
}

function invalid(userId: string | null, source: string, message: string): InvalidInput {
  return { kind: 'invalid', UserID: userId, source, message }
}

/** The rows of a CSV body, one at a time (a header row is recognised and skipped). */
export async function* csvInputs(bytes: Buffer, rules: InputRules): AsyncGenerator<SyncInput> {
  const parser = Readable.from([bytes]).pipe(
    parse({ bom: true, relax_column_count: true, skip_empty_lines: true, info: true }),
  )
  let first = true
  try {
    for await (const { record, info } of parser as AsyncIterable<{
      record: string[]
      info: { lines: number }
    }>) {
      if (first && isHeader(record)) {
        first = false
        continue
      }
      first = false
      yield csvRowOf(record, `line ${info.lines}`, rules)
    }
  } catch (err) {
    throw new SyncInputError(`The body is not valid CSV: ${(err as Error).message}`)
  }
}
