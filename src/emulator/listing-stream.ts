/**
 * A listing as a stream of JSON text, one page of rows at a time, so that a
 * million customers never become one array or one string, and the emulator
 * answers other requests between pages. The bytes are those of
 * `JSON.stringify(rows)` over the whole listing.
 *
 * Pages are read by id (keyset: `id > last ORDER BY id LIMIT n`), each its own
 * statement, because better-sqlite3 cannot run another statement on the
 * connection while an iterator is open. So a listing is not one snapshot: a
 * write that lands while it streams shows in it if its row comes after the
 * page read so far. A listing that starts after a write's answer always shows
 * that write, which is what the gateway's read-your-writes relies on.
 */
import { Readable } from 'node:stream'

/** Rows per page: about 1 MB of customer JSON, a few ms of the emulator's loop. */
export const LISTING_PAGE_ROWS = 5000

/** The stream of `[`, each page's rows, `]`; `page(afterId, limit)` reads rows with ids above `afterId`. */
export function listingStream<T extends { readonly id: number }>(
  page: (afterId: number, limit: number) => readonly T[],
  pageRows = LISTING_PAGE_ROWS,
): Readable {
  function* chunks(): Generator<Buffer> {
    let afterId = 0
    let first = true
    let text = '['
    for (;;) {
      const rows = page(afterId, pageRows)
      if (rows.length > 0) {
        const json = JSON.stringify(rows)
        text += `${first ? '' : ','}${json.slice(1, -1)}`
        first = false
        afterId = (rows[rows.length - 1] as T).id
      }
      if (rows.length < pageRows) break
      yield Buffer.from(text)
      text = ''
    }
    yield Buffer.from(`${text}]`)
  }
  return Readable.from(chunks(), { objectMode: false })
}
