/**
 * What an answer disclosed, for its `access` line (SPEC 14): how many records, and whose — the
 * customers' UserIDs (a mapping record's, as the cached mapping listing names it, SPEC 17), each
 * once, sorted, up to `audit.readUserIds`; past that only their count and the SHA-256 of the sorted
 * list joined by `\n`. So `audit search --user-id` finds who looked up an address as well as who
 * read the customer. Sorting and hashing a million keys takes a second: it runs in
 * steps between loop turns, once per cached listing (a plain listing's answer is the same for every
 * hit on it), never before the answer is sent.
 */
import { createHash } from 'node:crypto'
import type { ListingEntry } from '../cache/listing-entry.js'
import { loopTurns, runStepsYielding } from '../cache/steps.js'
import { sortSteps } from './sort-steps.js'

/** The records an answer disclosed. */
export interface Disclosed {
  /** `userIds`: the customers the records belong to. */
  readonly field: 'userIds'
  /** Records disclosed (a customer's several mappings count each). */
  readonly count: number
  /** Sorted; null past the limit. */
  readonly ids: readonly string[] | null
  /** SHA-256 hex of the sorted ids joined by `\n`; null when `ids` are given. */
  readonly digest: string | null
}

/** Access lines name at most this many ids by default (SPEC 14's `audit.readUserIds`). */
export const DEFAULT_READ_USER_IDS = 100

/** Up to this many ids are sorted at once (a few ms); more in steps. */
const SORT_INLINE = 20_000

/** `ids` as an access line names them: sorted, or counted and digested past `limit`. */
export async function disclosedIds(
  ids: readonly string[],
  limit: number,
  count: number = ids.length,
): Promise<Disclosed> {
  const field = 'userIds'
  const sorted = ids.length > SORT_INLINE ? await runStepsYielding(sortSteps(ids)) : [...ids].sort()
  if (sorted.length <= limit) return { field, count, ids: sorted, digest: null }
  return { field, count, ids: null, digest: await digestOf(sorted) }
}

/**
 * The UserID a record of `entry` belongs to: a customer's own (from the index), a mapping's as the
 * gateway added it; a mapping of a customer Trisul's listing lacks is named by `#` and its
 * `ipdr_customer_id`, so the line still says which record it was.
 */
function userIdAt(entry: ListingEntry, pos: number): string {
  if (entry.resource === 'customers') return entry.index.keyAt(pos)
  const record = entry.record(pos)
  return typeof record.UserID === 'string' ? record.UserID : `#${String(record.ipdr_customer_id)}`
}

/** The customers of `keys`, each once (a customer's mappings name it once). */
function distinct(entry: ListingEntry, keys: string[]): string[] {
  return entry.resource === 'customers' ? keys : [...new Set(keys)]
}

/** The records at `positions` of `entry` (a filtered or paged answer). */
export async function disclosedAt(
  entry: ListingEntry,
  positions: readonly number[],
  limit: number,
): Promise<Disclosed> {
  await entry.whenIndexed()
  return disclosedIds(
    distinct(
      entry,
      positions.map((p) => userIdAt(entry, p)),
    ),
    limit,
    positions.length,
  )
}

const whole = new WeakMap<ListingEntry, Map<number, Promise<Disclosed>>>()

/** Every record of `entry` (a plain listing's answer), worked out once per entry and limit. */
export function disclosedListing(entry: ListingEntry, limit: number): Promise<Disclosed> {
  let byLimit = whole.get(entry)
  if (byLimit === undefined) {
    byLimit = new Map()
    whole.set(entry, byLimit)
  }
  let done = byLimit.get(limit)
  if (done === undefined) {
    done = (async () => {
      await entry.whenIndexed()
      const keys: string[] = new Array(entry.count)
      const turn = loopTurns()
      for (let p = 0; p < keys.length; p++) {
        keys[p] = userIdAt(entry, p)
        if ((p & 0x3fff) === 0x3fff) await turn()
      }
      return disclosedIds(distinct(entry, keys), limit, entry.count)
    })()
    byLimit.set(limit, done)
  }
  return done
}

/** SHA-256 hex of `sorted` joined by `\n`, hashed a slice at a time between loop turns. */
async function digestOf(sorted: readonly string[]): Promise<string> {
  const hash = createHash('sha256')
  const turn = loopTurns()
  for (let at = 0; at < sorted.length; at += DIGEST_SLICE) {
    hash.update(`${at > 0 ? '\n' : ''}${sorted.slice(at, at + DIGEST_SLICE).join('\n')}`)
    await turn()
  }
  return hash.digest('hex')
}

const DIGEST_SLICE = 16_384
