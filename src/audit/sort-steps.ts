/**
 * Sorting a large list of UserIDs without holding the event loop (an access line of a sync plan of
 * a million records digests them sorted, SPEC 14): a bottom-up merge sort as steps, runs of
 * {@link RUN} sorted at a time, then merged pairwise, a yield every {@link RUN} elements.
 * The order is JavaScript's default string order (UTF-16 code units), as `Array.prototype.sort`'s.
 */
import type { Steps } from '../cache/steps.js'

const RUN = 16_384

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

export function* sortSteps(values: readonly string[]): Steps<string[]> {
  let runs: string[][] = []
  for (let at = 0; at < values.length; at += RUN) {
    runs.push(values.slice(at, at + RUN).sort(byCodeUnits))
    yield
  }
  while (runs.length > 1) {
    const next: string[][] = []
    for (let i = 0; i < runs.length; i += 2) {
      const a = runs[i] as string[]
      const b = runs[i + 1]
      if (b === undefined) {
        next.push(a)
        continue
      }
      const out = new Array<string>(a.length + b.length)
      let x = 0
      let y = 0
      for (let k = 0; k < out.length; k++) {
        out[k] =
          y >= b.length || (x < a.length && (a[x] as string) <= (b[y] as string))
            ? (a[x++] as string)
            : (b[y++] as string)
        if (k % RUN === RUN - 1) yield
      }
      next.push(out)
    }
    runs = next
  }
  return runs[0] ?? []
}
