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
 * - Counters sit behind {@link CounterStore} (src/store/counter-store.ts), the
 *   one interface a shared store would implement; the adapter below gives
 *   @fastify/rate-limit a store whose `child()` shares the counters, so all
 *   routes draw on one budget (its LocalStore would count each route apart).
 *
 * Register both before the routes they guard.
 */
import rateLimitPlugin from '@fastify/rate-limit'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { UpstreamAuth } from '../../credentials.js'
import { bearerJwtOf, type JwtVerdict, type ResolvedCredentials, sha256Hex } from '../../credentials.js'
import { GatewayError } from '../../errors.js'
import { findConsumer } from '../../policy/evaluate.js'
import { KnownGoodCredentials } from '../../policy/known-good.js'
import type { Policy, RateLimitPolicy } from '../../policy/types.js'
import { AuthFailureLimiter } from '../../store/auth-failure-limiter.js'
import { type CounterState, type CounterStore, LocalCounterStore } from '../../store/counter-store.js'
import type { RequestContext } from '../request-context.js'
import { resolveRequestCredentials } from './authenticate.js'
import { hasBody } from './get-body.js'
import '../request-context.js'

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

/** Whose budget a request draws on: the core's resolution (`request.gw`), or the fast path's before it applies it. */
export type RateSubject = Pick<RequestContext, 'consumer' | 'rateKey'>

/** The per-route `config.rateLimit` the core puts on every API route. */
export function apiRouteRateLimitConfig(): object {
  // Everything comes from the plugin-level options below; the route only opts in.
  return {}
}

/** The budget that applies: the consumer's own, else the gateway's default (pure). */
export function budgetOf(policy: Policy, subject: RateSubject | undefined): RateLimitPolicy {
  return subject?.consumer?.rateLimit ?? policy.gateway.rateLimit
}

/** The counter key: the core's rate key, else (no consumer resolved) the client address (pure). */
export function counterKeyOf(address: string, subject: RateSubject | undefined): string {
  return `rl:${subject?.rateKey ?? `address:${address}`}`
}

/** `budgetOf` for a request, under the policy it started with. */
export function rateLimitFor(
  request: FastifyRequest,
  fallback: Policy,
  subject: RateSubject | undefined = request.gw,
): RateLimitPolicy {
  const gw = request.gw as FastifyRequest['gw'] | undefined
  return budgetOf(gw?.policy ?? fallback, subject)
}

/** `counterKeyOf` for a request. */
export function rateKeyFor(request: FastifyRequest, subject: RateSubject | undefined = request.gw): string {
  return counterKeyOf(request.ip, subject)
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

/** How `RateLimiter.charge` went. */
export type ChargeOutcome =
  /** Counted, within budget: the RateLimit-* headers are set and the request is marked charged. */
  | 'allowed'
  /** Over budget: nothing set; the plugin's hook answers 429 (and counts the request once more). */
  | 'exceeded'
  /** The counter store failed: nothing set; the plugin's hook tries again and lets the request through. */
  | 'unavailable'

export interface ChargeOptions {
  /** Whose budget; default `request.gw`. */
  readonly subject?: RateSubject
}

/**
 * Counting outside the plugin's hook, for the cached-listing fast path
 * (src/http/listing/fast-path.ts), which answers before any route hook runs.
 * Same store, key and budget as the plugin; the plugin skips a request marked
 * charged (its `allowList`), so a request that goes on to the route after
 * being charged is counted once.
 */
export interface RateLimiter {
  charge(request: FastifyRequest, reply: FastifyReply, opts?: ChargeOptions): Promise<ChargeOutcome>
  /**
   * The same count for a request that has no Fastify request yet (the hit path
   * below Fastify, src/http/listing/hit-handler.ts): the charge of `subject`,
   * one round trip to a shared store. Nothing is set anywhere;
   * {@link RateLimiter.apply} applies the result to a request that goes on to
   * Fastify, so it is counted once.
   */
  count(address: string, policy: Policy, subject: RateSubject): Promise<Charged>
  /** Applies a {@link Charged} made by `count` as `charge` would have: headers and mark. */
  apply(request: FastifyRequest, reply: FastifyReply, charged: Charged): ChargeOutcome
}

/** What `RateLimiter.count` found. */
export type Charged =
  /** Within budget: the values of the RateLimit-* headers. */
  | {
      readonly outcome: 'allowed'
      readonly limit: number
      readonly remaining: number
      readonly reset: number
    }
  | { readonly outcome: 'exceeded' }
  /** The counter store failed. */
  | { readonly outcome: 'unavailable' }

/**
 * Registers @fastify/rate-limit (not global: routes opt in with
 * `config: { rateLimit: apiRouteRateLimitConfig() }`) in the `preHandler`
 * hook, after the core's `preValidation` has set `request.gw`.
 */
export async function registerRateLimits(app: FastifyInstance, opts: RateLimitOptions): Promise<RateLimiter> {
  const clock = opts.clock ?? Date.now
  const counters = opts.counterStore ?? new LocalCounterStore({ clock })
  const storeFailed = (err: unknown) =>
    app.log.warn({ err }, 'rate-limit counter store failed; request let through')
  await app.register(rateLimitPlugin, {
    global: false,
    hook: 'preHandler',
    enableDraftSpec: true,
    store: storeAdapter(counters, clock, storeFailed),
    // A failing (shared) store must not turn into an outage of the whole API.
    skipOnError: true,
    keyGenerator: (request: FastifyRequest) => rateKeyFor(request),
    allowList: (request: FastifyRequest) => request.gw?.rateCharged === true,
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
  const count = async (
    address: string,
    policy: Policy,
    subject: RateSubject | undefined,
  ): Promise<Charged> => {
    const { max, timeWindowMs } = budgetOf(policy, subject)
    let state: CounterState
    try {
      state = await counters.incr(counterKeyOf(address, subject), timeWindowMs)
    } catch {
      // Not logged here: the plugin's hook meets the same failure and logs it.
      return { outcome: 'unavailable' }
    }
    if (state.count > max) return { outcome: 'exceeded' }
    const reset = Math.ceil(Math.max(0, state.resetAt - clock()) / 1000)
    return { outcome: 'allowed', limit: max, remaining: max - state.count, reset }
  }
  const apply = (request: FastifyRequest, reply: FastifyReply, charged: Charged): ChargeOutcome => {
    switch (charged.outcome) {
      case 'unavailable':
        return 'unavailable'
      case 'exceeded':
        return 'exceeded'
      case 'allowed':
        // The headers and values the plugin sets on a request within its budget (enableDraftSpec).
        reply.header('ratelimit-limit', charged.limit)
        reply.header('ratelimit-remaining', charged.remaining)
        reply.header('ratelimit-reset', charged.reset)
        request.gw.rateCharged = true
        return 'allowed'
    }
  }
  return {
    async charge(request, reply, { subject } = {}) {
      const policy = (request.gw as FastifyRequest['gw'] | undefined)?.policy ?? opts.store.current
      return apply(request, reply, await count(request.ip, policy, subject ?? request.gw))
    },
    count,
    apply,
  }
}

export interface AuthFailureLimiterRegistration {
  store: { readonly current: Policy }
  /** Milliseconds since the epoch. Default `Date.now`. */
  clock?: () => number
  /** Where failures are counted. Default: a {@link LocalCounterStore} of 10000 addresses on `clock`. */
  counterStore?: CounterStore
  /**
   * Route patterns never charged nor blocked, so probes keep working for an address that
   * failed to authenticate (a developer's loopback). Default `['/healthz', '/readyz']`.
   */
  exemptRoutes?: readonly string[]
  /** Credentials Trisul accepted lately: proven, so neither charged nor refused. Default: a new one on `knownGoodClock`. */
  knownGood?: KnownGoodCredentials
  /** The clock of the default `knownGood` (the gateway's, which tests fake). Default `Date.now`. */
  knownGoodClock?: () => number
  /** Verifies JWT Bearer tokens (SPEC 16) before the credentials are resolved. Default: none. */
  jwt?: { verify(token: string): Promise<JwtVerdict> }
}

/** The failed-authentication budget, for code that answers a request itself (the fast paths, sync jobs). */
export interface AuthFailureGate {
  /** Whether Trisul accepted these credentials within `auth.knownGoodSeconds` (they are proven). */
  isKnownGood(username: string, tokenHash: string): boolean
  /**
   * Charges a request whose credentials are unproven (SPEC 13), unless a request with the same
   * credentials is in flight already and was charged: the same credentials are one guess, so a CRM's
   * burst of cold requests costs one unit, and N different guesses cost N. Throws the 429 of an
   * address past its budget. `key`: the credentials' identity (username and token digest); null
   * when there are none.
   */
  chargeUnproven(request: FastifyRequest, reply: FastifyReply, key: string | null): Promise<void>
  /**
   * Settles a charge a request left to later work (a sync job, whose listings are fetched after
   * its answer): `refused` keeps it, anything else takes it back; `accepted` also proves the credentials.
   */
  settle(address: string, auth: UpstreamAuth, verdict: 'accepted' | 'refused' | null): Promise<void>
  /**
   * Settles a request answered below Fastify with proven credentials, charged nothing (the write
   * path, src/http/writes/write-handler.ts), as the `onResponse` hook settles any other: what
   * Trisul said proves or disproves them, and a failure is counted against the address.
   */
  answered(
    address: string,
    auth: UpstreamAuth,
    statusCode: number,
    verdict: 'accepted' | 'refused' | null,
  ): Promise<void>
}

/**
 * Failed authentications per client address (SPEC 4, 13), charged before they can happen:
 *
 * (a) `onRequest`: credentials not yet known to be valid (every form but a gateway key that
 * matches or a Trisul token Trisul accepted within `auth.knownGoodSeconds`) charge the address's
 * budget as the request starts; past the budget the request gets `429 IPDR_GW_AUTH_RATE_LIMITED`
 * with `Retry-After` before any work. N parallel guesses against a budget of L let at most L
 * through, however fast they come. Proven credentials are neither charged nor refused: a guesser
 * behind a CRM's NAT does not lock the CRM out.
 * (b) `onResponse`: the charge stays when the credentials failed (a 401, or Trisul's invalid-token
 * envelope even when it is passed through untouched with `upstream.normalizeErrors: false`), and
 * is refunded otherwise: they proved valid (Trisul accepted them, which also makes them proven for
 * `auth.knownGoodSeconds`), or the request ended before they were tried (a 400), which is no failed
 * authentication. A sync job holds its request's charge until its own listing fetch answers ({@link AuthFailureGate.settle}).
 */
export function registerAuthFailureLimiter(
  app: FastifyInstance,
  opts: AuthFailureLimiterRegistration,
): AuthFailureGate {
  const clock = opts.clock ?? Date.now
  const limiter = new AuthFailureLimiter({
    store: opts.counterStore ?? new LocalCounterStore({ clock }),
    limit: () => opts.store.current.gateway.auth.failureLimit,
    clock,
  })
  const exempt = new Set(opts.exemptRoutes ?? ['/healthz', '/readyz'])
  const knownGood =
    opts.knownGood ??
    new KnownGoodCredentials({
      seconds: () => opts.store.current.gateway.auth.knownGoodSeconds,
      clock: opts.knownGoodClock ?? Date.now,
    })
  const isKnownGood = (username: string, tokenHash: string) => knownGood.has(username, tokenHash)

  const refuseFor = (reply: FastifyReply, retryAfterSeconds: number): never => {
    const retryAfter = String(retryAfterSeconds)
    reply.header('retry-after', retryAfter)
    throw new GatewayError('IPDR_GW_AUTH_RATE_LIMITED', undefined, { headers: { 'retry-after': retryAfter } })
  }
  // Unproven credentials with a request in flight: how many requests carry them, and whether the
  // first one's charge was admitted (the others ride on it; it is set before any await, so a burst
  // arriving together sees it).
  const inFlight = new Map<string, { requests: number; admitted: Promise<boolean> }>()
  const release = (key: string) => {
    const entry = inFlight.get(key)
    if (entry === undefined) return
    entry.requests -= 1
    if (entry.requests <= 0) inFlight.delete(key)
  }
  /** The request holds a place under `key` until its connection's answer is done or abandoned. */
  const hold = (reply: FastifyReply, key: string): (() => void) => {
    let held = true
    const once = () => {
      if (!held) return
      held = false
      release(key)
    }
    // 'close' comes for every answer, finished or abandoned (onResponse does not for a client gone).
    reply.raw.once('close', once)
    return once
  }
  const chargeUnproven: AuthFailureGate['chargeUnproven'] = async (request, reply, key) => {
    const gw = request.gw
    const riding = key === null ? undefined : inFlight.get(key)
    if (key !== null && riding !== undefined) {
      riding.requests += 1
      const leave = hold(reply, key)
      gw.credentialsKey = key
      if (await riding.admitted) return
      // The first was refused before it reached Trisul: this one is a guess of its own.
      leave()
      gw.credentialsKey = null
    }
    let admitted: (ok: boolean) => void = () => undefined
    if (key !== null && !inFlight.has(key)) {
      inFlight.set(key, { requests: 1, admitted: new Promise<boolean>((r) => (admitted = r)) })
      hold(reply, key)
      gw.credentialsKey = key
    }
    let charged: Awaited<ReturnType<AuthFailureLimiter['charge']>>
    try {
      charged = await limiter.charge(request.ip)
    } catch (err) {
      admitted(true)
      throw err
    }
    if (charged === null) {
      admitted(true)
      return
    }
    gw.authCharged = true
    admitted(!charged.blocked)
    if (charged.blocked) refuseFor(reply, charged.retryAfterSeconds)
  }
  const refund = async (address: string) => {
    try {
      await limiter.refund(address)
    } catch {
      // A refund lost to a failing store leaves the address charged for one window: the safe side.
    }
  }
  /** What an answer settles of the budget: the verdict proves or disproves the credentials, the charge stays or goes. */
  const judge = async (
    address: string,
    auth: UpstreamAuth | null,
    statusCode: number,
    verdict: 'accepted' | 'refused' | null,
    charge: { authCharged: boolean; chargeHeld: boolean; credentialsKey: string | null; exempt: boolean },
  ) => {
    if (auth && verdict === 'accepted') knownGood.accepted(auth.username, auth.tokenHash)
    if (auth && verdict === 'refused') knownGood.refused(auth.username, auth.tokenHash)
    const failed = statusCode === 401 || verdict === 'refused'
    if (charge.authCharged && !failed && !charge.chargeHeld) await refund(address)
    // A failure nothing charged for (a body without credentials, a route without an admission): counted now.
    if (failed && !charge.authCharged && charge.credentialsKey === null && !charge.exempt) {
      try {
        await limiter.recordFailure(address)
      } catch {
        // Counted locally or not at all while the store fails; the request is answered either way.
      }
    }
  }
  const gate: AuthFailureGate = {
    answered: (address, auth, statusCode, verdict) =>
      judge(address, auth, statusCode, verdict, {
        authCharged: false,
        chargeHeld: false,
        credentialsKey: null,
        exempt: false,
      }),
    isKnownGood,
    chargeUnproven,
    async settle(address, auth, verdict) {
      if (verdict === 'accepted') knownGood.accepted(auth.username, auth.tokenHash)
      if (verdict === 'refused') {
        knownGood.refused(auth.username, auth.tokenHash)
        return
      }
      await refund(address)
    },
  }

  app.addHook('onRequest', async (request, reply) => {
    if (exempt.has(request.routeOptions.url ?? '')) return
    const gw = request.gw
    // A JWT is verified first (SPEC 16): a failed one is a failed authentication, charged below.
    const jwt = opts.jwt && gw.policy.gateway.auth.jwt.issuers.length > 0 ? opts.jwt : undefined
    const token = jwt === undefined ? null : bearerJwtOf(request.raw.rawHeaders)
    const verdict = token === null || jwt === undefined ? undefined : await jwt.verify(token)
    // Resolved once from the headers; the admission step and the fast path use it (a body's form 4 comes later).
    const resolved = resolveRequestCredentials(gw.policy, request.raw.rawHeaders, undefined, (t) =>
      t === token ? verdict : undefined,
    )
    gw.credentials = resolved
    if (credentialsProven(gw.policy, resolved, isKnownGood)) return
    // No header credentials but a body: legacy body credentials, charged by the admission once read.
    if (!resolved.ok && resolved.code === 'IPDR_GW_MISSING_CREDENTIALS' && hasBody(request.raw)) return
    await gate.chargeUnproven(request, reply, resolved.ok ? credentialsKey(resolved) : null)
  })

  app.addHook('onResponse', async (request, reply) => {
    const gw = request.gw as FastifyRequest['gw'] | undefined
    if (!gw) return
    await judge(
      request.ip,
      request.upstreamAuth,
      reply.statusCode,
      trisulVerdict(request, reply.statusCode),
      {
        authCharged: gw.authCharged,
        chargeHeld: gw.chargeHeld,
        credentialsKey: gw.credentialsKey,
        exempt: exempt.has(request.routeOptions.url ?? ''),
      },
    )
  })
  return gate
}

/** The identity of resolved credentials for {@link AuthFailureGate.chargeUnproven}: username and token digest. */
export function credentialsKey(resolved: Extract<ResolvedCredentials, { ok: true }>): string {
  if (resolved.form === 'key') return `key\n${resolved.keyHash}`
  if (resolved.form === 'jwt')
    return `jwt\n${resolved.claims.issuer}\n${resolved.claims.subject ?? resolved.claims.clientId ?? ''}`
  return `${resolved.tokenHash ?? sha256Hex(resolved.token)}\n${resolved.username}`
}

/** Whether resolved header credentials are known to be valid without asking Trisul (pure but for the memo). */
function credentialsProven(
  policy: Policy,
  resolved: ResolvedCredentials,
  isKnownGood: (username: string, tokenHash: string) => boolean,
): boolean {
  if (!resolved.ok) return false
  if (resolved.form === 'key')
    return findConsumer(policy, { kind: 'key', keyHash: resolved.keyHash }) !== null
  // A JWT that verified is proven (its signature), whether or not a consumer takes it.
  if (resolved.form === 'jwt') return true
  return isKnownGood(resolved.username, resolved.tokenHash ?? sha256Hex(resolved.token))
}

/**
 * What Trisul said of a request's credentials: `accepted` when it answered them (a success on an
 * API or Query route, served fresh or from a listing those credentials fetched, or an envelope
 * other than an invalid token), `refused` on its invalid-token envelope, null when it was not asked.
 */
export function trisulVerdict(request: FastifyRequest, statusCode: number): 'accepted' | 'refused' | null {
  const gw = request.gw
  if (gw.trisulVerdict !== null) return gw.trisulVerdict
  // A sync job's 202 says nothing yet: its listings are fetched after the answer.
  if (statusCode < 400 && gw.operation !== null && gw.operation !== 'sync' && request.upstreamAuth !== null)
    return 'accepted'
  return null
}
