/**
 * Replies served from a cached listing (shared/SPEC.md 3.2, 3.4): the plain
 * listing (the upstream bytes as they are, or their memoized gzip/brotli
 * variant), filtered and paged listings, and single reads. Each carries the
 * `X-Cache` of the listing it came from, an ETag and `Cache-Control: private`;
 * `If-None-Match` gets `304`.
 */

import type { FastifyReply, FastifyRequest } from 'fastify'
import { type Disclosed, disclosedAt, disclosedIds, disclosedListing } from '../../audit/disclosure.js'
import { auditedFields, type WriteAudit } from '../../audit/write-audit.js'
import { type ContentEncoding, ifNoneMatchMatches, negotiateEncoding } from '../../cache/encoding.js'
import { deriveEtag, strongEtag } from '../../cache/etag.js'
import type { ListingRepresentation } from '../../cache/listing-body.js'
import type { ListingCache, LookupStatus } from '../../cache/listing-cache.js'
import type { ListingEntry } from '../../cache/listing-entry.js'
import { applyListingQueryYielding, parseListingQuery } from '../../cache/listing-query.js'
import { type Listing, type ListingSource, listingKey } from '../../cache/listing-source.js'
import { redactRecord } from '../../cache/redaction.js'
import type { UpstreamAuth } from '../../credentials.js'
import { GatewayError } from '../../errors.js'
import type { ConsumerPolicy } from '../../policy/types.js'
import { RESOURCE_BY_NAME, type ResourceFacts } from '../../resources.js'
import type { RequestTrace } from '../../telemetry/tracing.js'
import { CORS_VARY } from '../cors.js'

const JSON_TYPE = 'application/json; charset=utf-8'

const VARY = 'Accept-Encoding, Authorization, X-Trisul-Username, X-Trisul-Context'
/** The `Vary` of a hit without CORS headers: the plugin's `Origin` (on every answer), then ours. */
export const HIT_VARY = `${CORS_VARY}, ${VARY}`

function xCache(status: LookupStatus): string {
  // A request that waited on another's fetch is a MISS (shared/SPEC.md 3.4).
  return status === 'hit' ? 'HIT' : status === 'stale' ? 'STALE' : 'MISS'
}

function cacheHeaders(reply: FastifyReply, status: LookupStatus): void {
  reply.header('x-cache', xCache(status))
  reply.header('cache-control', 'private')
  // Appended, not set: CORS may already have put `Origin` there.
  const vary = reply.getHeader('vary')
  reply.header('vary', vary ? `${String(vary)}, ${VARY}` : VARY)
}

const hitBlocks = new WeakMap<ListingRepresentation, Map<ContentEncoding, readonly string[]>>()

/**
 * The headers `sendEncoded` gives a `hit` of `rep` in `encoding` (no CORS, no
 * `If-None-Match`) after `Vary` ({@link HIT_VARY}, which the CORS hook set
 * first), in its order and with Fastify's content-length, as a flat
 * name/value list for `writeHead`: made once per cache entry and coding, for
 * the hit path below Fastify (src/http/listing/hit-handler.ts).
 */
export function hitHeaderBlock(
  rep: ListingRepresentation,
  encoding: ContentEncoding,
  body: Buffer,
): readonly string[] {
  let blocks = hitBlocks.get(rep)
  if (blocks === undefined) {
    blocks = new Map()
    hitBlocks.set(rep, blocks)
  }
  let block = blocks.get(encoding)
  if (block === undefined) {
    block = [
      'x-cache',
      xCache('hit'),
      'cache-control',
      'private',
      'etag',
      rep.etagFor(encoding),
      ...(encoding === 'identity' ? [] : ['content-encoding', encoding]),
      'content-type',
      JSON_TYPE,
      'content-length',
      String(body.length),
    ]
    blocks.set(encoding, block)
  }
  return block
}

/** Who an answer disclosed records to (an access line's `requestId`, `consumer`, `client`, `trisulUser`, `context`). */
export interface Reader {
  readonly requestId: string
  /** The request's trace (SPEC 18); its id is made only when a line is written. */
  readonly trace?: RequestTrace | null
  readonly consumerName: string
  readonly client: string
  readonly auth: UpstreamAuth
  readonly redact: readonly string[]
}

/**
 * The access line of an answer that disclosed records (SPEC 14): one function every path that
 * answers from a listing calls — the hit handler below Fastify, the `onRequest` fast path and the
 * routes — after the answer is sent. Not awaited: the line is written with the trail's next group,
 * and working out which records a plain listing holds is done once per entry, off the answer.
 */
export function recordAccess(
  audit: WriteAudit,
  reader: Reader,
  resource: string,
  operation: string,
  query: Readonly<Record<string, unknown>>,
  disclosed: Disclosed | Promise<Disclosed>,
): void {
  if (!audit.recordsReads) return
  void audit.access({
    requestId: reader.requestId,
    ...(reader.trace == null ? {} : { traceId: reader.trace.traceId }),
    consumer: reader.consumerName,
    client: reader.client,
    trisulUser: reader.auth.username,
    context: reader.auth.context,
    resource,
    operation,
    query,
    status: 200,
    disclosed,
    redacted: reader.redact,
  })
}

/** The access line of a plain listing answered whole (every record of `entry`). */
export function recordListingAccess(audit: WriteAudit, reader: Reader, entry: ListingEntry): void {
  if (!audit.recordsReads) return
  recordAccess(audit, reader, entry.resource, 'list', {}, disclosedListing(entry, audit.readUserIds))
}

/** The reader of a request that went through the route's admission. */
export function readerOf(request: FastifyRequest): Reader | null {
  const auth = request.upstreamAuth
  if (!auth) return null
  return {
    requestId: String(request.id),
    trace: request.gw.trace,
    consumerName: request.gw.consumerName,
    client: request.ip,
    auth,
    redact: request.gw.consumer?.redact ?? [],
  }
}

function notModified(request: FastifyRequest, reply: FastifyReply, etag: string): boolean {
  reply.header('etag', etag)
  if (!ifNoneMatchMatches(request.headers['if-none-match'], etag)) return false
  reply.code(304).send()
  return true
}

/** Sends `rep`; false when the answer was a `304` (no record disclosed). */
async function sendRepresentation(
  request: FastifyRequest,
  reply: FastifyReply,
  rep: ListingRepresentation,
  status: LookupStatus,
): Promise<boolean> {
  const encoding = negotiateEncoding(request.headers['accept-encoding'])
  const body = rep.peekEncoded(encoding) ?? (await rep.encoded(encoding))
  return sendEncoded(request, reply, rep, status, encoding, body)
}

/** A cached plain listing that can be sent at once: its entry, its representation, the coding, the bytes. */
export interface ReadyHit {
  readonly entry: ListingEntry
  readonly rep: ListingRepresentation
  readonly encoding: ContentEncoding
  readonly body: Buffer
}

/**
 * The plain listing a request resolved to `decided` may be answered with now,
 * without waiting: fresh in the cache (`peekFresh`, which also asks the
 * coherence lease), the consumer's redacted view made, and the coding the
 * client accepts made. Undefined: the route's to fill or make. The one check
 * of both hit paths, the `onRequest` fast path and the handler below Fastify.
 */
export function readyHit(
  cache: ListingCache,
  facts: ResourceFacts,
  decided: { readonly auth: UpstreamAuth; readonly consumer: ConsumerPolicy | null },
  acceptEncoding: string | undefined,
): ReadyHit | undefined {
  const entry = cache.peekFresh(listingKey(facts, decided.auth))
  const rep = entry?.peekRedacted(decided.consumer?.redact ?? [])
  if (entry === undefined || rep === undefined) return undefined
  const encoding = negotiateEncoding(acceptEncoding)
  const body = rep.peekEncoded(encoding)
  return body === undefined ? undefined : { entry, rep, encoding, body }
}

/** Sends a {@link ReadyHit} as `sendListing` would have sent it; false when it was a `304`. */
export function sendHit(request: FastifyRequest, reply: FastifyReply, hit: ReadyHit): boolean {
  return sendEncoded(request, reply, hit.rep, 'hit', hit.encoding, hit.body)
}

function sendEncoded(
  request: FastifyRequest,
  reply: FastifyReply,
  rep: ListingRepresentation,
  status: LookupStatus,
  encoding: ContentEncoding,
  body: Buffer,
): boolean {
  cacheHeaders(reply, status)
  if (notModified(request, reply, rep.etagFor(encoding))) return false
  if (encoding !== 'identity') reply.header('content-encoding', encoding)
  reply.type(JSON_TYPE).send(body)
  return true
}

/** Sends `body`; false when the answer was a `304`. */
function sendJson(
  request: FastifyRequest,
  reply: FastifyReply,
  body: Buffer,
  etag = strongEtag(body),
): boolean {
  if (notModified(request, reply, etag)) return false
  reply.type(JSON_TYPE).send(body)
  return true
}

function redactFields(request: FastifyRequest): readonly string[] {
  return request.gw.consumer?.redact ?? []
}

export async function sendListing(
  request: FastifyRequest,
  reply: FastifyReply,
  facts: ResourceFacts,
  listings: ListingSource,
  audit: WriteAudit,
): Promise<void> {
  const raw = request.query as Record<string, unknown>
  // Check the query before touching the upstream: a bad one costs nothing.
  const parsed = parseListingQuery(facts, raw)
  if (!parsed.ok) throw new GatewayError('IPDR_GW_INVALID_QUERY', parsed.message)
  const { entry, status } = await listingOf(listings, request, facts)
  const redact = redactFields(request)
  const reader = readerOf(request)
  if (parsed.query.plain) {
    const sent = await sendRepresentation(request, reply, await entry.redactedInTurns(redact), status)
    if (sent && reader) recordListingAccess(audit, reader, entry)
    return
  }
  cacheHeaders(reply, status)
  await entry.whenIndexed()
  // A turn for other requests every few ms: a filter over a million records takes tens of ms (SPEC 9).
  const result = await applyListingQueryYielding(entry, parsed.query)
  reply.header('x-total-count', String(result.total))
  // The page is a function of the listing, the query and the redaction: no need to hash its bytes.
  const etag = deriveEtag(entry.etag, [parsed.query.canonical, ...redact])
  if (notModified(request, reply, etag)) return
  reply.type(JSON_TYPE).send(result.body(redact))
  if (reader && audit.recordsReads) {
    // An IP-at-time lookup (`?ip=&at=`) is a read of who had the address; filters and pages are lists.
    const operation = raw.ip !== undefined ? 'read' : 'list'
    const disclosed = disclosedAt(entry, result.positions, audit.readUserIds)
    recordAccess(audit, reader, facts.name, operation, auditedFields(raw), disclosed)
  }
}

export async function sendRead(
  request: FastifyRequest,
  reply: FastifyReply,
  facts: ResourceFacts,
  listings: ListingSource,
  audit: WriteAudit,
): Promise<void> {
  const userId = (request.params as { UserID: string }).UserID
  const redact = redactFields(request)
  const reader = readerOf(request)
  // A single read discloses one customer (and a mapping read, that customer's mappings): named by UserID.
  const recordRead = (count: number) => {
    if (!reader || !audit.recordsReads) return
    const named = disclosedIds([userId], audit.readUserIds).then((d) => ({ ...d, count }))
    recordAccess(audit, reader, facts.name, 'read', { UserID: userId }, named)
  }
  if (facts.name === 'customers') {
    const { entry, status } = await listingOf(listings, request, facts)
    cacheHeaders(reply, status)
    await entry.whenIndexed()
    const pos = entry.lookup(userId)[0]
    if (pos === undefined) throw new GatewayError('IPDR_GW_RECORD_NOT_FOUND')
    const body =
      redact.length > 0
        ? Buffer.from(JSON.stringify(redactRecord(entry.record(pos), redact)))
        : entry.recordRaw(pos)
    if (sendJson(request, reply, body)) recordRead(1)
    return
  }
  // Mappings carry ipdr_customer_id, not UserID: resolve it through the
  // customers listing of the same credentials, then answer that customer's mappings.
  const customers = await listingOf(listings, request, RESOURCE_BY_NAME.customers)
  await customers.entry.whenIndexed()
  const pos = customers.entry.lookup(userId)[0]
  if (pos === undefined) throw new GatewayError('IPDR_GW_RECORD_NOT_FOUND')
  const id = customers.entry.record(pos).id
  const { entry, status } = await listingOf(listings, request, facts)
  cacheHeaders(reply, status)
  await entry.whenIndexed()
  const positions = typeof id === 'number' || typeof id === 'string' ? entry.lookup(id) : []
  const body =
    redact.length > 0
      ? Buffer.from(JSON.stringify(positions.map((p) => redactRecord(entry.record(p), redact))))
      : entry.recordsBody(positions)
  if (sendJson(request, reply, body)) recordRead(positions.length)
}

/** The listing a request reads, with its credentials and under its policy. */
function listingOf(listings: ListingSource, request: FastifyRequest, facts: ResourceFacts): Promise<Listing> {
  const auth = request.upstreamAuth
  if (!auth) return Promise.reject(new GatewayError('IPDR_GW_MISSING_CREDENTIALS'))
  return listings.get(facts, auth, request.gw.policy, String(request.id))
}
