/**
 * Who had this IP, by name (SPEC 17): Trisul's mapping records name their
 * customer by its numeric `id` (`ipdr_customer_id`), which a CRM does not
 * know. The gateway's mapping listing gives each record the customer's
 * `UserID` too, from the customers listing of the same credentials: appended
 * as the record's last member, in the upstream bytes, so nothing else of the
 * record changes. A mapping whose customer the listing lacks gets `null`; a
 * record that already has a `UserID` (a later Trisul) keeps its own.
 *
 * Work in steps (src/cache/steps.ts): a listing of a million customers is
 * read without holding the loop.
 */

import type { ListingEntry } from './listing-entry.js'
import { canonicalInteger } from './listing-index.js'
import type { Steps } from './steps.js'

/** The field added to each mapping record. */
export const MAPPING_NAME_FIELD = 'UserID'

/** Records handled between two yields. */
const STEP = 2048

/** `ipdr_customer_id` (canonical) → UserID, for every customer of `customers`. */
export function* customerNames(customers: ListingEntry): Steps<Map<string, string>> {
  const names = new Map<string, string>()
  for (let pos = 0; pos < customers.count; pos++) {
    if (pos % STEP === STEP - 1) yield
    const record = customers.record(pos)
    const id = canonicalInteger(record.id)
    if (id !== null && typeof record.UserID === 'string') names.set(id, record.UserID)
  }
  return names
}

const CLOSE = 0x7d // }
const OPEN = 0x7b // {
const COMMA = Buffer.from(',')

function isSpace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d
}

/**
 * The bytes of `mappings` as a JSON array whose every record ends with
 * `"UserID": <its customer's UserID, or null>`; records keep their order and
 * every other byte.
 */
export function* namedMappings(mappings: ListingEntry, names: ReadonlyMap<string, string>): Steps<Buffer> {
  const parts: Buffer[] = [Buffer.from('[')]
  for (let pos = 0; pos < mappings.count; pos++) {
    if (pos % STEP === STEP - 1) yield
    if (pos > 0) parts.push(COMMA)
    const raw = mappings.recordRaw(pos)
    const record = mappings.record(pos)
    if (Object.hasOwn(record, MAPPING_NAME_FIELD) || raw[raw.length - 1] !== CLOSE) {
      parts.push(raw)
      continue
    }
    const id = canonicalInteger(record.ipdr_customer_id)
    const name = id === null ? null : (names.get(id) ?? null)
    // The byte before the closing brace decides the comma: none in an empty object.
    let last = raw.length - 2
    while (last >= 0 && isSpace(raw[last] as number)) last--
    const member = `${raw[last] === OPEN ? '' : ','}"${MAPPING_NAME_FIELD}":${JSON.stringify(name)}}`
    parts.push(raw.subarray(0, raw.length - 1), Buffer.from(member))
  }
  parts.push(Buffer.from(']'))
  return Buffer.concat(parts)
}
