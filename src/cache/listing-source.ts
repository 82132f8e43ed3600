/**
 * Listings as the routes see them: a cached entry per (resource, upstream
 * username, token hash, context), filled from the upstream on a miss. Only a
 * JSON array becomes an entry; envelopes and failures are thrown, never cached,
 * and only upstream failures (not answers such as "Invalid API token") may be
 * covered by a stale entry.
 */

import type { UpstreamAuth } from '../credentials.js'
import { GatewayError } from '../errors.js'
import type { Policy } from '../policy/types.js'
import { RESOURCE_BY_NAME, type ResourceFacts } from '../resources.js'
import { type Coherence, LocalCoherence, type SettledWrite, type WriteTicket } from '../store/coherence.js'
import { type FillCoordinator, LOCAL_FILLS } from '../store/shared-fill.js'
import { inSpan, NO_TRACING, type Tracing } from '../telemetry/tracing.js'
import { upstreamBody } from '../upstream/body.js'
import type { UpstreamClient } from '../upstream/client.js'
import { failureOf, interpretResponse, outcomeOf } from '../upstream/interpret.js'
import { type ListingCache, type ListingKey, type LookupStatus, listingCacheKey } from './listing-cache.js'
import { buildListingEntryOffLoop, InvalidListingError, type ListingEntry } from './listing-entry.js'
import { INLINE_SCANNER, type ListingScanner } from './listing-scanner.js'
import { customerNames, namedMappings } from './mapping-names.js'
import { runStepsYielding } from './steps.js'

export interface Listing {
  readonly entry: ListingEntry
  readonly status: LookupStatus
}

export interface ListingSource {
  /** The listing of `facts` as `auth` sees it: cached, or fetched once for all who ask (single flight). */
  get(facts: ResourceFacts, auth: UpstreamAuth, policy: Policy, requestId: string): Promise<Listing>
  /**
   * Invalidates the context's listings here and on every instance; resolves once none can serve them
   * as they were. With `write`, its change is applied to them instead where it can be (SPEC 19).
   */
  invalidate(context: string, write?: SettledWrite): Promise<void>
  /** A write of `keys` (UserIDs) is about to be sent (src/store/change-order.ts). */
  beginWrite(context: string, keys: readonly string[]): WriteTicket
  /** The write was not sent. */
  abandonWrite(ticket: WriteTicket): void
  /**
   * What the cache holds, fresh, of the record(s) a write to `userId` touches,
   * for the audit's `before`: the customer, or the customer's mappings (those
   * with `selector` as `ipsubnet` when given). Null when not cached, or when
   * the listing's index is still being built (a write never waits for it).
   */
  cachedBefore(auth: UpstreamAuth, facts: ResourceFacts, userId: string, selector?: string): unknown
  /** The listing fetched now, past the cache (a sync job plans against it, SPEC 10); indexed. */
  fresh(facts: ResourceFacts, auth: UpstreamAuth, policy: Policy, requestId: string): Promise<ListingEntry>
}

/** Per customers entry, its `ipdr_customer_id` → UserID map, made once for every mapping fill it serves. */
const NAMES = new WeakMap<ListingEntry, Map<string, string>>()

/** Entries built from bytes another instance fetched (one fill for all): counted `coalesced`, not `miss`. */
const adoptedEntries = new WeakSet<ListingEntry>()

/** Whether another instance fetched the bytes of `entry` (for `ListingCache`'s `adopted`). */
export function wasAdopted(entry: ListingEntry): boolean {
  return adoptedEntries.has(entry)
}

/** The cache key of a resource's listing as fetched with `auth`. */
export function listingKey(facts: ResourceFacts, auth: UpstreamAuth): ListingKey {
  return { resource: facts.name, username: auth.username, tokenHash: auth.tokenHash, context: auth.context }
}

export interface CachedListingsOptions {
  readonly cache: ListingCache
  readonly upstream: UpstreamClient
  readonly policy: () => Policy
  /** How invalidations reach the other instances. Default: this instance only. */
  readonly coherence?: Coherence
  /** Who fetches a missing listing. Default: this instance. */
  readonly fills?: FillCoordinator
  /** Where listing bytes are checked (a worker pool for large ones). Default: inline. */
  readonly scanner?: ListingScanner
  /** Spans of cache fills (SPEC 18), below the trace of the request that started each. Default: none. */
  readonly tracing?: Tracing
  /** Seconds from the listing's last upstream byte (here or in Redis) to its entry (`ipdr_gateway_cache_fill_duration_seconds`). */
  readonly onFilled?: (resource: ResourceFacts['name'], seconds: number) => void
}

export class CachedListings implements ListingSource {
  readonly #cache: ListingCache
  readonly #upstream: UpstreamClient
  readonly #coherence: Coherence
  readonly #fills: FillCoordinator
  readonly #onFilled: CachedListingsOptions['onFilled']
  readonly #scanner: ListingScanner
  readonly #tracing: Tracing

  constructor(opts: CachedListingsOptions) {
    this.#cache = opts.cache
    this.#upstream = opts.upstream
    this.#coherence = opts.coherence ?? new LocalCoherence(opts.cache)
    this.#fills = opts.fills ?? LOCAL_FILLS
    this.#onFilled = opts.onFilled
    this.#scanner = opts.scanner ?? INLINE_SCANNER
    this.#tracing = opts.tracing ?? NO_TRACING
  }

  get(facts: ResourceFacts, auth: UpstreamAuth, policy: Policy, requestId: string): Promise<Listing> {
    const key = listingKey(facts, auth)
    // The fill runs under the trace of the request that started it (the others wait on it).
    return this.#cache.get(key, () =>
      inSpan(
        this.#tracing.of(requestId),
        'cache fill',
        () =>
          this.#fills.fill(
            listingCacheKey(key),
            key.context,
            () => this.#fetch(facts, auth, policy, requestId, true),
            async (raw) => {
              const built = await this.#build(raw, facts)
              adoptedEntries.add(built)
              return built
            },
          ),
        { 'ipdr.resource': facts.name },
      ),
    )
  }

  invalidate(context: string, write?: SettledWrite): Promise<void> {
    return this.#coherence.invalidate(context, write)
  }

  beginWrite(context: string, keys: readonly string[]): WriteTicket {
    return this.#coherence.beginWrite(context, keys)
  }

  abandonWrite(ticket: WriteTicket): void {
    this.#coherence.abandonWrite(ticket)
  }

  cachedBefore(auth: UpstreamAuth, facts: ResourceFacts, userId: string, selector?: string): unknown {
    const indexed = (f: ResourceFacts) => {
      const entry = this.#cache.peekFresh(listingKey(f, auth))
      return entry === undefined || entry.indexPending ? null : entry
    }
    const customers = indexed(RESOURCE_BY_NAME.customers)
    const pos = customers?.lookup(userId)[0]
    if (customers === null || pos === undefined) return null
    const customer = customers.record(pos)
    if (facts.name === 'customers') return customer
    const mappings = indexed(facts)
    const id = customer.id
    if (mappings === null || (typeof id !== 'number' && typeof id !== 'string')) return null
    const records = mappings.lookup(id).map((p) => mappings.record(p))
    return selector === undefined ? records : records.filter((r) => r[facts.selectorField ?? ''] === selector)
  }

  async fresh(
    facts: ResourceFacts,
    auth: UpstreamAuth,
    policy: Policy,
    requestId: string,
  ): Promise<ListingEntry> {
    // A sync plans mappings by ipdr_customer_id: their UserIDs are not needed (nor another fetch).
    const { value } = await this.#fetch(facts, auth, policy, requestId, false)
    await value.whenIndexed()
    return value
  }

  /** The entry of `raw`, timed from its last byte (or `started`) to ready; `raw` is moved (use the entry's). */
  async #build(raw: Buffer, facts: ResourceFacts, started = performance.now()): Promise<ListingEntry> {
    const entry = await buildListingEntryOffLoop(this.#scanner, raw, facts)
    this.#onFilled?.(facts.name, (performance.now() - started) / 1000)
    return entry
  }

  /**
   * A mapping listing with each record's customer UserID added (SPEC 17,
   * src/cache/mapping-names.ts), from the customers listing of the same
   * credentials (cached, or fetched once for both); its failure is the
   * mapping listing's. Built from `raw`, the upstream bytes as checked.
   */
  async #named(raw: Buffer, auth: UpstreamAuth, policy: Policy, requestId: string): Promise<ListingEntry> {
    const started = performance.now()
    const facts = RESOURCE_BY_NAME.mappings
    const upstream = await buildListingEntryOffLoop(this.#scanner, raw, facts)
    const customers = (await this.get(RESOURCE_BY_NAME.customers, auth, policy, requestId)).entry
    let names = NAMES.get(customers)
    if (names === undefined) {
      names = await runStepsYielding(customerNames(customers))
      NAMES.set(customers, names)
    }
    const named = await runStepsYielding(namedMappings(upstream, names))
    return this.#build(named, facts, started)
  }

  /** Fetches and checks the listing; the raw bytes go with the entry, for other instances to share. */
  async #fetch(
    facts: ResourceFacts,
    auth: UpstreamAuth,
    policy: Policy,
    requestId: string,
    /** Mappings: add each record's customer UserID (the cached listing's form, SPEC 17). */
    named: boolean,
  ): Promise<{ raw: Buffer; value: ListingEntry }> {
    const res = await this.#upstream.request({
      method: 'GET',
      path: facts.path,
      resource: facts.name,
      body: upstreamBody(facts, policy.gateway.upstream.dialect, auth),
      requestId,
      retryOnConnectError: true,
      maxBytes: policy.gateway.upstream.maxListingBytes,
    })
    const meaning = interpretResponse(res, 'array')
    if (meaning.kind === 'array') {
      let entry: ListingEntry
      try {
        entry =
          named && facts.name === 'mappings'
            ? await this.#named(meaning.raw, auth, policy, requestId)
            : await this.#build(meaning.raw, facts)
      } catch (err) {
        if (!(err instanceof InvalidListingError) && err instanceof GatewayError) {
          // The customers listing's own failure (only a mapping fill asks for it), reported where it happened.
          this.#upstream.report('GET', facts.name, 'ok', res.seconds)
          throw err
        }
        this.#upstream.report('GET', facts.name, 'invalid_response', res.seconds)
        if (err instanceof InvalidListingError) throw err
        throw new GatewayError('IPDR_GW_UPSTREAM_BAD_RESPONSE', undefined, { cause: err })
      }
      this.#upstream.report('GET', facts.name, 'ok', res.seconds)
      return { raw: entry.raw, value: entry }
    }
    this.#upstream.report('GET', facts.name, outcomeOf(meaning), res.seconds)
    throw failureOf(meaning, res)
  }
}

/** Upstream failures that a stale entry may cover; an envelope is an answer and never is. */
export function staleMayCover(err: unknown): boolean {
  if (!(err instanceof GatewayError)) return true
  return err.statusCode >= 500
}
