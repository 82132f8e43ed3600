/** Helpers for the listing cache tests (not a test file). */
import type { ListingKey } from '../../src/cache/listing-cache.js'
import { buildListingEntry, type ListingEntry } from '../../src/cache/listing-entry.js'
import { RESOURCE_BY_NAME } from '../../src/resources.js'

export interface FakeClock {
  now: () => number
  advance: (ms: number) => void
  set: (ms: number) => void
}

export function fakeClock(start = 0): FakeClock {
  let time = start
  return {
    now: () => time,
    advance: (ms) => {
      time += ms
    },
    set: (ms) => {
      time = ms
    },
  }
}

export interface Deferred<T> {
  promise: Promise<T>
  resolve: (value: T) => void
  reject: (err: unknown) => void
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (err: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

export function key(overrides: Partial<ListingKey> = {}): ListingKey {
  return { resource: 'customers', username: 'crm', tokenHash: 'h1', context: 'default', ...overrides }
}

/** An entry whose one record says which key and which fill made it. */
export function taggedEntry(k: ListingKey, tag: string | number = 0, padding = 0): ListingEntry {
  const record = {
    UserID: JSON.stringify([k.resource, k.username, k.tokenHash, k.context]),
    tag,
    pad: 'x'.repeat(padding),
  }
  return buildListingEntry(Buffer.from(JSON.stringify([record])), RESOURCE_BY_NAME[k.resource])
}

/** What `taggedEntry` wrote. */
export function tagOf(entry: ListingEntry): { key: string; tag: unknown } {
  const record = entry.record(0)
  return { key: record.UserID as string, tag: record.tag }
}

export function keyText(k: ListingKey): string {
  return JSON.stringify([k.resource, k.username, k.tokenHash, k.context])
}

/** Lets every queued promise callback run (a macrotask turn). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
