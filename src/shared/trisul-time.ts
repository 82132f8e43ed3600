/**
 * Trisul's `DD-MM-YYYY HH:MM:SS` times (its CSV import and the IPDR Query API),
 * read and written in an IANA time zone (`upstream.timeZone`, default
 * `Asia/Kolkata`) with the platform's Intl data: no time zone library.
 * Shared by the gateway and the emulator.
 */

const TRISUL_TIME = /^(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})$/

const formats = new Map<string, Intl.DateTimeFormat>()

function formatOf(zone: string): Intl.DateTimeFormat {
  let f = formats.get(zone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    })
    if (formats.size > 32) formats.clear()
    formats.set(zone, f)
  }
  return f
}

/** True when `zone` is an IANA zone this platform knows. */
export function isTimeZone(zone: string): boolean {
  try {
    formatOf(zone)
    return true
  } catch {
    return false
  }
}

/** The wall-clock fields of instant `ms` in `zone`. */
function wallClock(ms: number, zone: string): [number, number, number, number, number, number] {
  const parts: Record<string, number> = {}
  for (const p of formatOf(zone).formatToParts(new Date(ms))) parts[p.type] = Number(p.value)
  return [
    parts.year ?? 0,
    parts.month ?? 0,
    parts.day ?? 0,
    parts.hour ?? 0,
    parts.minute ?? 0,
    parts.second ?? 0,
  ]
}

/** Milliseconds `zone` is ahead of UTC at instant `ms`. */
function offsetAt(ms: number, zone: string): number {
  const [y, mo, d, h, mi, s] = wallClock(ms, zone)
  return Date.UTC(y, mo - 1, d, h, mi, s) - Math.floor(ms / 1000) * 1000
}

/**
 * Unix seconds of a `DD-MM-YYYY HH:MM:SS` wall-clock time in `zone`, or null
 * when the text is not one (or names a day that does not exist). A time that a
 * daylight-saving change skips or repeats resolves to the offset in force just before.
 */
export function parseTrisulTime(text: string, zone: string): number | null {
  const m = TRISUL_TIME.exec(text)
  if (!m) return null
  const [d, mo, y, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number]
  const local = Date.UTC(y, mo - 1, d, h, mi, s)
  const check = new Date(local)
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1 || h > 23 || mi > 59 || s > 59) return null
  let utc = local - offsetAt(local, zone)
  utc = local - offsetAt(utc, zone)
  return Math.floor(utc / 1000)
}

/** `DD-MM-YYYY HH:MM:SS` of Unix seconds `seconds` in `zone`. */
export function formatTrisulTime(seconds: number, zone: string): string {
  const [y, mo, d, h, mi, s] = wallClock(seconds * 1000, zone)
  const two = (n: number) => String(n).padStart(2, '0')
  return `${two(d)}-${two(mo)}-${String(y).padStart(4, '0')} ${two(h)}:${two(mi)}:${two(s)}`
}
