/**
 * Time windows of the policy (`rateLimit.timeWindow`, `auth.failureLimit.timeWindow`):
 * a whole number of milliseconds, or a string such as `"30 seconds"`,
 * `"1 minute"`, `"2 hours"`, `"1 day"`. Pure; the same grammar is the schema's
 * `pattern`, so the published schema and the loader agree.
 */

const UNIT_MS = {
  ms: 1,
  millisecond: 1,
  milliseconds: 1,
  s: 1000,
  sec: 1000,
  secs: 1000,
  second: 1000,
  seconds: 1000,
  m: 60_000,
  min: 60_000,
  mins: 60_000,
  minute: 60_000,
  minutes: 60_000,
  h: 3_600_000,
  hour: 3_600_000,
  hours: 3_600_000,
  d: 86_400_000,
  day: 86_400_000,
  days: 86_400_000,
} as const satisfies Record<string, number>

type Unit = keyof typeof UNIT_MS

/** Longest accepted window: a counter that lives longer than this is a configuration mistake. */
export const MAX_WINDOW_MS = 30 * 86_400_000

/**
 * The string grammar, for the JSON Schema `pattern` (ajv compiles it with the
 * `u` flag): a number, optional spaces, a lower-case unit; or digits alone (ms).
 */
export const DURATION_PATTERN =
  '^(?:[0-9]{1,9}|[0-9]{1,9}(?:\\.[0-9]{1,3})? ?(?:ms|milliseconds?|s|secs?|seconds?|m|mins?|minutes?|h|hours?|d|days?))$'

const DURATION_RE = /^([0-9]{1,9}(?:\.[0-9]{1,3})?) ?([a-z]+)?$/

/**
 * The window in milliseconds, or an error message. Accepts a positive integer
 * (milliseconds) or a string of {@link DURATION_PATTERN}; the result must lie
 * between 1 ms and {@link MAX_WINDOW_MS}.
 */
export function parseDuration(value: unknown): { ok: true; ms: number } | { ok: false; message: string } {
  let ms: number
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) return { ok: false, message: 'must be a whole number of milliseconds' }
    ms = value
  } else if (typeof value === 'string') {
    const m = DURATION_RE.exec(value)
    const unit = m?.[2] ?? 'ms'
    if (!m || !Object.hasOwn(UNIT_MS, unit) || (m[2] === undefined && m[1]!.includes('.'))) {
      return {
        ok: false,
        message: `cannot parse duration "${value}" (use milliseconds or e.g. "30 seconds", "1 minute", "2 hours", "1 day")`,
      }
    }
    ms = Math.round(Number(m[1]) * UNIT_MS[unit as Unit])
  } else {
    return { ok: false, message: 'must be a number of milliseconds or a duration string' }
  }
  if (ms < 1 || ms > MAX_WINDOW_MS) {
    return { ok: false, message: `must be between 1 millisecond and 30 days (got ${ms} ms)` }
  }
  return { ok: true, ms }
}
