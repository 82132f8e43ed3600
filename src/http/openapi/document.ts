/**
 * The OpenAPI 3 description of the client-facing API (shared/SPEC.md 3),
 * as @fastify/swagger route schemas: the document's frame (info, tags,
 * security schemes, shared schemas) and, per route, the parameters, bodies,
 * responses and headers. Everything is derived from the resource table, the
 * body schema generator and the error catalogue, so the document follows the
 * code. Pure: no Fastify here; src/http/openapi/plugin.ts applies it as a
 * documentation-only `transform` (no validator or serializer is compiled
 * from these schemas).
 */
import { MAX_LIMIT, MAX_VALUE_LENGTH } from '../../cache/listing-query.js'
import { WWW_AUTHENTICATE } from '../../errors.js'
import type { ValidationPolicy } from '../../policy/types.js'
import {
  type FilterFact,
  type Operation,
  PAGING_PARAMS,
  RESOURCE_BY_NAME,
  type ResourceFacts,
  type ResourceName,
} from '../../resources.js'
import { bodySchema, type WriteOperation } from '../../validation/request-schema.js'
import { ERROR_BODY_SCHEMA, errorExamples, errorResponses, type OperationsRoute } from './errors.js'
import { BODY_EXAMPLES, RECORD_EXAMPLES } from './examples.js'

type Json = Record<string, unknown>

/** Where the document is served. */
export const OPENAPI_PATH = '/openapi.json'
/** Where Swagger UI is served when switched on. */
export const SWAGGER_UI_PREFIX = '/docs'
/** The tag of the probes and /metrics. */
export const OPERATIONS_TAG = 'operations'
export const SYNC_TAG = 'sync'
export const QUERIES_TAG = 'queries'

/** Security scheme names (components.securitySchemes). */
export const SECURITY = {
  jwt: 'identityProviderJwt',
  gatewayKey: 'gatewayKey',
  trisulToken: 'trisulToken',
  trisulUsername: 'trisulUsername',
  basic: 'basicAuth',
  metricsToken: 'metricsToken',
} as const

/** The credential forms 1-3 of SPEC 3.1, first match wins (form 4 is described in the text). */
export const API_SECURITY: readonly Record<string, string[]>[] = [
  { [SECURITY.jwt]: [] },
  { [SECURITY.gatewayKey]: [] },
  { [SECURITY.trisulToken]: [], [SECURITY.trisulUsername]: [] },
  { [SECURITY.basic]: [] },
]

const NAMES: Readonly<Record<ResourceName, { schema: string; one: string; many: string }>> = {
  customers: { schema: 'Customer', one: 'Customer', many: 'Customers' },
  mappings: { schema: 'Mapping', one: 'Mapping', many: 'Mappings' },
}

const ref = (name: string) => `#/components/schemas/${name}`
const ERROR_REF = ref('Error')

const str = (description: string): Json => ({ type: 'string', description })

/** The records as the upstream returns them (the gateway passes unknown fields through). */
const RECORD_SCHEMAS: Readonly<Record<ResourceName, Json>> = {
  customers: {
    type: 'object',
    description:
      'An IPDR customer as Trisul stores it. Fields a consumer must not see are "***" (policy `redact`).',
    required: ['id', 'UserID', 'Name'],
    properties: {
      id: { type: 'integer', description: 'Assigned by Trisul.' },
      Name: str('Subscriber name.'),
      Address: str('Postal address.'),
      Email: str('E-mail address.'),
      PhoneNumber: str('Primary phone number.'),
      AltPhoneNumber: str('Alternative phone number.'),
      UserID: str('Unique subscriber id, the key of the single-record routes.'),
    },
    example: RECORD_EXAMPLES.customers.record,
  },
  mappings: {
    type: 'object',
    description: 'A static IP or subnet assigned to a customer for a time span.',
    required: ['id', 'ipdr_customer_id', 'ipsubnet', 'starttime'],
    properties: {
      id: { type: 'integer', description: 'Assigned by Trisul.' },
      ipdr_customer_id: { type: 'integer', description: 'The `id` of the customer.' },
      ipsubnet: str('An IPv4/IPv6 address or CIDR subnet.'),
      starttime: { type: 'integer', description: 'Valid from (Unix seconds).' },
      endtime: {
        type: 'integer',
        nullable: true,
        description: 'Valid until (Unix seconds, exclusive); null: open.',
      },
      terminalid: str('Terminal identifier.'),
      UserID: {
        type: 'string',
        nullable: true,
        description:
          "Added by the gateway to listings, lookups and reads (SPEC 17): the customer's UserID, from the customers listing; null when Trisul's customers listing lacks the customer.",
      },
    },
    example: RECORD_EXAMPLES.mappings.record,
  },
}

const HEADER_DOCS: Readonly<Record<string, Json>> = {
  'X-Request-Id': str("The request id: the client's when sane (`^[A-Za-z0-9._:-]{1,128}$`), else generated."),
  'X-Cache': {
    type: 'string',
    enum: ['HIT', 'MISS', 'STALE'],
    description:
      'How the listing behind this answer was served: from the cache, fetched (or waited on another fetch), ' +
      'or past its TTL while the upstream fails (stale-if-error).',
  },
  ETag: str('Validator of this representation; send it back in `If-None-Match` to get `304`.'),
  'Cache-Control': str('`private` on listings and single reads; `no-store` on writes.'),
  Vary: str('`Accept-Encoding, Authorization, X-Trisul-Username, X-Trisul-Context`.'),
  'X-Total-Count': {
    type: 'integer',
    description: 'With any query parameter: the number of matching records before `offset` and `limit`.',
  },
  'Content-Encoding': {
    type: 'string',
    enum: ['gzip', 'br'],
    description: 'When the client accepts it; compressed once per cache entry.',
  },
  'RateLimit-Limit': { type: 'integer', description: "The consumer's request budget per window." },
  'RateLimit-Remaining': { type: 'integer', description: 'Requests left in the current window.' },
  'RateLimit-Reset': { type: 'integer', description: 'Seconds until the window resets.' },
  'Retry-After': { type: 'integer', description: 'Seconds to wait before retrying.' },
  'WWW-Authenticate': { type: 'string', description: `\`${WWW_AUTHENTICATE}\`.` },
  Location: str('Where the sync job is: `/sync/jobs/{id}`.'),
}

/** `components.headers`, one per documented response header. */
function componentHeaders(): Json {
  const out: Json = {}
  for (const [name, doc] of Object.entries(HEADER_DOCS)) {
    const { description: text, ...schema } = doc
    out[name] = { description: text, schema }
  }
  return out
}

/**
 * A @fastify/swagger `transformObject`: every response header documented
 * above becomes a `$ref` to `components.headers` (@fastify/swagger writes
 * headers inline, and the same dozen repeat on every response).
 */
export function referenceSharedHeaders<T>(document: T): T {
  const paths = (document as { paths?: Record<string, Record<string, Json>> }).paths ?? {}
  for (const item of Object.values(paths)) {
    for (const operation of Object.values(item)) {
      const responses = (operation as { responses?: Record<string, Json> }).responses ?? {}
      for (const response of Object.values(responses)) {
        const own = response.headers as Json | undefined
        if (!own) continue
        for (const name of Object.keys(own)) {
          if (Object.hasOwn(HEADER_DOCS, name)) own[name] = { $ref: `#/components/headers/${name}` }
        }
      }
    }
  }
  return document
}

function headers(...names: string[]): Json {
  const out: Json = {}
  for (const name of names) out[name] = HEADER_DOCS[name]
  return out
}

const RATE_LIMIT_HEADERS = ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset']

function errorHeaders(status: number): Json {
  const names = ['X-Request-Id']
  if (status === 401) names.push('WWW-Authenticate')
  if (status === 429) names.push('Retry-After', ...RATE_LIMIT_HEADERS)
  // The circuit breaker says when its half-open trial comes.
  if (status === 503) names.push('Retry-After')
  return headers(...names)
}

const json = (schema: Json, examples?: Json): Json => ({
  'application/json': examples ? { schema, examples } : { schema },
})

/** The document's frame, for @fastify/swagger's `openapi` option. */
export function documentFrame(version: string): Json {
  return {
    openapi: '3.0.3',
    // The gateway that serves this document: relative, so the document is right behind any host or proxy.
    servers: [{ url: '/', description: 'This gateway (the host that served this document).' }],
    info: {
      title: 'ipdr-gateway',
      version,
      license: { name: 'MIT', url: 'https://opensource.org/licenses/MIT' },
      description: [
        "A gateway in front of Trisul's IPDR customers API: the same paths, standard `Authorization` headers",
        'instead of credentials in the body, real status codes, cached and filterable listings.',
        '',
        '**Credentials** (first match wins): a JWT of a trusted identity provider or a gateway key as `Bearer`; a Trisul `api_token` as `Bearer` with',
        '`X-Trisul-Username`; `Basic base64(username:api_token)`; or, for legacy clients and unless the policy',
        'turns it off, `api_token`, `username` and `contextname`/`context` in the JSON body (GET included).',
        "The context comes from `X-Trisul-Context`, else the consumer's or the policy's default.",
        '',
        "**Errors** are JSON `{statusCode, error, code, message}`; Trisul's envelopes become real statuses",
        'and keep their message. Any other path is `404` and never reaches Trisul.',
        '',
        '**Headers**: every response has `X-Request-Id`; API routes carry `RateLimit-*`; listings and reads',
        'carry `X-Cache`, `ETag` and `Cache-Control: private`, and `If-None-Match` gets `304`.',
      ].join('\n'),
    },
    tags: [
      { name: 'customers', description: 'IPDR customers (`/api/ipdrcustomers`).' },
      { name: 'mappings', description: 'Static IP and subnet mappings (`/api/ipdrcustomers_mapping`).' },
      {
        name: SYNC_TAG,
        description: "CRM sync: reconcile Trisul with a CRM's whole list (`/sync/customers`).",
      },
      {
        name: QUERIES_TAG,
        description:
          "Trisul's IPDR Query API (`/api/ipdr_query`): who used an IP address in a time window. Needs the `queries` operations, which the default consumer never has.",
      },
      { name: OPERATIONS_TAG, description: 'Probes and metrics; no credentials.' },
    ],
    components: {
      securitySchemes: {
        [SECURITY.jwt]: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            "Form 1 (SPEC 16): an access token from the ISP's identity provider (OAuth2 client credentials), " +
            "verified against the policy's `auth.jwt.issuers` and matched to a consumer, whose Trisul " +
            'credentials the gateway sends. A refused token is `401` with `error="invalid_token"`.',
        },
        [SECURITY.gatewayKey]: {
          type: 'http',
          scheme: 'bearer',
          description:
            "Form 1: a gateway key of a policy consumer. The gateway sends that consumer's own Trisul " +
            'credentials; the client never sees the Trisul token.',
        },
        [SECURITY.trisulToken]: {
          type: 'http',
          scheme: 'bearer',
          description: 'Form 2: your Trisul `api_token` as the bearer token, with `X-Trisul-Username`.',
        },
        [SECURITY.trisulUsername]: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Trisul-Username',
          description: 'Form 2: your Trisul username, with the `api_token` as bearer token.',
        },
        [SECURITY.basic]: {
          type: 'http',
          scheme: 'basic',
          description: 'Form 3: `Basic base64(username:api_token)`.',
        },
        [SECURITY.metricsToken]: {
          type: 'http',
          scheme: 'bearer',
          description: 'The scrape token, when the policy sets `metrics.tokenEnv`.',
        },
      },
      schemas: {
        [NAMES.customers.schema]: RECORD_SCHEMAS.customers,
        [NAMES.mappings.schema]: RECORD_SCHEMAS.mappings,
        Error: ERROR_BODY_SCHEMA,
      },
      headers: componentHeaders(),
      examples: errorExamples(),
    },
    security: API_SECURITY,
  }
}

// No `examples` on query parameters: Swagger UI pre-fills them in "Try it out",
// which would turn the plain listing into a filtered one.
function filterParameter(facts: ResourceFacts, filter: FilterFact): Json {
  const fields = filter.fields.map((f) => `\`${f}\``).join(', ')
  switch (filter.kind) {
    case 'exact': {
      const field = filter.fields[0] ?? filter.name
      if (field === 'ipdr_customer_id') {
        return {
          type: 'integer',
          minimum: 0,
          description: `Records whose ${fields} equals this.`,
        }
      }
      if (facts.fields.find((f) => f.name === field)?.kind === 'ipOrCidr') {
        return {
          type: 'string',
          description: `Records whose ${fields} is this address or subnet.`,
        }
      }
      const email = facts.fields.find((f) => f.name === field)?.kind === 'email'
      return {
        type: 'string',
        maxLength: MAX_VALUE_LENGTH,
        description: `Records whose ${fields} equals this${email ? ' (case-insensitive)' : ''}.`,
      }
    }
    case 'substring':
      return {
        type: 'string',
        maxLength: MAX_VALUE_LENGTH,
        description: `Case-insensitive substring of any of ${fields}.`,
      }
    case 'ip':
      return {
        type: 'string',
        description: 'One IPv4/IPv6 address: the mappings whose address or subnet contains it.',
      }
    default:
      return {
        type: 'integer',
        minimum: 0,
        description:
          'Unix seconds: the mappings valid then (`starttime <= at` and `endtime` null or `> at`).',
      }
  }
}

/** The listing's query parameters (filters of the resource table, then paging). */
function listingQuery(facts: ResourceFacts): Json {
  const properties: Json = {}
  for (const filter of facts.filters) properties[filter.name] = filterParameter(facts, filter)
  const paging: Record<(typeof PAGING_PARAMS)[number], Json> = {
    limit: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, description: 'Page size.' },
    offset: { type: 'integer', minimum: 0, description: 'Records to skip (after filtering).' },
  }
  for (const name of PAGING_PARAMS) properties[name] = paging[name]
  return { type: 'object', properties }
}

function requestHeaders(conditional: boolean): Json {
  const properties: Json = {
    'X-Trisul-Context': str("The Trisul context (v2); default: the consumer's, else the policy's."),
  }
  if (conditional) properties['If-None-Match'] = str('An `ETag` received before; `304` when still current.')
  return { type: 'object', properties }
}

function pathParams(rules: ValidationPolicy): Json {
  return {
    type: 'object',
    required: ['UserID'],
    properties: {
      UserID: {
        type: 'string',
        pattern: rules.userIdPattern,
        description: "The customer's UserID (one path segment).",
        examples: ['B68t19'],
      },
    },
  }
}

const SUMMARY: Readonly<
  Record<Operation, (n: { one: string; many: string }, facts: ResourceFacts) => string>
> = {
  list: (n) => `List ${n.many.toLowerCase()} (cached; filters and paging)`,
  read: (n, f) =>
    f.name === 'customers' ? `Read one ${n.one.toLowerCase()}` : `Read a customer's ${n.many.toLowerCase()}`,
  create: (n) => `Create a ${n.one.toLowerCase()}`,
  replace: (n) => `Replace a ${n.one.toLowerCase()}`,
  update: (n) => `Update some fields of a ${n.one.toLowerCase()}`,
  delete: (n) => `Delete a ${n.one.toLowerCase()}`,
}

function description(facts: ResourceFacts, op: Operation): string {
  const selector = facts.selectorField
    ? ` The body's \`${facts.selectorField}\` selects which mapping of the customer.`
    : ''
  switch (op) {
    case 'list':
      return (
        "The listing, cached per credentials and context. Without query parameters the body is Trisul's " +
        'array exactly as it sent it. Filters combine with AND; with any parameter `X-Total-Count` gives the ' +
        'number of matches before paging. An unknown, repeated or malformed parameter is `400 IPDR_GW_INVALID_QUERY`.'
      )
    case 'read':
      return facts.name === 'customers'
        ? 'One customer, served from the cached listing of the same credentials.'
        : 'The mappings of the customer with this UserID (`[]` when it has none), served from the cached listings.'
    default:
      return (
        'Validated, then sent to Trisul with the credentials in the body; never retried. The cached listings ' +
        `of the context are invalidated before the answer, so a read that follows sees the write.${selector} ` +
        'Legacy clients may also put the credentials in this body.'
      )
  }
}

function successResponses(facts: ResourceFacts, op: Operation): Json {
  const names = NAMES[facts.name]
  const record = { $ref: ref(names.schema) }
  const many = { type: 'array', items: record }
  const examples = RECORD_EXAMPLES[facts.name]
  const cached = ['X-Request-Id', 'X-Cache', 'ETag', 'Cache-Control', 'Vary', ...RATE_LIMIT_HEADERS]
  const notModified = {
    description: 'Not Modified: the `If-None-Match` validator is current.',
    type: 'null',
    headers: headers(...cached),
  }
  if (op === 'list') {
    return {
      200: {
        description: `The ${names.many.toLowerCase()} (or the requested page).`,
        headers: headers(...cached, 'X-Total-Count', 'Content-Encoding'),
        content: json(many, {
          upstream: {
            summary:
              facts.name === 'mappings'
                ? "As Trisul returns it, with each customer's UserID"
                : 'As Trisul returns it',
            value: examples.listing,
          },
        }),
      },
      304: notModified,
    }
  }
  if (op === 'read') {
    const body = facts.name === 'customers' ? record : many
    const value = facts.name === 'customers' ? examples.record : examples.listing
    return {
      200: {
        description: facts.name === 'customers' ? 'The customer.' : "The customer's mappings.",
        headers: headers(...cached),
        content: json(body, { record: { value } }),
      },
      304: notModified,
    }
  }
  return {
    200: {
      description: `The ${op === 'create' ? 'created' : op === 'delete' ? 'deleted' : 'updated'} record, as Trisul returns it.`,
      headers: headers('X-Request-Id', 'Cache-Control', ...RATE_LIMIT_HEADERS),
      content: json(record, { record: { value: examples.record } }),
    },
  }
}

function requestBody(facts: ResourceFacts, op: WriteOperation, rules: ValidationPolicy): Json | null {
  const example = BODY_EXAMPLES[facts.name][op]
  // A customer delete carries nothing: no requestBody (OpenAPI would mark it required).
  if (example === null) return null
  return { ...bodySchema(facts, op, rules), examples: [example] }
}

/**
 * The documentation schema of one API route (the @fastify/swagger route
 * `schema` shape). `rules` are the validation rules the document shows: the
 * policy's at start.
 */
export function apiRouteSchema(facts: ResourceFacts, op: Operation, rules: ValidationPolicy): Json {
  const names = NAMES[facts.name]
  const keyed = op !== 'list' && op !== 'create'
  const schema: Json = {
    operationId: `${op}${op === 'list' || (op === 'read' && facts.name === 'mappings') ? names.many : names.one}`,
    summary: SUMMARY[op](names, facts),
    description: description(facts, op),
    tags: [facts.name],
    headers: requestHeaders(op === 'list' || op === 'read'),
    response: { ...successResponses(facts, op), ...errorResponses(op, ERROR_REF, errorHeaders) },
  }
  if (keyed) schema.params = pathParams(rules)
  if (op === 'list') schema.querystring = listingQuery(facts)
  if (op !== 'list' && op !== 'read') {
    const body = requestBody(facts, op, rules)
    if (body) schema.body = body
  }
  return schema
}

const OPERATIONS_ROUTES: Readonly<Record<string, { route: OperationsRoute; schema: () => Json }>> = {
  '/healthz': {
    route: 'health',
    schema: () => ({
      summary: 'Liveness: 200 while the process serves',
      response: {
        200: {
          description: 'Alive.',
          headers: headers('X-Request-Id'),
          ...statusBody('ok'),
        },
      },
    }),
  },
  '/readyz': {
    route: 'health',
    schema: () => ({
      summary: 'Readiness: 200 when the upstream is reachable',
      description: 'The last finding of the active probe (a TCP connect) or of any upstream response since.',
      response: {
        200: {
          description: 'The upstream is reachable.',
          headers: headers('X-Request-Id'),
          ...statusBody('ready'),
        },
        503: {
          description: 'The upstream is unreachable (or the gateway is shutting down).',
          headers: headers('X-Request-Id'),
          ...statusBody('upstream unreachable'),
        },
      },
    }),
  },
  '/metrics': {
    route: 'metrics',
    schema: () => ({
      summary: 'Prometheus exposition',
      security: [{}, { [SECURITY.metricsToken]: [] }],
      response: {
        200: {
          description: 'The `ipdr_gateway_*` families and the process metrics.',
          headers: headers('X-Request-Id'),
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
      },
    }),
  },
}

function statusBody(example: string): Json {
  return {
    content: json({
      type: 'object',
      required: ['status'],
      properties: { status: { type: 'string', example } },
    }),
  }
}

/** The documentation schema of a probe or /metrics; null for any other URL. */
export function operationsRouteSchema(url: string): Json | null {
  const entry = OPERATIONS_ROUTES[url]
  if (!entry) return null
  const own = entry.schema()
  const response = { ...errorResponses(entry.route, ERROR_REF, errorHeaders), ...(own.response as Json) }
  return {
    security: [],
    ...own,
    operationId: `get${url.slice(1, 2).toUpperCase()}${url.slice(2)}`,
    tags: [OPERATIONS_TAG],
    response,
  }
}

/** The URLs {@link operationsRouteSchema} documents. */
export const OPERATIONS_ROUTE_URLS: readonly string[] = Object.keys(OPERATIONS_ROUTES)

const SYNC_JOB_SCHEMA: Json = {
  type: 'object',
  required: ['id', 'state', 'mode', 'plan', 'progress', 'errors', 'startedAt', 'finishedAt'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    state: { type: 'string', enum: ['planning', 'applying', 'done', 'failed', 'cancelled'] },
    mode: { type: 'string', enum: ['plan', 'apply'] },
    delete: { type: 'boolean' },
    plan: {
      type: 'object',
      nullable: true,
      description: 'Customers; null until planned.',
      properties: Object.fromEntries(
        ['create', 'update', 'delete', 'unchanged', 'invalid'].map((k) => [k, { type: 'integer' }]),
      ),
    },
    mappings: {
      type: 'object',
      nullable: true,
      description: 'Mappings, for CSV input.',
      properties: Object.fromEntries(
        ['create', 'update', 'end', 'delete', 'unchanged'].map((k) => [k, { type: 'integer' }]),
      ),
    },
    progress: {
      type: 'object',
      properties: { done: { type: 'integer' }, total: { type: 'integer' }, failed: { type: 'integer' } },
    },
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          UserID: { type: 'string', nullable: true },
          status: { type: 'integer' },
          code: { type: 'string' },
          message: { type: 'string' },
          source: { type: 'string' },
          resource: { type: 'string' },
          operation: { type: 'string' },
        },
      },
    },
    absent: {
      type: 'array',
      items: { type: 'string' },
      description: 'Customers in Trisul, not in the input, left alone.',
    },
    truncated: { type: 'boolean' },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time', nullable: true },
  },
}

const WAIT_PARAM: Json = {
  type: 'integer',
  minimum: 0,
  maximum: 60,
  description: 'Hold the answer up to this many seconds, until the job ends.',
}

/**
 * A record of a sync's JSON input: a create body (the policy's required fields, SPEC 17) that may
 * also carry the listing's `id`, which the sync ignores (SPEC 10) — so a CRM can send a listing back.
 */
export function syncRecordSchema(rules: ValidationPolicy): Json {
  const create = bodySchema(RESOURCE_BY_NAME.customers, 'create', rules) as Json
  return {
    ...create,
    properties: { id: { description: 'Ignored: Trisul assigns it.' }, ...(create.properties as Json) },
  }
}

/** The documentation schema of a sync route (src/http/routes/sync.ts); null for anything else. */
export function syncRouteSchema(route: 'start' | 'job' | 'cancel', rules: ValidationPolicy): Json {
  const ok = (status: number, description: string): Json => ({
    [status]: {
      description,
      headers: headers('X-Request-Id', ...(status === 202 ? ['Location'] : []), ...RATE_LIMIT_HEADERS),
      content: json(SYNC_JOB_SCHEMA),
    },
  })
  const errors = errorResponses('sync', ERROR_REF, errorHeaders)
  const params = {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', description: 'The job id.' } },
  }
  if (route === 'start') {
    return {
      operationId: 'syncCustomers',
      summary: "Reconcile Trisul with a CRM's customer list",
      description:
        "The body is the CRM's whole list: a JSON array of customers (the listing's shape, `id` ignored) or `text/csv` in Trisul's import layout (which also reconciles each customer's mappings). The gateway plans against a fresh listing and, with `mode=apply`, sends Trisul only the differences. Needs the `sync` operation and the writes it implies. See docs/sync.md.",
      tags: [SYNC_TAG],
      querystring: {
        type: 'object',
        properties: {
          mode: { type: 'string', enum: ['plan', 'apply'], default: 'plan' },
          delete: { type: 'boolean', default: false, description: 'Delete customers absent from the input.' },
          wait: WAIT_PARAM,
        },
      },
      body: {
        content: {
          'application/json': { schema: { type: 'array', items: syncRecordSchema(rules) } },
          'text/csv': { schema: { type: 'string' } },
        },
      },
      response: { ...ok(202, 'The job, planning or further; follow Location.'), ...errors },
    }
  }
  if (route === 'job') {
    return {
      operationId: 'getSyncJob',
      summary: 'A sync job: state, plan, progress, errors',
      tags: [SYNC_TAG],
      params,
      querystring: { type: 'object', properties: { wait: WAIT_PARAM } },
      response: { ...ok(200, 'The job document.'), ...errors },
    }
  }
  return {
    operationId: 'cancelSyncJob',
    summary: 'Cancel a sync job (writes in flight finish, no new ones start)',
    tags: [SYNC_TAG],
    params,
    response: {
      ...ok(200, 'The job document; `state` becomes `cancelled` once the writes in flight are answered.'),
      ...errors,
    },
  }
}

const QUERY_ID_PARAM: Json = { type: 'integer', minimum: 1, description: 'The id `new` returned.' }
const QUERY_TIME: Json = {
  oneOf: [{ type: 'string' }, { type: 'integer', minimum: 0 }],
  description:
    "`DD-MM-YYYY HH:MM:SS` (in the gateway's `upstream.timeZone`), ISO 8601 with an offset, or Unix seconds. Sent to Trisul in its own format.",
}
const QUERY_STATUS_FIELDS: Json = {
  status: { type: 'string', example: 'SUCCESS' },
  CurrentStatus: { type: 'string', enum: ['NEW', 'INPROGRESS', 'COMPLETED', 'CANCELED'] },
  QueryStatusMessage: { type: 'string' },
  ip: { type: 'string', example: '10.0.0.7' },
  from_time: { type: 'string', example: '01-03-2024 00:00:00' },
  to_time: { type: 'string', example: '02-03-2024 00:00:00' },
}

/** The documentation schema of a Query API route (src/http/routes/queries.ts, SPEC 12). */
export function queryRouteSchema(path: string): Json {
  const ok = (description: string, schema: Json, extra: Json = {}): Json => ({
    200: {
      description,
      headers: headers('X-Request-Id', ...RATE_LIMIT_HEADERS),
      content: { ...json(schema), ...extra },
    },
  })
  const errors = errorResponses('query', ERROR_REF, errorHeaders)
  const base = { tags: [QUERIES_TAG] }
  const idQuery = { type: 'object', required: ['query_id'], properties: { query_id: QUERY_ID_PARAM } }
  switch (path) {
    case '/list':
      return {
        ...base,
        operationId: 'listQueries',
        summary: "The caller's recent IPDR queries, newest first",
        querystring: {
          type: 'object',
          properties: { count: { type: 'integer', minimum: 1, maximum: 1000, default: 10 } },
        },
        response: { ...ok("Trisul's answer, unchanged.", { type: 'object' }), ...errors },
      }
    case '/new':
      return {
        ...base,
        operationId: 'createQuery',
        summary: 'Submit a lookup: who used this IP address in this window',
        description: 'Audited. `to_time` must be after `from_time`; `ip` one IPv4 or IPv6 address.',
        body: {
          type: 'object',
          required: ['ip', 'from_time', 'to_time'],
          additionalProperties: false,
          properties: {
            ip: { type: 'string', example: '10.0.0.7' },
            from_time: QUERY_TIME,
            to_time: QUERY_TIME,
          },
        },
        response: {
          ...ok('Submitted: `query_id` names it.', {
            type: 'object',
            properties: {
              status: { type: 'string' },
              message: { type: 'string' },
              query_id: { type: 'integer' },
            },
          }),
          ...errors,
        },
      }
    case '/status':
      return {
        ...base,
        operationId: 'getQueryStatus',
        summary: "A query's status and window",
        querystring: idQuery,
        response: {
          ...ok("Trisul's answer, unchanged.", { type: 'object', properties: QUERY_STATUS_FIELDS }),
          ...errors,
        },
      }
    case '/result':
      return {
        ...base,
        operationId: 'getQueryResult',
        summary: "A completed query's flows (JSON, or CSV with `Accept: text/csv`)",
        description:
          'Audited. With `wait`, held until the query completes (its status polled at most once a second), else `409` with `Retry-After`. A completed result is cached per credentials and query id (`X-Cache`).',
        querystring: {
          type: 'object',
          required: ['query_id'],
          properties: {
            query_id: QUERY_ID_PARAM,
            headers: {
              type: 'string',
              description: 'Comma-separated columns to return (default all 13).',
              example: 'UserID,SubscriberID,StartTime,DestIP',
            },
            wait: {
              type: 'integer',
              minimum: 0,
              maximum: 60,
              description: 'Seconds to wait for completion.',
            },
          },
        },
        response: {
          ...ok(
            'The status fields and `rows`, each with the columns asked for.',
            {
              type: 'object',
              properties: { ...QUERY_STATUS_FIELDS, rows: { type: 'array', items: { type: 'object' } } },
            },
            { 'text/csv': { schema: { type: 'string' } } },
          ),
          ...errors,
        },
      }
    default:
      return {
        ...base,
        operationId: 'cancelQuery',
        summary: 'Cancel a NEW or INPROGRESS query',
        description: 'Audited. A completed or cancelled query answers `409`.',
        body: { type: 'object', required: ['query_id'], properties: { query_id: QUERY_ID_PARAM } },
        response: { ...ok("Trisul's answer, unchanged.", { type: 'object' }), ...errors },
      }
  }
}
