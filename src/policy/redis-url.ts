/**
 * The Redis URL of `store.redis.url`, `--redis` and `REDIS_URL`: checked once
 * (never echoing it: it may hold a password) and turned into what may be shown
 * in logs. Also the `host:port` lists of `store.redis.sentinels` and
 * `store.redis.cluster`, and the sentinel form of the URL (SPEC 15):
 * `redis+sentinel://[:password@]host:port,host:port/name[/db]` (`rediss+sentinel://` for TLS),
 * the form redis-py and Spring use. Pure.
 */

export interface HostPort {
  readonly host: string
  readonly port: number
}

/** What a `redis+sentinel://` URL names. */
export interface SentinelUrl {
  readonly sentinels: readonly HostPort[]
  readonly name: string
  readonly db: number
  /** The master's password (userinfo); null: none. */
  readonly password: string | null
  readonly tls: boolean
}

const SENTINEL_RE = /^(rediss?)\+sentinel:\/\/(?:([^@/]*)@)?([^/@]+)\/([^/?#]+)(?:\/(\d{1,2}))?\/?$/

/** `host:port` (a bracketed IPv6 literal too) as an address, or null. */
export function parseHostPort(value: string): HostPort | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(value)
  if (!m) return null
  const port = Number(m[2])
  if (port < 1 || port > 65535) return null
  const host = (m[1] as string).replace(/^\[(.*)\]$/, '$1')
  return { host, port }
}

/** A `redis+sentinel://` URL's parts, a problem (never containing the value), or null when it is not one. */
export function parseSentinelUrl(value: string): SentinelUrl | { problem: string } | null {
  if (!/^rediss?\+sentinel:/.test(value)) return null
  const m = SENTINEL_RE.exec(value)
  if (!m)
    return { problem: 'is not a sentinel URL (redis+sentinel://[:password@]host:port,host:port/name[/db])' }
  const sentinels: HostPort[] = []
  for (const part of (m[3] as string).split(',')) {
    const hp = parseHostPort(part)
    if (!hp) return { problem: 'each sentinel must be host:port' }
    sentinels.push(hp)
  }
  let password: string | null = null
  if (m[2] !== undefined) {
    const colon = m[2].indexOf(':')
    try {
      password = decodeURIComponent(colon < 0 ? m[2] : m[2].slice(colon + 1)) || null
    } catch {
      return { problem: 'the password is not percent-encoded correctly' }
    }
  }
  let name: string
  try {
    name = decodeURIComponent(m[4] as string)
  } catch {
    return { problem: 'the master name is not percent-encoded correctly' }
  }
  return { sentinels, name, db: m[5] === undefined ? 0 : Number(m[5]), password, tls: m[1] === 'rediss' }
}

/** Why `value` is not a usable Redis URL, or null. The message never contains the value. */
export function redisUrlProblem(value: string): string | null {
  const sentinel = parseSentinelUrl(value)
  if (sentinel) return 'problem' in sentinel ? sentinel.problem : null
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'is not a URL (redis://[:password@]host[:port][/db], rediss://…, or redis+sentinel://…)'
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    return 'must be a redis:, rediss: or redis+sentinel: URL'
  }
  if (url.hostname === '') return 'must name a host'
  if (url.search !== '' || url.hash !== '') return 'must not have a query or fragment'
  const db = url.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d{1,2}$/.test(db)) return 'the path must be a database number (/0 … /15)'
  return null
}

/** The URL with any user name and password replaced by `***`, for logs. */
export function redactRedisUrl(value: string): string {
  const sentinel = parseSentinelUrl(value)
  if (sentinel) {
    return value.replace(/^([a-z+]+:\/\/)[^@/]*@/, '$1***@')
  }
  try {
    const url = new URL(value)
    if (url.username !== '' || url.password !== '') {
      url.username = ''
      url.password = ''
      return url.toString().replace('//', '//***@')
    }
    return url.toString()
  } catch {
    return '(invalid URL)'
  }
}
