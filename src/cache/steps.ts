/**
 * Work that may be cut at safe points: a generator that yields between pieces
 * (a text chunk scanned, a few thousand records tested) and returns its result.
 * The same code then runs in one go (`runSteps`, small listings and tests) or
 * across event-loop turns (`runStepsYielding`), so a filter over a million
 * records never holds the loop much longer than one slice (SPEC 9).
 */
export type Steps<T> = Generator<void, T, void>

/** Runs `steps` to the end at once. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const next = steps.next()
    if (next.done) return next.value
  }
}

/** How long a filter runs before it lets the loop serve others: well under SPEC 9's 50 ms. */
export const STEP_SLICE_MS = 10

/** Runs `steps`, giving the loop a turn (`setImmediate`) whenever a slice of `sliceMs` is used up. */
export async function runStepsYielding<T>(steps: Steps<T>, sliceMs = STEP_SLICE_MS): Promise<T> {
  let sliceStart = performance.now()
  for (;;) {
    const next = steps.next()
    if (next.done) return next.value
    if (performance.now() - sliceStart >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve))
      sliceStart = performance.now()
    }
  }
}

/**
 * For loops that await anyway (an async iterator): call the result after each piece of work; it
 * gives the loop a turn (`setImmediate`) whenever `sliceMs` of work has been done since the last.
 */
export function loopTurns(sliceMs = STEP_SLICE_MS): () => Promise<void> {
  let sliceStart = performance.now()
  return async () => {
    if (performance.now() - sliceStart < sliceMs) return
    await new Promise<void>((resolve) => setImmediate(resolve))
    sliceStart = performance.now()
  }
}
