/**
 * The OpenAPI document at /openapi.json (issue 9): valid OpenAPI 3 by
 * @apidevtools/swagger-parser, in step with the routes Fastify really has,
 * complete about errors, headers and credentials, and documentation only —
 * the listing still sends the upstream bytes and keeps its own query errors.
 */
import { readFileSync } from 'node:fs'
import SwaggerParser from '@apidevtools/swagger-parser'
import type { FastifyInstance, RouteOptions } from 'fastify'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { parseListingQuery } from '../../../src/cache/listing-query.js'
import { ERRORS, type ErrorCode, errorBody } from '../../../src/errors.js'
import { API_SECURITY, OPERATIONS_ROUTE_URLS } from '../../../src/http/openapi/document.js'
import { ERROR_SCOPES, errorCodesByStatus } from '../../../src/http/openapi/errors.js'
import { BODY_EXAMPLES } from '../../../src/http/openapi/examples.js'
import {
  documentationSchema,
  OPENAPI_PATH,
  SWAGGER_UI_CSP,
  SWAGGER_UI_PREFIX,
} from '../../../src/http/openapi/plugin.js'
import {
  OPERATIONS,
  type Operation,
  PAGING_PARAMS,
  QUERY_FACTS,
  RESOURCE_BY_NAME,
  RESOURCES,
} from '../../../src/resources.js'
import {
  bodySchema,
  bodyValidators,
  DEFAULT_VALIDATION,
  WRITE_OPERATIONS,
} from '../../../src/validation/request-schema.js'
import { makePolicy, type PolicySpec, startGateway } from '../../helpers/gateway.js'
import { startRecordingUpstream } from '../../helpers/recording-upstream.js'

// biome-ignore lint/suspicious/noExplicitAny: walking a parsed document of known shape
type Json = Record<string, any>

const METHOD: Record<Operation, string> = {
  list: 'get',
  read: 'get',
  create: 'post',
  replace: 'put',
  update: 'patch',
  delete: 'delete',
}
const KEYED: readonly Operation[] = ['read', 'replace', 'update', 'delete']
const AUTH = { authorization: 'Bearer tok', 'x-trisul-username': 'alice' }

async function gateway(t: Test, spec: PolicySpec = {}, options: Record<string, unknown> = {}) {
  const policy = await makePolicy(t, spec)
  // Port 9 (discard): nothing listens; the document never needs the upstream.
  return startGateway(t, { policy, upstreamUrl: 'http://127.0.0.1:9', listen: false, ...options })
}

async function documentOf(app: FastifyInstance): Promise<Json> {
  const res = await app.inject({ url: OPENAPI_PATH })
  if (res.statusCode !== 200) throw new Error(`GET ${OPENAPI_PATH}: ${res.statusCode} ${res.body}`)
  return res.json()
}

function apiPath(path: string, keyed: boolean): string {
  return keyed ? `${path}/{UserID}` : path
}

/** Every operation of the document, as `METHOD /path` → operation object. */
function documentedOperations(doc: Json): Map<string, Json> {
  const out = new Map<string, Json>()
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    for (const [method, operation] of Object.entries(item as Json))
      out.set(`${method.toUpperCase()} ${path}`, operation)
  }
  return out
}

/**
 * Every route Fastify really serves, as `METHOD /path` in OpenAPI form, read
 * from `printRoutes()`'s tree (each level is four columns; a child's segment
 * continues its parent's path).
 */
function servedRoutes(app: FastifyInstance): Set<string> {
  const out = new Set<string>()
  const stack: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const m = /^([│ ]*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/u.exec(line)
    if (!m) continue
    const depth = (m[1] ?? '').length / 4
    const path = (depth > 0 ? (stack[depth - 1] ?? '') : '') + (m[2] ?? '')
    stack[depth] = path
    stack.length = depth + 1
    for (const method of (m[3] ?? '').split(', ').filter(Boolean)) {
      out.add(`${method} ${path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`)
    }
  }
  return out
}

/** JSON Schema → OpenAPI 3.0 as @fastify/swagger writes it: 3.0 has no `null` type. */
function asOpenApi30(schema: Json): Json {
  const nullSchema = { type: 'object', nullable: true, enum: [null] }
  return JSON.parse(JSON.stringify(schema).replaceAll('{"type":"null"}', JSON.stringify(nullSchema)))
}

/** Routes that are served but deliberately not documented. */
function undocumented(route: string): boolean {
  const [method, path = ''] = route.split(' ')
  return (
    method === 'HEAD' ||
    method === 'OPTIONS' ||
    path === OPENAPI_PATH ||
    path === SWAGGER_UI_PREFIX ||
    path.startsWith(`${SWAGGER_UI_PREFIX}/`)
  )
}

t.test('the served document is valid OpenAPI 3', async (t) => {
  const { app } = await gateway(t)
  const res = await app.inject({ url: OPENAPI_PATH })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json/)
  t.equal(res.headers['cache-control'], 'no-cache')
  t.ok(res.headers['x-request-id'], 'an ordinary gateway response')
  const doc = res.json() as Json
  await t.resolves(
    SwaggerParser.validate(structuredClone(doc) as unknown as Parameters<typeof SwaggerParser.validate>[0]),
    'swagger-parser validates it',
  )
  t.equal(doc.openapi, '3.0.3')
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
  t.equal(doc.info.version, pkg.version, 'info.version is the package version')
  t.equal(doc.info.title, 'ipdr-gateway')
  t.equal((await app.inject({ url: OPENAPI_PATH })).body, res.body, 'the same document every time')
})

t.test('every route is documented, and every documented operation is a route', async (t) => {
  for (const [name, options] of [
    ['default', {}],
    ['metrics on a separate port', { metricsOnMainPort: false }],
    ['with Swagger UI', { swaggerUi: true }],
  ] as const) {
    t.test(name, async (t) => {
      const { app } = await gateway(t, {}, options)
      const doc = await documentOf(app)
      const served = [...servedRoutes(app)].filter((r) => !undocumented(r)).sort()
      const documented = [...documentedOperations(doc).keys()].sort()
      t.same(documented, served, 'the same METHOD /path pairs')
      t.equal(served.includes('GET /metrics'), name !== 'metrics on a separate port')
      for (const facts of RESOURCES) {
        for (const op of OPERATIONS) {
          const path = apiPath(facts.path, KEYED.includes(op))
          t.ok(app.hasRoute({ method: METHOD[op].toUpperCase(), url: path.replace('{UserID}', ':UserID') }))
          const operation = doc.paths[path]?.[METHOD[op]] as Json | undefined
          t.ok(operation, `${facts.name} ${op}: ${METHOD[op].toUpperCase()} ${path} documented`)
          t.same(operation?.tags, [facts.name])
        }
      }
      for (const [route, operation] of documentedOperations(doc)) {
        t.ok(operation.operationId, `${route} has an operationId`)
        t.ok(operation.summary, `${route} has a summary`)
        t.equal(operation.tags?.length, 1, `${route} has one tag`)
      }
      const ids = [...documentedOperations(doc).values()].map((o) => o.operationId)
      t.equal(new Set(ids).size, ids.length, 'operationIds are unique')
    })
  }
})

t.test('every error code appears under its status, with the error body', async (t) => {
  const { app } = await gateway(t)
  const doc = await documentOf(app)
  const operations = documentedOperations(doc)
  // The API routes proper: not the probes, not the sync routes (section 10, checked below), not
  // the Query API routes (section 12, checked right here).
  const isApi = (o: Json) => !['operations', 'sync', 'queries'].includes(o.tags[0])
  const api = [...operations].filter(([, o]) => isApi(o))
  t.equal(api.length, RESOURCES.length * OPERATIONS.length)
  const queryOps = [...operations].filter(([, o]) => o.tags[0] === 'queries')
  t.same(
    queryOps.map(([route]) => route).sort(),
    QUERY_FACTS.routes.map((r) => `${r.method} ${QUERY_FACTS.path}${r.path}`).sort(),
    'the five Query API routes are documented',
  )
  for (const [route, o] of queryOps) {
    for (const status of ['400', '401', '403', '404', '409', '429', '502', '503', '504']) {
      t.ok(o.responses[status], `${route} documents ${status}`)
    }
    t.ok(
      o.responses['409'].content['application/json'].examples.IPDR_GW_UPSTREAM_QUERY_NOT_COMPLETED,
      `${route} 409 names the Query API's own code`,
    )
  }
  for (const code of Object.keys(ERRORS) as ErrorCode[]) {
    const status = String(ERRORS[code].status)
    const where = [...operations].filter(
      ([, o]) => o.responses[status]?.content?.['application/json']?.examples?.[code] !== undefined,
    )
    t.ok(where.length > 0, `${code} is documented under ${status}`)
    t.same(doc.components.examples[code].value, errorBody(code), `${code} example body`)
    const scope: readonly string[] = ERROR_SCOPES[code]
    if (OPERATIONS.every((op) => scope.includes(op))) {
      t.equal(where.filter(([, o]) => isApi(o)).length, api.length, `${code} on every API operation`)
    }
  }
  // SPEC 3.3's statuses, each on at least one API operation.
  for (const status of [400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 502, 503, 504]) {
    t.ok(
      api.some(([, o]) => o.responses[String(status)]),
      `${status} documented`,
    )
  }
  for (const [route, operation] of operations) {
    for (const [status, response] of Object.entries(operation.responses as Json)) {
      t.same(
        response.headers?.['X-Request-Id'],
        { $ref: '#/components/headers/X-Request-Id' },
        `${route} ${status}`,
      )
      if (Number(status) >= 400 && !(route === 'GET /readyz' && status === '503')) {
        t.same(response.content['application/json'].schema, { $ref: '#/components/schemas/Error' })
      }
      if (status === '401') t.ok(response.headers['WWW-Authenticate'], `${route} 401 WWW-Authenticate`)
      if (status === '429') t.ok(response.headers['Retry-After'], `${route} 429 Retry-After`)
    }
  }
  const error = doc.components.schemas.Error
  t.same(error.required, ['statusCode', 'error', 'code', 'message'])
  t.same(error.properties.code.enum, Object.keys(ERRORS))
})

t.test('caching, rate-limit and request-id headers are documented', async (t) => {
  const { app } = await gateway(t)
  const doc = await documentOf(app)
  for (const name of [
    'X-Request-Id',
    'X-Cache',
    'ETag',
    'Cache-Control',
    'Vary',
    'X-Total-Count',
    'Content-Encoding',
    'RateLimit-Limit',
    'RateLimit-Remaining',
    'RateLimit-Reset',
    'Retry-After',
    'WWW-Authenticate',
  ]) {
    t.ok(doc.components.headers[name]?.schema, `components.headers.${name}`)
    t.ok(doc.components.headers[name]?.description)
  }
  t.same(doc.components.headers['X-Cache'].schema.enum, ['HIT', 'MISS', 'STALE'])
  for (const facts of RESOURCES) {
    const list = doc.paths[facts.path].get
    const headers = Object.keys(list.responses['200'].headers)
    for (const h of [
      'X-Cache',
      'ETag',
      'Cache-Control',
      'X-Total-Count',
      'RateLimit-Limit',
      'RateLimit-Remaining',
      'RateLimit-Reset',
    ]) {
      t.ok(headers.includes(h), `${facts.name} list 200 ${h}`)
    }
    t.ok(list.responses['304'], 'revalidation answer')
    t.notOk(list.responses['304'].content, '304 has no body')
    t.ok(list.parameters.some((p: Json) => p.in === 'header' && p.name === 'If-None-Match'))
    t.ok(list.responses['429'].headers['RateLimit-Remaining'])
    const create = doc.paths[facts.path].post
    t.ok(create.responses['200'].headers['Cache-Control'])
  }
})

t.test('credential forms are security schemes', async (t) => {
  const { app } = await gateway(t)
  const doc = await documentOf(app)
  const schemes = doc.components.securitySchemes
  t.match(schemes.gatewayKey, { type: 'http', scheme: 'bearer' })
  t.match(schemes.trisulToken, { type: 'http', scheme: 'bearer' })
  t.match(schemes.trisulUsername, { type: 'apiKey', in: 'header', name: 'X-Trisul-Username' })
  t.match(schemes.basicAuth, { type: 'http', scheme: 'basic' })
  t.same(doc.security, API_SECURITY, 'forms 1-3 for the API, in SPEC order')
  t.match(doc.info.description, /api_token/, 'form 4 (body credentials) is described')
  for (const url of OPERATIONS_ROUTE_URLS) {
    t.same(doc.paths[url].get.tags, ['operations'])
    if (url !== '/metrics') t.same(doc.paths[url].get.security, [], `${url} needs no credentials`)
  }
  t.same(doc.paths['/metrics'].get.security, [{}, { metricsToken: [] }], 'the scrape token is optional')
  for (const [, operation] of documentedOperations(doc)) {
    for (const p of operation.parameters ?? []) {
      t.not(p.name.toLowerCase(), 'authorization', 'Authorization is a security scheme, not a parameter')
      t.not(p.name, 'X-Trisul-Username')
    }
  }
})

t.test('parameters and bodies follow the resource table and the body schemas', async (t) => {
  const { app } = await gateway(t)
  const doc = await documentOf(app)
  const validators = bodyValidators(DEFAULT_VALIDATION)
  for (const facts of RESOURCES) {
    const list = doc.paths[facts.path].get
    const query = list.parameters.filter((p: Json) => p.in === 'query').map((p: Json) => p.name)
    t.same(query, [...facts.filters.map((f) => f.name), ...PAGING_PARAMS], `${facts.name} listing filters`)
    t.ok(
      list.parameters.every((p: Json) => p.required === false),
      'all optional',
    )
    for (const op of KEYED) {
      const operation = doc.paths[apiPath(facts.path, true)][METHOD[op]]
      const param = operation.parameters.find((p: Json) => p.in === 'path')
      t.match(param, {
        name: 'UserID',
        required: true,
        schema: { pattern: DEFAULT_VALIDATION.userIdPattern },
      })
    }
    for (const op of WRITE_OPERATIONS) {
      const operation = doc.paths[apiPath(facts.path, op !== 'create')][METHOD[op]]
      const example = BODY_EXAMPLES[facts.name][op]
      if (example === null) {
        t.notOk(operation.requestBody, `${facts.name} ${op} takes no body`)
        continue
      }
      const media = operation.requestBody.content['application/json']
      t.equal(operation.requestBody.required, true)
      t.same(
        media.schema,
        asOpenApi30(bodySchema(facts, op, DEFAULT_VALIDATION)),
        `${facts.name} ${op}: the route's body schema`,
      )
      t.same(media.example, example)
      t.ok(
        validators.get(`${facts.name}:${op}`)?.(structuredClone(example)),
        `${facts.name} ${op} example is valid`,
      )
    }
  }
})

t.test('examples come from the Trisul docs', async (t) => {
  const { app } = await gateway(t)
  const doc = await documentOf(app)
  const customers = doc.paths['/api/ipdrcustomers'].get.responses['200'].content['application/json']
  t.match(customers.examples.upstream.value[0], { id: 5, Name: 'Trisul', UserID: 'B68t19' })
  const mappings = doc.paths['/api/ipdrcustomers_mapping'].get.responses['200'].content['application/json']
  t.match(mappings.examples.upstream.value[0], { id: 1, ipdr_customer_id: 4, ipsubnet: '172.27.19.224' })
  t.equal(doc.components.schemas.Mapping.properties.endtime.nullable, true)
})

t.test('the document shows the validation rules of the policy at start', async (t) => {
  const phonePattern = '^[0-9]{10}$'
  const { app } = await gateway(t, { gateway: { validation: { phonePattern } } })
  const doc = await documentOf(app)
  const schema = doc.paths['/api/ipdrcustomers'].post.requestBody.content['application/json'].schema
  t.same(schema.properties.PhoneNumber.anyOf, [{ maxLength: 0 }, { pattern: phonePattern }])
})

t.test('documentation only: the listing, its query errors and write answers are unchanged', async (t) => {
  // Odd spacing and fields no schema knows: a serializer would reformat or drop them.
  const listing =
    '[ {"id": 5,  "UserID":"B68t19", "Name":"Trisul", "extra": {"nested": [1, 2]}} ,\n{"id":6,"UserID":"Xlr8d3","Name":"Analytics"} ]'
  const upstream = await startRecordingUpstream((req) =>
    req.method === 'GET'
      ? { kind: 'raw', body: listing }
      : { kind: 'json', body: { id: 7, UserID: 'N1', Name: 'New', Address: '', extra: 'kept' } },
  )
  t.teardown(() => upstream.close())
  const policy = await makePolicy(t)
  const gw = await startGateway(t, { policy, upstreamUrl: upstream.url })

  const plain = await request(`${gw.url}/api/ipdrcustomers`, { headers: AUTH })
  t.equal(plain.statusCode, 200)
  t.equal(await plain.body.text(), listing, 'the upstream bytes, exactly')

  const read = await request(`${gw.url}/api/ipdrcustomers/B68t19`, { headers: AUTH })
  t.same(await read.body.json(), { id: 5, UserID: 'B68t19', Name: 'Trisul', extra: { nested: [1, 2] } })

  const page = await request(`${gw.url}/api/ipdrcustomers?limit=1&offset=1`, { headers: AUTH })
  t.equal(page.headers['x-total-count'], '2')
  t.same(await page.body.json(), [{ id: 6, UserID: 'Xlr8d3', Name: 'Analytics' }])

  for (const query of ['limit=0', 'UserID=a&UserID=b', 'nope=1', 'offset=-1', 'q=']) {
    const res = await request(`${gw.url}/api/ipdrcustomers?${query}`, { headers: AUTH })
    const body = (await res.body.json()) as Json
    t.equal(res.statusCode, 400, query)
    t.equal(body.code, 'IPDR_GW_INVALID_QUERY')
    const parsed = parseListingQuery(
      RESOURCE_BY_NAME.customers,
      Object.fromEntries(new URLSearchParams(query)) as Json,
    )
    if (!query.includes('&'))
      t.same(parsed.ok ? null : parsed.message, body.message, "the parser's own message")
    else t.match(body.message, /repeated/)
  }

  const created = await request(`${gw.url}/api/ipdrcustomers`, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json' },
    body: JSON.stringify({ UserID: 'N1', Name: 'New' }),
  })
  t.equal(created.statusCode, 200)
  t.same(await created.body.json(), { id: 7, UserID: 'N1', Name: 'New', Address: '', extra: 'kept' })
})

/** `printRoutes` with hooks, without the entries of the document route itself. */
function routeHooks(app: FastifyInstance): string {
  const blocks: string[][] = []
  for (const line of app.printRoutes({ includeHooks: true, commonPrefix: false }).split('\n')) {
    if (line.includes('•')) blocks.at(-1)?.push(line)
    else blocks.push([line])
  }
  return blocks
    .filter((b) => !b[0]?.includes(OPENAPI_PATH))
    .flat()
    .join('\n')
}

t.test('documentation only: the routes run the same hooks with and without the document', async (t) => {
  const { buildApp: withoutDocs } = await t.mockImport<typeof import('../../../src/app.js')>(
    '../../../src/app.js',
    {
      '../../../src/http/openapi/plugin.js': { registerOpenApi: async () => {} },
    },
  )
  const policy = await makePolicy(t)
  const bare = await withoutDocs({ policy, upstreamUrl: 'http://127.0.0.1:9', logger: false, probe: false })
  t.teardown(() => bare.close())
  await bare.ready()
  t.notOk(bare.hasRoute({ method: 'GET', url: OPENAPI_PATH }), 'the mock took effect')
  const { app } = await gateway(t)
  const hooks = routeHooks(app)
  t.match(hooks, /\/api\/ipdrcustomers/)
  t.equal(hooks, routeHooks(bare), 'no per-request hook comes with @fastify/swagger')
})

t.test('Swagger UI is served only when switched on', async (t) => {
  t.test('off by default', async (t) => {
    const { app } = await gateway(t)
    const res = await app.inject({ url: SWAGGER_UI_PREFIX })
    t.equal(res.statusCode, 404)
    t.equal(res.json().code, 'IPDR_GW_NOT_FOUND')
    t.equal((await app.inject({ url: OPENAPI_PATH })).statusCode, 200, 'the document is always served')
  })
  for (const [name, spec, options] of [
    ['by the policy', { gateway: { docs: { swaggerUi: true } } }, {}],
    ['by the app option (the npm start demo)', {}, { swaggerUi: true }],
  ] as const) {
    t.test(name, async (t) => {
      const { app } = await gateway(t, spec, options)
      const res = await app.inject({ url: SWAGGER_UI_PREFIX })
      t.equal(res.statusCode, 200)
      t.match(res.headers['content-type'], /^text\/html/)
      t.match(res.body, /swagger-ui-bundle\.js/)
      const csp = String(res.headers['content-security-policy'])
      for (const [directive, value] of Object.entries(SWAGGER_UI_CSP)) t.match(csp, `${directive} ${value};`)
      t.notMatch(csp, /upgrade-insecure-requests/)
      const json = await app.inject({ url: `${SWAGGER_UI_PREFIX}/json` })
      t.equal(json.statusCode, 200)
      t.same(json.json(), await documentOf(app), 'the UI reads the same document')
      const asset = await app.inject({ url: `${SWAGGER_UI_PREFIX}/static/swagger-ui-bundle.js` })
      t.equal(asset.statusCode, 200)
    })
  }
})

t.test('documentationSchema keeps other routes as they are', async (t) => {
  const rules = DEFAULT_VALIDATION
  const route = (extra: Partial<RouteOptions>) =>
    ({ method: 'GET', url: '/x', handler: () => {}, ...extra }) as RouteOptions
  const hidden = { hide: true }
  t.equal(
    documentationSchema(
      route({ schema: hidden, config: { resource: 'customers', operation: 'list' } }),
      '/x',
      rules,
    ),
    hidden,
  )
  const own = { summary: 'own' }
  t.equal(documentationSchema(route({ schema: own }), '/x', rules), own, 'unknown routes keep their schema')
  t.equal(documentationSchema(route({}), '/x', rules), undefined)
  t.equal(
    documentationSchema(
      route({ schema: own, config: { resource: 'nope' as never, operation: 'list' } }),
      '/x',
      rules,
    ),
    own,
  )
  t.equal(
    documentationSchema(
      route({ schema: own, config: { resource: 'customers', operation: 'nope' as never } }),
      '/x',
      rules,
    ),
    own,
  )
  t.match(documentationSchema(route({ config: { resource: 'mappings', operation: 'read' } }), '/x', rules), {
    operationId: 'readMappings',
    tags: ['mappings'],
  })
  t.match(documentationSchema(route({}), '/healthz', rules), { tags: ['operations'], security: [] })
})

t.test("errorCodesByStatus groups an operation's codes by ascending status", async (t) => {
  const list = errorCodesByStatus('list')
  const statuses = [...list.keys()]
  t.same(
    statuses,
    [...statuses].sort((a, b) => a - b),
  )
  t.ok(list.get(400)?.includes('IPDR_GW_INVALID_QUERY'))
  t.notOk(list.get(400)?.includes('IPDR_GW_VALIDATION'), 'a listing has no body to validate')
  t.same(errorCodesByStatus('metrics').get(401), ['IPDR_GW_METRICS_UNAUTHORIZED'])
})
