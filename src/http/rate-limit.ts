/**
 * Rate limits (SPEC 4, 3.6) on @fastify/rate-limit, and the per-address limiter
 * of failed authentications.
 *
 * - The budget is read from the policy in force for each request, so a reload
 *   applies at once; the counters live in one store created here, so they
 *   survive reloads.
 * - The key is `request.gw.rateKey` set by the core: `consumer:NAME` (a named
 *   consumer's budget, shared by all its credentials and all API routes) or
 *   `default:USERNAME` (the default consumer, per upstream username).
 * - Counters sit behind {@link CounterStore} (src/policy/counter-store.ts), the
 *   one interface a shared store would implement; the adapter below gives
 *   @fastify/rate-limit a store whose `child()` shares the counters, so all
 *   routes draw on one budget (its LocalStore would count each route apart).
 *
 * Register both before the routes they guard.
 */
import rateLimitPlugin from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { GatewayError } from '../errors.js'
import { AuthFailureLimiter } from '../policy/auth-failure-limiter.js'
import { type CounterStore, LocalCounterStore } from '../policy/counter-store.js'
import type { Policy, RateLimitPolicy } from '../policy/types.js'
import './request-context.js'

export interface RateLimitOptions {
  /** The policy store (or anything with the policy in force as `current`). */
  store: { readonly current: Policy }
  /** Called with the consumer name (a metric label) for every 429. Default: nothing. */
  onLimited?: (consumer: string) => void
  /** Where the counters live. Default: a {@link LocalCounterStore} of 10000 keys on `clock`. */
  counterStore?: CounterStore
  /** Milliseconds since the epoch, for `Reset`/`Retry-After`. Default `Date.now`; must match the store's clock. */
  clock?: () => number
}

/** The per-route `config.rateLimit` the core puts on every API route. */
export function apiRouteRateLimitConfig(): object {
  // Everything comes from the plugin-level options below; the route only opts in.
  return {}
}

/** The budget that applies: the consumer's own, else the gateway's default. */
export function rateLimitFor(request: FastifyRequest, fallback: Policy): RateLimitPolicy {
  const gw = request.gw as FastifyRequest['gw'] | undefined
  return gw?.consumer?.rateLimit ?? (gw?.policy ?? fallback).gateway.rateLimit
}

/** The counter key: the core's rate key, else (no consumer resolved) the client address. */
export function rateKeyFor(request: FastifyRequest): string {
  const gw = request.gw as FastifyRequest['gw'] | undefined
  return `rl:${gw?.rateKey ?? `address:${request.ip}`}`
}

type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void

/** Builds the store class @fastify/rate-limit instantiates, bound to `counters`. */
function storeAdapter(counters: CounterStore, clock: () => number, onError: (err: unknown) => void) {
  const failed = (callback: IncrCallback) => (err: unknown) => {
    onError(err)
    callback(err instanceof Error ? err : new Error(String(err)))
  }
  return class CounterStoreAdapter {
    incr(key: string, callback: IncrCallback, timeWindow: number): void {
      counters
        .incr(key, timeWindow)
        .then(
          (s) => callback(null, { current: s.count, ttl: Math.max(0, s.resetAt - clock()) }),
          failed(callback),
        )
    }

    read(key: string, callback: IncrCallback): void {
      counters
        .get(key)
        .then(
          (s) =>
            callback(
              null,
              s ? { current: s.count, ttl: Math.max(0, s.resetAt - clock()) } : { current: 0, ttl: 0 },
            ),
          failed(callback),
        )
    }

    /** Every route shares the same counters: a budget is per consumer, not per route. */
    child(): CounterStoreAdapter {
      return this
    }
  }
}

/**
 * Registers @fastify/rate-limit (not global: routes opt in with
 * `config: { rateLimit: apiRouteRateLimitConfig() }`) in the `preHandler`
 * hook, after the core's `preValidation` has set `request.gw`.
 */
export async function registerRateLimits(app: FastifyInstance, opts: RateLimitOptions): Promise<void> {
  const clock = opts.clock ?? Date.now
  const counters = opts.counterStore ?? new LocalCounterStore({ clock })
  await app.register(rateLimitPlugin, {
    global: false,
    hook: 'preHandler',
    enableDraftSpec: true,
    store: storeAdapter(counters, clock, (err) =>
      app.log.warn({ err }, 'rate-limit counter store failed; request let through'),
    ),
    // A failing (shared) store must not turn into an outage of the whole API.
    skipOnError: true,
    keyGenerator: rateKeyFor,
    max: (request: FastifyRequest) => rateLimitFor(request, opts.store.current).max,
    timeWindow: (request: FastifyRequest) => rateLimitFor(request, opts.store.current).timeWindowMs,
    onExceeded: (request: FastifyRequest) => {
      const gw = request.gw as FastifyRequest['gw'] | undefined
      opts.onLimited?.(gw?.consumerName ?? 'unknown')
    },
    errorResponseBuilder: (_request, context) => {
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000))
      // The plugin has set Retry-After and the RateLimit-* headers on the reply;
      // the headers here serve error handlers that apply GatewayError.headers.
      return new GatewayError('IPDR_GW_RATE_LIMITED', `Rate limit exceeded, retry in ${context.after}`, {
        headers: { 'retry-after': String(seconds) },
      })
    },
  })
}

export interface AuthFailureLimiterRegistration {
  store: { readonly current: Policy }
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number
  /** Where failures are counted. Default: a {@link LocalCounterStore} of 10000 addresses on `clock`. */
  counterStore?: CounterStore
  /**
   * Route patterns never blocked, so probes keep working for an address that
   * failed to authenticate (a developer's loopback). Default `['/healthz', '/readyz']`.
   */
  exemptRoutes?: readonly string[]
}

/**
 * (a) `onRequest`: a client address that used up its failed authentications
 * gets `429 IPDR_GW_AUTH_RATE_LIMITED` with `Retry-After`, before any work;
 * (b) `onResponse`: every 401 counts as a failure of `request.ip`.
 */
export function registerAuthFailureLimiter(app: FastifyInstance, opts: AuthFailureLimiterRegistration): void {
  const clock = opts.clock ?? Date.now
  const limiter = new AuthFailureLimiter({
    store: opts.counterStore ?? new LocalCounterStore({ clock }),
    limit: () => opts.store.current.gateway.auth.failureLimit,
    clock,
  })
  const exempt = new Set(opts.exemptRoutes ?? ['/healthz', '/readyz'])

  app.addHook('onRequest', async (request, reply) => {
    if (exempt.has(request.routeOptions.url ?? '')) return
    const state = await limiter.isBlocked(request.ip)
    if (!state.blocked) return
    const retryAfter = String(state.retryAfterSeconds)
    reply.header('retry-after', retryAfter)
    throw new GatewayError('IPDR_GW_AUTH_RATE_LIMITED', undefined, { headers: { 'retry-after': retryAfter } })
  })

  app.addHook('onResponse', async (request, reply) => {
    if (reply.statusCode === 401) await limiter.recordFailure(request.ip)
  })
}
