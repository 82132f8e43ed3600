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
import { loopTurns } from '../cache/steps.js'
import { parseTrisulTime } from '../shared/trisul-time.js'
import { describeSchemaError, timeOrderProblem } from '../validation/request-schema.js'
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
// Not a GatewayError: src/sync/ is below HTTP; the sync route answers it as IPDR_GW_SYNC_INVALID_INPUT.
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

/** The records of a JSON array, scanned here at once (small inputs, tests); throws SyncInputError when it is not an array of objects. */
export function* jsonInputs(
  bytes: Buffer,
  rules: InputRules,
  limits: InputLimits = UNLIMITED,
): Generator<SyncInput> {
  let offsets: Uint32Array
  try {
    offsets = scanListing(bytes)
  } catch (err) {
    const message = err instanceof ListingScanError ? err.message : 'not JSON'
    throw new SyncInputError(jsonScanProblem(bytes, message))
  }
  yield* jsonRecordsAt(bytes, offsets, rules, limits)
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

/** What bounds one sync input (SPEC 13). */
export interface InputLimits {
  /** `sync.maxRecords`: more records is a 413. */
  readonly maxRecords: number
  /** `limits.bodyBytes`: one record larger than this is a 400 naming its line. */
  readonly maxRecordBytes: number
}

const UNLIMITED: InputLimits = {
  maxRecords: Number.MAX_SAFE_INTEGER,
  maxRecordBytes: Number.MAX_SAFE_INTEGER,
}

/** The input has more records than `sync.maxRecords` (413). */
// Not a GatewayError, as SyncInputError: answered as IPDR_GW_SYNC_TOO_MANY_RECORDS.
export class TooManyRecordsError extends Error {
  override name = 'TooManyRecordsError'
}

/** How much of the input one parser step takes: a slice parses in a few ms. */
const SLICE_BYTES = 64 * 1024

/** The 1-based line of byte `at` of `bytes`. */
export function lineAt(bytes: Buffer, at: number): number {
  let line = 1
  for (let i = bytes.indexOf(0x0a); i !== -1 && i < at; i = bytes.indexOf(0x0a, i + 1)) line += 1
  return line
}

/**
 * The rows of a CSV body, parsed with csv-parse's streaming API one slice at a time, so that
 * neither its buffer of parsed records nor one step grows with the input (SPEC 13); a header row
 * is recognised and skipped. Malformed CSV (an unclosed quote, a record over `maxRecordBytes`)
 * throws a SyncInputError naming the line the record began at; more than `maxRecords` rows a
 * TooManyRecordsError.
 */
export async function* csvRows(
  bytes: Buffer,
  limits: InputLimits = UNLIMITED,
): AsyncGenerator<{ readonly row: string[]; readonly line: number }> {
  function* slices(): Generator<Buffer> {
    for (let at = 0; at < bytes.length; at += SLICE_BYTES) yield bytes.subarray(at, at + SLICE_BYTES)
  }
  // The line the last whole record ended on: a malformed one begins after it. Taken as the parser
  // makes each record, not as this loop takes it: a stream that fails drops the records it had
  // parsed ahead, and the line named would then be too early (how far ahead depends on the load).
  let lastLine = 0
  const parser = Readable.from(slices(), { objectMode: false }).pipe(
    parse({
      bom: true,
      relax_column_count: true,
      skip_empty_lines: true,
      info: true,
      max_record_size: limits.maxRecordBytes,
      on_record: (record, context) => {
        lastLine = context.lines
        return record
      },
    }),
  )
  let first = true
  let records = 0
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
      if (++records > limits.maxRecords)
        throw new TooManyRecordsError(
          `The input has more than ${limits.maxRecords} records (sync.maxRecords)`,
        )
      yield { row: record, line: info.lines }
    }
  } catch (err) {
    if (err instanceof TooManyRecordsError) throw err
    // csv-parse names the line it stopped at (the end of an unclosed quote); the record began after the last good one.
    throw new SyncInputError(
      `The body is not valid CSV: the record at line ${lastLine + 1}: ${(err as Error).message}`,
    )
  } finally {
    parser.destroy()
  }
}

/** The rows of a CSV body as customers with their mappings, checked ({@link csvRows}, {@link csvRowOf}). */
export async function* csvInputs(
  bytes: Buffer,
  rules: InputRules,
  limits: InputLimits = UNLIMITED,
): AsyncGenerator<SyncInput> {
  for await (const { row, line } of csvRows(bytes, limits)) yield csvRowOf(row, `line ${line}`, rules)
}

/**
 * The records of a JSON array whose record offsets a scan found (in a worker when large), each
 * parsed on its own. A record over `maxRecordBytes` throws a SyncInputError naming its line.
 */
export function* jsonRecordsAt(
  bytes: Buffer,
  offsets: Uint32Array,
  rules: InputRules,
  limits: InputLimits,
): Generator<SyncInput> {
  if (offsets.length / 2 > limits.maxRecords)
    throw new TooManyRecordsError(`The input has more than ${limits.maxRecords} records (sync.maxRecords)`)
  for (let i = 0; i < offsets.length; i += 2) {
    const start = offsets[i] as number
    const end = offsets[i + 1] as number
    if (end - start > limits.maxRecordBytes)
      throw new SyncInputError(
        `record ${i / 2 + 1} (line ${lineAt(bytes, start)}) is larger than ${limits.maxRecordBytes} bytes (limits.bodyBytes)`,
      )
    const record = JSON.parse(bytes.toString('utf8', start, end)) as Record<string, unknown>
    yield customerOf(record, `record ${i / 2 + 1}`, rules)
  }
}

/** The message of a JSON scan error, with the line of the byte it names. */
export function jsonScanProblem(bytes: Buffer, message: string): string {
  const at = /at byte (\d+)/.exec(message)
  const where = at ? ` (line ${lineAt(bytes, Number(at[1]))})` : ''
  return `The body must be a JSON array of customers: ${message}${where}`
}

/** A sync input whose syntax and size were checked: the bytes, and a JSON input's record offsets. */
export interface CheckedInput {
  readonly bytes: Buffer
  readonly csv: boolean
  /** A JSON input's records (start, end pairs); null for CSV. */
  readonly offsets: Uint32Array | null
  readonly records: number
}

/**
 * Checks a sync input before its job starts, across event-loop turns (SPEC 13): CSV parsed through
 * {@link csvRows}, JSON scanned by `scan` (the listing scanner, in a worker for large inputs), its
 * records counted and measured. Only the bytes and the offsets are kept: the job reads the records
 * again, one at a time ({@link syncInputs}), so a million records are never held as objects at once.
 */
export async function checkSyncInput(
  bytes: Buffer,
  csv: boolean,
  limits: InputLimits,
  scan: (raw: Buffer) => Promise<{ raw: Buffer; offsets: Uint32Array }>,
): Promise<CheckedInput> {
  const turn = loopTurns()
  if (csv) {
    let records = 0
    for await (const _ of csvRows(bytes, limits)) {
      records += 1
      await turn()
    }
    return { bytes, csv, offsets: null, records }
  }
  let scanned: { raw: Buffer; offsets: Uint32Array }
  try {
    scanned = await scan(bytes)
  } catch (err) {
    const message = err instanceof Error ? err.message : 'not JSON'
    // A scan in a worker moved the bytes there; a failure brings them back with it.
    const back = (err as { raw?: unknown }).raw
    throw new SyncInputError(jsonScanProblem(Buffer.isBuffer(back) ? back : bytes, message))
  }
  const { raw, offsets } = scanned
  const records = offsets.length / 2
  if (records > limits.maxRecords)
    throw new TooManyRecordsError(`The input has more than ${limits.maxRecords} records (sync.maxRecords)`)
  for (let i = 0; i < offsets.length; i += 2) {
    const start = offsets[i] as number
    if ((offsets[i + 1] as number) - start > limits.maxRecordBytes)
      throw new SyncInputError(
        `record ${i / 2 + 1} (line ${lineAt(raw, start)}) is larger than ${limits.maxRecordBytes} bytes (limits.bodyBytes)`,
      )
  }
  return { bytes: raw, csv, offsets, records }
}

/** The records of a checked input, each validated as a single write's body would be. */
export async function* syncInputs(input: CheckedInput, rules: InputRules): AsyncGenerator<SyncInput> {
  if (input.offsets === null) yield* csvInputs(input.bytes, rules)
  else yield* jsonRecordsAt(input.bytes, input.offsets, rules, UNLIMITED)
}
