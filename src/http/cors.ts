/**
 * CORS for browser-based CRMs (SPEC 3.6): off unless `cors.origins` lists
 * origins. The origins are read from the policy in force for each request
 * (a delegator), so a reload applies at once. Preflights are answered in
 * `onRequest`, before authentication: browsers send them without credentials.
 */
import cors, { type FastifyCorsOptions } from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import type { Policy } from '../policy/types.js'

/** Request headers a browser client may send. */
export const CORS_ALLOWED_HEADERS = [
  'Authorization',
  'X-Trisul-Username',
  'X-Trisul-Context',
  'If-None-Match',
  'Content-Type',
  'X-Request-Id',
] as const

/** Response headers a browser client may read. */
export const CORS_EXPOSED_HEADERS = [
  'X-Cache',
  'ETag',
  'X-Total-Count',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Retry-After',
  'X-Request-Id',
] as const

export const CORS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

/**
 * What @fastify/cors puts in `Vary` on every answer, with an `Origin` header or
 * without, CORS on or off: its origin option here is a function, never static
 * (the Fetch standard's "CORS protocol and HTTP caches").
 */
export const CORS_VARY = 'Origin'

/** How long browsers may cache a preflight answer, in seconds. */
export const CORS_MAX_AGE_SECONDS = 600

export interface CorsRegistration {
  /** The policy store (or anything with the policy in force as `current`). */
  store: { readonly current: Policy }
}

/** The @fastify/cors options for the origins of `policy` (pure). */
export function corsOptionsFor(policy: Policy): FastifyCorsOptions {
  const origins = policy.gateway.cors.origins
  if (origins.length === 0) return { origin: false }
  return {
    origin: origins.includes('*') ? '*' : [...origins],
    methods: [...CORS_METHODS],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: CORS_MAX_AGE_SECONDS,
    // Credentials travel in the Authorization header, never in cookies.
    credentials: false,
  }
}

/**
 * Registers @fastify/cors with static options, normalized once by the plugin;
 * only the origin check reads the policy in force, so a reload still applies
 * at once. (A per-request `delegator` made and normalized a new options
 * object for every request, CORS on or off: ~15 µs of a ~75 µs cached GET.)
 * A request without an Origin header is not a CORS request: no CORS headers.
 */
export async function registerCors(app: FastifyInstance, opts: CorsRegistration): Promise<void> {
  await app.register(cors, {
    hideOptionsRoute: true,
    methods: [...CORS_METHODS],
    allowedHeaders: [...CORS_ALLOWED_HEADERS],
    exposedHeaders: [...CORS_EXPOSED_HEADERS],
    maxAge: CORS_MAX_AGE_SECONDS,
    credentials: false,
    origin: (origin, callback) => {
      const origins = opts.store.current.gateway.cors.origins
      if (origins.length === 0 || origin === undefined) callback(null, false)
      else if (origins.includes('*')) callback(null, '*')
      else callback(null, origins.includes(origin) ? origin : false)
    },
  })
}
