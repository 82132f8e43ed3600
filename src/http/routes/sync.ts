/**
 * CRM sync routes (shared/SPEC.md 10): `POST /sync/customers` starts a job
 * (202 + Location), `GET /sync/jobs/{id}` reads it, `DELETE` cancels it. The
 * job plans against listings fetched for it (never the cache), then with
 * `mode=apply` sends the writes through the same forwarder as single writes
 * (audit, invalidation, no retry). The pure parts live in src/sync/.
 *
 * The input is received as bytes (up to `sync.maxBodyBytes`, once the request
 * is admitted for sync in `onRequest`) and read record by record before the
 * job starts (SPEC 13): a JSON array through the listing byte scanner, CSV
 * through csv-parse's streaming API, in steps; malformed input is a 400.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { ListingScanner } from '../../cache/listing-scanner.js'
import type { UpstreamAuth } from '../../credentials.js'
import { GatewayError } from '../../errors.js'
import { evaluate } from '../../policy/evaluate.js'
import type { Policy } from '../../policy/types.js'
import { type Operation, type PolicyOperation, RESOURCE_BY_NAME, type ResourceName } from '../../resources.js'
import { type CheckedInput, checkSyncInput, SyncInputError, TooManyRecordsError } from '../../sync/input.js'
import {
  ApplyRunningError,
  type JobDocument,
  type RemoteJob,
  type SyncJob,
  type SyncJobs,
  TooManyJobsError,
} from '../../sync/jobs.js'
import { type JobRunnerDeps, mayList, runJob } from '../../sync/runner.js'
import { BodyBuffer } from '../../upstream/body-buffer.js'
import { applyAuthorization, authorize } from '../admission/authenticate.js'
import type { RateLimiter } from '../admission/rate-limit.js'

export const SYNC_PATH = '/sync/customers'
export const SYNC_JOBS_PATH = '/sync/jobs'
/** The longest `wait` (SPEC 10). */
export const MAX_WAIT_SECONDS = 60

/** The job runner's dependencies (upstream, listings, audit, metrics, settleCharge) and the routes' own. */
export interface SyncRouteDeps extends JobRunnerDeps {
  readonly policy: () => Policy
  readonly jobs: SyncJobs
  readonly rateLimitConfig?: () => object
  /** Charges an admitted request's budget, as the API routes' admission step does. Default: the plugin's hook counts. */
  readonly rateLimiter?: RateLimiter
  /** Scans a JSON input's records (the listing scanner: in a worker when large). */
  readonly scanner: ListingScanner
  readonly onDenied?: (consumer: string, operation: PolicyOperation) => void
  /** Whether Trisul accepted a username and token lately (proven credentials). Default: never. */
  readonly isKnownGood?: (username: string, tokenHash: string) => boolean
}

const CUSTOMERS = RESOURCE_BY_NAME.customers

interface SyncQuery {
  readonly mode: 'plan' | 'apply'
  readonly deleteAbsent: boolean
  readonly waitSeconds: number
}

/** Each request's query, parsed once in preValidation for its handler. */
const queries = new WeakMap<FastifyRequest, SyncQuery>()

function parseQuery(raw: Record<string, unknown>, allowed: readonly string[]): SyncQuery {
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key))
      throw new GatewayError('IPDR_GW_INVALID_QUERY', `Unknown query parameter: ${key}`)
  }
  const one = (key: string): string | undefined => {
    const v = raw[key]
    if (Array.isArray(v)) throw new GatewayError('IPDR_GW_INVALID_QUERY', `${key} given more than once`)
    return v === undefined ? undefined : String(v)
  }
  const mode = one('mode') ?? 'plan'
  if (mode !== 'plan' && mode !== 'apply')
    throw new GatewayError('IPDR_GW_INVALID_QUERY', 'mode must be plan or apply')
  const del = one('delete') ?? 'false'
  if (del !== 'true' && del !== 'false')
    throw new GatewayError('IPDR_GW_INVALID_QUERY', 'delete must be true or false')
  const wait = one('wait') ?? '0'
  if (!/^\d{1,2}$/.test(wait) || Number(wait) > MAX_WAIT_SECONDS) {
    throw new GatewayError('IPDR_GW_INVALID_QUERY', `wait must be whole seconds, 0-${MAX_WAIT_SECONDS}`)
  }
  return { mode, deleteAbsent: del === 'true', waitSeconds: Number(wait) }
}

/** The writes a sync implies, checked before anything is planned (SPEC 10). */
function impliedOperations(query: SyncQuery, csv: boolean, expire: boolean): [ResourceName, Operation][] {
  const out: [ResourceName, Operation][] = [
    ['customers', 'create'],
    ['customers', 'update'],
  ]
  if (query.deleteAbsent) out.push(['customers', 'delete'])
  // Under `mappings.delete: expire` a delete ends the absent customers' mappings (or deletes those not started).
  if (query.deleteAbsent && expire && !csv) out.push(['mappings', 'update'], ['mappings', 'delete'])
  // CSV rows carry mappings: they are created, updated, ended (an update) or deleted (not yet started).
  if (csv) out.push(['mappings', 'create'], ['mappings', 'update'], ['mappings', 'delete'])
  return out
}

export async function registerSyncRoutes(app: FastifyInstance, deps: SyncRouteDeps): Promise<void> {
  // Only a request admitted for sync (credentials and operations checked in onRequest) gets this limit.
  const bodyLimit = deps.policy().gateway.sync.maxBodyBytes
  await app.register(async (scope) => {
    // Bytes, not objects: the input is read one record at a time (src/sync/input.ts).
    scope.removeAllContentTypeParsers()
    // Received into one buffer as it arrives (its declared length allocated at once): Fastify's
    // `parseAs: 'buffer'` joins the chunks at the end, ~300 ms of the loop for a 100 MB input.
    scope.addContentTypeParser(['application/json', 'text/csv'], { bodyLimit }, (request, payload, done) => {
      receiveBody(request.headers['content-length'], payload, bodyLimit, done)
    })
    const config = (syncRoute: 'start' | 'job' | 'cancel') => ({
      syncRoute,
      ...(deps.rateLimitConfig ? { rateLimit: deps.rateLimitConfig() } : {}),
    })

    scope.route({
      method: 'POST',
      url: SYNC_PATH,
      bodyLimit,
      config: config('start'),
      // Before a byte of the body is read (SPEC 13): the credentials, the sync grant and every write it implies.
      onRequest: async (request, reply) => {
        const query = parseQuery(request.query as Record<string, unknown>, ['mode', 'delete', 'wait'])
        queries.set(request, query)
        await admitSync(
          request,
          reply,
          deps,
          impliedOperations(query, isCsv(request), request.gw.policy.gateway.mappings.delete === 'expire'),
        )
      },
      handler: async (request, reply) => {
        const query = queries.get(request) as SyncQuery
        const body = request.body
        if (!Buffer.isBuffer(body) || body.length === 0) {
          throw new GatewayError('IPDR_GW_SYNC_INVALID_INPUT', 'The body is empty')
        }
        // The cheap part of the check, answered at once.
        if (!isCsv(request) && !looksLikeArray(body)) {
          throw new GatewayError('IPDR_GW_SYNC_INVALID_INPUT', 'The body must be a JSON array of customers')
        }
        const policy = request.gw.policy
        const auth = request.upstreamAuth as UpstreamAuth
        // The whole input checked now, across loop turns: malformed input is this request's 400.
        const input = await checkInput(body, isCsv(request), policy, deps.scanner)
        request.body = undefined
        let job: SyncJob
        try {
          job = await deps.jobs.start(
            request.gw.rateKey ?? '',
            query.mode,
            query.deleteAbsent,
            policy.gateway.sync.maxJobs,
            auth.context,
          )
        } catch (err) {
          if (err instanceof TooManyJobsError)
            throw new GatewayError('IPDR_GW_SYNC_JOBS_LIMIT', err.message, {
              headers: { 'retry-after': '10' },
            })
          if (err instanceof ApplyRunningError)
            throw new GatewayError('IPDR_GW_SYNC_APPLY_RUNNING', err.message)
          throw err
        }
        // Unproven credentials stay charged until the job's listing fetch has tried them.
        const charged = request.gw.authCharged
        request.gw.chargeHeld = charged
        // Not awaited: the job runs on, the client polls (or waits below).
        void runJob(job, deps, {
          charged,
          input,
          csv: isCsv(request),
          mayList: mayList(policy, request.gw.consumer, request.ip),
          redact: request.gw.consumer?.redact ?? [],
          requestId: String(request.id),
          auth,
          policy,
          consumer: request.gw.consumerName,
          client: request.ip,
          log: request.log,
        })
        await waitFor(job, query.waitSeconds, request)
        reply.code(202).header('location', `${SYNC_JOBS_PATH}/${job.id}`).header('cache-control', 'no-store')
        return job.document()
      },
    })

    const jobRoute = (method: 'GET' | 'DELETE') =>
      scope.route({
        method,
        url: `${SYNC_JOBS_PATH}/:id`,
        config: config(method === 'GET' ? 'job' : 'cancel'),
        onRequest: async (request, reply) => {
          queries.set(
            request,
            parseQuery(request.query as Record<string, unknown>, method === 'GET' ? ['wait'] : []),
          )
          await admitSync(request, reply, deps, [])
        },
        handler: async (request, reply): Promise<JobDocument> => {
          const { id } = request.params as { id: string }
          const owner = request.gw.rateKey ?? ''
          const waitSeconds = (queries.get(request) as SyncQuery).waitSeconds
          reply.header('cache-control', 'no-store')
          const job = JOB_ID.test(id) ? deps.jobs.get(id, owner) : undefined
          if (job) {
            if (method === 'DELETE') job.cancel()
            else await waitFor(job, waitSeconds, request)
            return job.document()
          }
          // Started through another instance (SPEC 15): as it published it; a cancel goes to it through the store.
          const remote = JOB_ID.test(id)
            ? await deps.jobs.remote(id, owner).catch(() => undefined)
            : undefined
          if (!remote) throw new GatewayError('IPDR_GW_SYNC_JOB_NOT_FOUND')
          if (method === 'DELETE') {
            if (!remote.finished) await deps.jobs.cancelRemote(id, owner)
            return remote.document
          }
          return waitForRemote(deps.jobs, id, owner, remote, waitSeconds, request)
        },
      })
    jobRoute('GET')
    jobRoute('DELETE')
  })
}

function looksLikeArray(body: Buffer): boolean {
  const text = body.subarray(0, 64).toString('latin1').trimStart()
  const end = body
    .subarray(Math.max(0, body.length - 64))
    .toString('latin1')
    .trimEnd()
  return text.startsWith('[') && end.endsWith(']')
}

function isCsv(request: FastifyRequest): boolean {
  return /^text\/csv\b/i.test(String(request.headers['content-type'] ?? ''))
}

/**
 * The sync routes' admission: credentials from the headers and the consumer's `sync` operation,
 * then every write the sync implies (401/403 otherwise), then the charge.
 */
async function admitSync(
  request: FastifyRequest,
  reply: FastifyReply,
  deps: SyncRouteDeps,
  implied: readonly [ResourceName, Operation][],
): Promise<void> {
  const policy = request.gw.policy
  // The body is the CRM's list: credentials come from the headers (forms 1-3) only.
  const decided = authorize(policy, CUSTOMERS, 'sync', {
    rawHeaders: request.raw.rawHeaders,
    body: undefined,
    clientIp: request.ip,
    ...(request.gw.credentials !== null ? { resolved: request.gw.credentials } : {}),
    ...(deps.isKnownGood ? { isKnownGood: deps.isKnownGood } : {}),
  })
  applyAuthorization(request, CUSTOMERS, 'sync', decided)
  if (!decided.ok) {
    if (decided.denied) deps.onDenied?.(decided.consumerName, 'sync')
    throw decided.error
  }
  request.gw.authorized = true
  // A plan compares mappings by address: one that hides ipsubnet would learn which addresses exist.
  if (
    implied.some(([resource]) => resource === 'mappings') &&
    decided.consumer?.redact.includes('ipsubnet')
  ) {
    deps.onDenied?.(decided.consumerName, 'sync')
    throw new GatewayError(
      'IPDR_GW_OPERATION_FORBIDDEN',
      'A consumer whose policy redacts ipsubnet cannot sync mappings (CSV input)',
    )
  }
  for (const [resource, operation] of implied) {
    const decision = evaluate(policy, {
      consumer: decided.consumer,
      resource,
      operation,
      clientIp: request.ip,
    })
    if (!decision.allow) {
      deps.onDenied?.(decided.consumerName, operation)
      throw new GatewayError(decision.code, `A sync needs ${operation} on ${resource}: ${decision.message}`)
    }
  }
  await deps.rateLimiter?.charge(request, reply)
}

/** Job ids are UUIDs: anything else is no job, and never a store key. */
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** How often a remote job is read again while a client waits for it. */
const REMOTE_POLL_MS = 250

/** `waitFor` for a job another instance runs: its published document read again until it ends. */
async function waitForRemote(
  jobs: SyncJobs,
  id: string,
  owner: string,
  first: RemoteJob,
  seconds: number,
  request: FastifyRequest,
): Promise<JobDocument> {
  let last = first
  const deadline = Date.now() + seconds * 1000
  let gone = false
  const onClose = () => {
    gone = true
  }
  request.raw.once('close', onClose)
  try {
    while (!last.finished && !gone && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, REMOTE_POLL_MS))
      last = (await jobs.remote(id, owner).catch(() => undefined)) ?? last
    }
  } finally {
    request.raw.off('close', onClose)
  }
  return last.document
}

/** Holds the answer until the job ends, `seconds` pass, or the client goes away. */
async function waitFor(job: SyncJob, seconds: number, request: FastifyRequest): Promise<void> {
  if (seconds <= 0 || job.finished) return
  let timer: NodeJS.Timeout | undefined
  let onClose: (() => void) | undefined
  await Promise.race([
    job.ended,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, seconds * 1000)
      onClose = resolve
      request.raw.once('close', onClose)
    }),
  ])
  clearTimeout(timer)
  if (onClose) request.raw.off('close', onClose)
}

/** The input's syntax and size, checked before the job starts (SPEC 13: in steps, lines in errors). */
async function checkInput(
  bytes: Buffer,
  csv: boolean,
  policy: Policy,
  scanner: ListingScanner,
): Promise<CheckedInput> {
  const limits = {
    maxRecords: policy.gateway.sync.maxRecords,
    maxRecordBytes: policy.gateway.limits.bodyBytes,
  }
  try {
    return await checkSyncInput(bytes, csv, limits, (raw) => scanner.scan(raw, 'customers'))
  } catch (err) {
    if (err instanceof TooManyRecordsError)
      throw new GatewayError('IPDR_GW_SYNC_TOO_MANY_RECORDS', err.message)
    if (err instanceof SyncInputError) throw new GatewayError('IPDR_GW_SYNC_INVALID_INPUT', err.message)
    throw err
  }
}

/** Reads a sync body into a {@link BodyBuffer}: 413 past `limit`, 400 when it does not match its Content-Length. */
function receiveBody(
  contentLength: string | undefined,
  payload: NodeJS.ReadableStream,
  limit: number,
  done: (err: Error | null, body?: Buffer) => void,
): void {
  const declared = contentLength === undefined ? null : Number(contentLength)
  if (declared !== null && declared > limit) {
    done(new GatewayError('IPDR_GW_BODY_TOO_LARGE'))
    return
  }
  const buffer = new BodyBuffer(declared, limit)
  const finish = (err: Error | null, body?: Buffer) => {
    payload.removeListener('data', onData)
    payload.removeListener('end', onEnd)
    payload.removeListener('error', onError)
    done(err, body)
  }
  const onData = (chunk: Buffer) => {
    buffer.push(chunk)
    if (buffer.size > limit) finish(new GatewayError('IPDR_GW_BODY_TOO_LARGE'))
  }
  const onEnd = () => {
    if (declared !== null && buffer.size !== declared)
      finish(new GatewayError('IPDR_GW_INVALID_JSON', 'Content-Length does not match the body'))
    else finish(null, buffer.body())
  }
  // A timeout (408) or a reset: whatever the error says.
  const onError = (err: Error) => finish(err)
  payload.on('data', onData)
  payload.on('end', onEnd)
  payload.on('error', onError)
  payload.resume()
}
