/**
 * The Redis URL of `store.redis.url`, `--redis` and `REDIS_URL`: checked once
 * (never echoing it: it may hold a password) and turned into what may be shown
 * in logs. Pure.
 */

/** Why `value` is not a usable Redis URL, or null. The message never contains the value. */
export function redisUrlProblem(value: string): string | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return 'is not a URL (redis://[:password@]host[:port][/db] or rediss://…)'
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'must be a redis: or rediss: URL'
  if (url.hostname === '') return 'must name a host'
  if (url.search !== '' || url.hash !== '') return 'must not have a query or fragment'
  const db = url.pathname.replace(/^\//, '')
  if (db !== '' && !/^\d{1,2}$/.test(db)) return 'the path must be a database number (/0 … /15)'
  return null
}

/** The URL with any user name and password replaced by `***`, for logs. */
export function redactRedisUrl(value: string): string {
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
