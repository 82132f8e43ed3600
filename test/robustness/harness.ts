/**
 * Shared pieces of the robustness suite: a gateway in front of a recording
 * upstream with small timeouts and a fake clock, a request helper that times
 * each answer, the fault table (what the upstream does → what the client must
 * get) and the write requests used by the write-safety matrix.
 */
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { request } from 'undici'
import { makePolicy, type PolicySpec, startGateway, type TestGateway } from '../helpers/gateway.js'
import {
  type Behaviour,
  type RecordingUpstream,
  startRecordingUpstream,
} from '../helpers/recording-upstream.js'

/**
 * `upstream.timeoutMs` of the fault matrices: small, so a timeout costs little,
 * but not so small that a healthy call times out when a busy 2-core machine
 * (several test files at once) deschedules this process for a few hundred ms:
 * the gateway and the upstream share it, and the timer would fire first.
 */
export const TIMEOUT_MS = 1000
/**
 * Upper bound for any answer under a fault. A fault must never hold a client
 * longer than the timeout; the slack absorbs a busy 2-core machine (several
 * test processes at once), not a design margin.
 */
export const ANSWER_BOUND_MS = TIMEOUT_MS + 4000

export const AUTH = { authorization: 'Bearer tok-robust-alice', 'x-trisul-username': 'alice' } as const

export const CUSTOMERS = [
  {
    id: 1,
    Name: 'Asha Rao',
    Address: 'MG Road',
    Email: 'asha@example.com',
    PhoneNumber: '9800000001',
    AltPhoneNumber: '',
    UserID: 'U1',
  },
  {
    id: 2,
    Name: 'Binu K',
    Address: 'Park St',
    Email: 'binu@example.com',
    PhoneNumber: '9800000002',
    AltPhoneNumber: '',
    UserID: 'U2',
  },
]
export const MAPPINGS = [
  { id: 1, ipdr_customer_id: 1, ipsubnet: '10.0.0.0/24', starttime: 0, endtime: null, terminalid: 't1' },
]

/** The mappings as the gateway serves them: each with its customer's UserID (SPEC 17). */
export const MAPPINGS_AS_SERVED = MAPPINGS.map((m) => ({
  ...m,
  UserID: CUSTOMERS.find((c) => c.id === m.ipdr_customer_id)?.UserID ?? null,
}))

/** A healthy upstream: listings for GETs, the record for writes. */
export function healthy(req: { method: string; url: string; body: Record<string, unknown> | undefined }) {
  const mapping = req.url.startsWith('/api/ipdrcustomers_mapping')
  if (req.method === 'GET') return { kind: 'json', body: mapping ? MAPPINGS : CUSTOMERS } as const
  const { api_token: _t, username: _u, contextname: _c, context: _x, ...fields } = req.body ?? {}
  return { kind: 'json', body: { id: 7, ...fields } } as const
}

export interface Clock {
  now(): number
  advance(ms: number): void
}

export function fakeClock(start = 1_000_000): Clock {
  let t = start
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}

export interface Harness {
  upstream: RecordingUpstream
  gw: TestGateway
  clock: Clock
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k]
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object'
        ? merge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v
  }
  return out
}

/**
 * A listening gateway (fake clock for the cache and the circuit breaker) in
 * front of a healthy recording upstream; both closed when the test ends.
 * The circuit is effectively off unless `gateway` sets it: the matrices test
 * one fault at a time, the circuit tests test the breaker.
 */
export async function robustGateway(
  t: Test,
  opts: { gateway?: Record<string, unknown>; spec?: Omit<PolicySpec, 'gateway'> } = {},
): Promise<Harness> {
  const upstream = await startRecordingUpstream(healthy)
  t.teardown(() => upstream.close())
  const gateway = merge(
    {
      upstream: {
        timeoutMs: TIMEOUT_MS,
        connectTimeoutMs: TIMEOUT_MS,
        circuit: { failures: 10000, resetSeconds: 5 },
      },
      auth: { failureLimit: { max: 0 } },
      rateLimit: { max: 1_000_000, timeWindow: '1 minute' },
    },
    opts.gateway ?? {},
  )
  const policy = await makePolicy(t, { ...opts.spec, gateway })
  const clock = fakeClock()
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url, now: clock.now })
  return { upstream, gw, clock }
}

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  /** The parsed body, or undefined when it is not JSON. */
  json: Record<string, unknown> | undefined
  ms: number
}

/** One request over a real socket, timed; never throws for an HTTP status. */
export async function send(
  gw: TestGateway,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<Answer> {
  const started = performance.now()
  const hasBody = opts.body !== undefined
  const res = await request(`${gw.url}${path}`, {
    method: method as 'GET',
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...opts.headers },
    ...(hasBody ? { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) } : {}),
  })
  const text = await res.body.text()
  const ms = performance.now() - started
  let json: Record<string, unknown> | undefined
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    json = undefined
  }
  return { status: res.statusCode, headers: res.headers, text, json, ms }
}

/** `ipdr_gateway_cache_entries` summed over both resources, read from /metrics. */
export async function cacheEntries(app: FastifyInstance): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  let total = 0
  for (const m of res.body.matchAll(/^ipdr_gateway_cache_entries\{[^}]*\} (\d+)/gm)) total += Number(m[1])
  return total
}

/** Resolves after `ms` (used only to let late upstream traffic show up, never to order events). */
export function settle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * A fault of the upstream and what it must become for the client. `refuse`
 * closes the upstream's listener instead of answering. `timing` says whether
 * the answer waits for the timeout (`timeout`) or must come at once (`prompt`).
 */
export interface Fault {
  readonly name: string
  readonly behaviour: Behaviour | 'refuse'
  readonly status: number
  readonly code: string
  readonly timing: 'prompt' | 'timeout'
  /** The `outcome` label of `ipdr_gateway_upstream_requests_total` it must be counted under. */
  readonly outcome: 'envelope_error' | 'http_error' | 'timeout' | 'connect_error' | 'invalid_response'
  /** The upstream message the client must see (envelopes). */
  readonly message?: string
}

export const ENVELOPE_FAULTS: readonly Fault[] = [
  ['ERROR', 'Invalid API token', 200, 401, 'IPDR_GW_UPSTREAM_INVALID_TOKEN'],
  [
    'Error',
    'The user (alice) is not allowed to access the context ipdr',
    200,
    403,
    'IPDR_GW_UPSTREAM_CONTEXT_FORBIDDEN',
  ],
  ['Error', 'Invalid Context name - ipdrr', 200, 400, 'IPDR_GW_UPSTREAM_INVALID_CONTEXT'],
  ['Error', 'IPDR Customer not found', 422, 404, 'IPDR_GW_UPSTREAM_NOT_FOUND'],
  ['Error', 'Duplicate Mapping for UserID : U1001', 422, 409, 'IPDR_GW_UPSTREAM_CONFLICT'],
  ['Error', 'Duplicate UserID : U1', 200, 409, 'IPDR_GW_UPSTREAM_CONFLICT'],
  ['error', 'Customer already exists', 200, 409, 'IPDR_GW_UPSTREAM_CONFLICT'],
  ['Error', 'Missing field : Name', 200, 422, 'IPDR_GW_UPSTREAM_REJECTED'],
  ['ERROR', 'Invalid JSON', 422, 422, 'IPDR_GW_UPSTREAM_REJECTED'],
].map(([status, message, upstreamStatus, clientStatus, code]) => ({
  name: `envelope ${status} "${message}" (HTTP ${upstreamStatus})`,
  behaviour: { kind: 'json', status: upstreamStatus as number, body: { status, message } },
  status: clientStatus as number,
  code: code as string,
  timing: 'prompt',
  outcome: 'envelope_error',
  message: message as string,
})) satisfies Fault[]

const UNAVAILABLE = 'IPDR_GW_UPSTREAM_UNAVAILABLE'
const BAD = 'IPDR_GW_UPSTREAM_BAD_RESPONSE'
const TIMEOUT = 'IPDR_GW_UPSTREAM_TIMEOUT'

/** Faults that break any upstream call, listing or write alike. */
export const TRANSPORT_FAULTS: readonly Fault[] = [
  {
    name: 'connection refused',
    behaviour: 'refuse',
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'connect_error',
  },
  {
    name: 'hang',
    behaviour: { kind: 'hang' },
    status: 504,
    code: TIMEOUT,
    timing: 'timeout',
    outcome: 'timeout',
  },
  {
    name: 'headers later than the timeout',
    behaviour: { kind: 'json', body: [], delayMs: TIMEOUT_MS * 3 },
    status: 504,
    code: TIMEOUT,
    timing: 'timeout',
    outcome: 'timeout',
  },
  {
    name: 'body trickling past the timeout',
    behaviour: { kind: 'trickle', chunks: ['[', '{"id":1}', ',', '{"id":2}', ']'], intervalMs: TIMEOUT_MS },
    status: 504,
    code: TIMEOUT,
    timing: 'timeout',
    outcome: 'timeout',
  },
  {
    name: 'reset before headers',
    behaviour: { kind: 'reset' },
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'connect_error',
  },
  {
    name: 'reset before headers, after a delay',
    behaviour: { kind: 'reset-after', delayMs: 100 },
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'connect_error',
  },
  {
    name: 'reset mid-body',
    behaviour: { kind: 'reset-mid-body', partial: '[{"id":1,"UserID":"U1"' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'truncated JSON (complete response)',
    behaviour: { kind: 'raw', body: '[{"id":1,"UserID":"U1"},{"id":2,' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'truncated JSON object',
    behaviour: { kind: 'raw', body: '{"id":7,"UserID":"W1"' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'invalid JSON',
    behaviour: { kind: 'raw', body: '[{"id":1,}]' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'HTML instead of JSON',
    behaviour: { kind: 'raw', body: '<html>maintenance</html>', contentType: 'text/html' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'empty 200',
    behaviour: { kind: 'raw', body: '' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'upstream 500 (text)',
    behaviour: { kind: 'raw', status: 500, body: 'Internal Server Error', contentType: 'text/plain' },
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'http_error',
  },
  {
    name: 'upstream 500 (JSON envelope)',
    behaviour: { kind: 'json', status: 500, body: { status: 'Error', message: 'IPDR Customer not found' } },
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'http_error',
  },
  {
    name: 'upstream 503',
    behaviour: { kind: 'raw', status: 503, body: 'busy', contentType: 'text/plain' },
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'http_error',
  },
  {
    name: 'upstream 404 HTML (wrong base path)',
    behaviour: { kind: 'raw', status: 404, body: '<h1>Not Found</h1>', contentType: 'text/html' },
    status: 502,
    code: UNAVAILABLE,
    timing: 'prompt',
    outcome: 'http_error',
  },
]

/** Answers that are fine for a write but not a listing. */
export const LISTING_SHAPE_FAULTS: readonly Fault[] = [
  {
    name: 'listing that is an object',
    behaviour: { kind: 'json', body: { id: 1 } },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'listing of non-objects',
    behaviour: { kind: 'json', body: [1, 'a', null] },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'listing that is null',
    behaviour: { kind: 'raw', body: 'null' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'listing that is a string',
    behaviour: { kind: 'json', body: 'customers' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
]

/** Answers that are fine for a listing but not a write. */
export const WRITE_SHAPE_FAULTS: readonly Fault[] = [
  {
    name: 'write answered with an array',
    behaviour: { kind: 'json', body: [{ id: 7 }] },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
  {
    name: 'write answered with a string',
    behaviour: { kind: 'json', body: 'ok' },
    status: 502,
    code: BAD,
    timing: 'prompt',
    outcome: 'invalid_response',
  },
]

export interface WriteCase {
  readonly method: 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  readonly path: string
  readonly body?: Record<string, unknown>
}

/** One valid request per resource and write method. */
export const WRITE_CASES: readonly WriteCase[] = [
  { method: 'POST', path: '/api/ipdrcustomers', body: { UserID: 'W1', Name: 'Writer' } },
  {
    method: 'PUT',
    path: '/api/ipdrcustomers/W1',
    body: {
      UserID: 'W1',
      Name: 'Writer',
      Address: 'Street 1',
      Email: 'w@example.com',
      PhoneNumber: '9800000009',
      AltPhoneNumber: '',
    },
  },
  { method: 'PATCH', path: '/api/ipdrcustomers/W1', body: { Name: 'Renamed' } },
  { method: 'DELETE', path: '/api/ipdrcustomers/W1' },
  {
    method: 'POST',
    path: '/api/ipdrcustomers_mapping',
    body: { UserID: 'W1', ipsubnet: '10.1.2.3', starttime: '0' },
  },
  {
    method: 'PUT',
    path: '/api/ipdrcustomers_mapping/W1',
    body: { ipsubnet: '10.1.2.3', starttime: '0', endtime: '100', terminalid: 't9' },
  },
  {
    method: 'PATCH',
    path: '/api/ipdrcustomers_mapping/W1',
    body: { ipsubnet: '10.1.2.3', terminalid: 't2' },
  },
  { method: 'DELETE', path: '/api/ipdrcustomers_mapping/W1', body: { ipsubnet: '10.1.2.3' } },
]

/** Applies a fault to the upstream (the `refuse` fault closes its listener). */
export async function applyFault(upstream: RecordingUpstream, fault: Fault): Promise<void> {
  if (fault.behaviour === 'refuse') {
    await upstream.refuseConnections()
    return
  }
  const b = fault.behaviour
  upstream.respond(() => b)
}

/** Ends any fault: the upstream listens and answers as a healthy Trisul would. */
export async function recover(upstream: RecordingUpstream): Promise<void> {
  await upstream.acceptConnections()
  upstream.respond(healthy)
}

/** No stack trace, file path or internal error text in a client-facing body. */
export const STACK_LIKE = /\bat [^ ]+ \(|\.(?:js|ts):\d+|node:internal|stack/i
