/**
 * The OpenAPI document at GET /openapi.json and, when switched on, Swagger UI
 * at /docs (shared/SPEC.md 3; docs/openapi.md).
 *
 * @fastify/swagger collects every route as it is added (register this before
 * the routes). The documentation schemas of src/http/openapi/document.ts are
 * applied through its `transform`, which runs only when the document is
 * generated: the routes themselves keep their own schemas, so no querystring
 * validator and no response serializer is compiled from the documentation.
 * The listing keeps its own query parser (400 `IPDR_GW_INVALID_QUERY`) and
 * sends the upstream bytes untouched.
 */
import { readFileSync } from 'node:fs'
import swagger, { type FastifyDynamicSwaggerOptions } from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify'
import type { Policy, ValidationPolicy } from '../../policy/types.js'
import { OPERATIONS, type Operation, RESOURCE_BY_NAME, type ResourceName } from '../../resources.js'
import {
  apiRouteSchema,
  documentFrame,
  OPENAPI_PATH,
  operationsRouteSchema,
  queryRouteSchema,
  referenceSharedHeaders,
  SWAGGER_UI_PREFIX,
  syncRouteSchema,
} from './document.js'

export { OPENAPI_PATH, SWAGGER_UI_PREFIX } from './document.js'

export interface OpenApiRegistration {
  /**
   * The policy store (or anything with the policy in force as `current`).
   * Read once, here: the document shows the validation rules of the policy
   * at start, and `docs.swaggerUi` switches Swagger UI on (routes cannot be
   * added to a running server, so a reload does not change either).
   */
  readonly store: { readonly current: Policy }
  /**
   * Serve Swagger UI even when the policy's `docs.swaggerUi` is false (the
   * `npm start` demo). Default false: the policy alone decides.
   */
  readonly swaggerUi?: boolean
  /** `info.version` of the document. Default: the `version` of package.json. */
  readonly version?: string
}

/**
 * A restrictive Content-Security-Policy for the Swagger UI pages: everything
 * from this origin, no framing by others, no plugins. Swagger UI sets inline
 * styles, hence `'unsafe-inline'` for styles only. (The plugin's own
 * `staticCSP: true` adds `upgrade-insecure-requests`, which breaks "Try it
 * out" against a plain-HTTP gateway.)
 */
export const SWAGGER_UI_CSP: Readonly<Record<string, string>> = {
  'default-src': "'self'",
  'base-uri': "'self'",
  'connect-src': "'self'",
  'font-src': "'self' data:",
  'form-action': "'self'",
  'frame-ancestors': "'self'",
  'img-src': "'self' data:",
  'object-src': "'none'",
  'script-src': "'self'",
  'style-src': "'self' 'unsafe-inline'",
}

function packageVersion(): string {
  try {
    // Two levels up from src/http/ and from dist/http/ alike.
    const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')
    const version = (JSON.parse(text) as { version?: unknown }).version
    return typeof version === 'string' ? version : '0.0.0'
  } catch {
    return '0.0.0'
  }
}

interface RouteTag {
  readonly resource: ResourceName
  readonly operation: Operation
}

/** The API routes carry `config: { resource, operation }` (src/http/routes/api.ts). */
function apiRouteTag(route: RouteOptions): RouteTag | null {
  const config = route.config as Partial<RouteTag> | undefined
  const resource = config?.resource
  const operation = config?.operation
  if (resource === undefined || operation === undefined) return null
  if (!Object.hasOwn(RESOURCE_BY_NAME, resource) || !OPERATIONS.includes(operation)) return null
  return { resource, operation }
}

/**
 * The documentation schema of `route`: generated for the API routes and the
 * operations routes; the route's own schema otherwise (hidden routes stay hidden).
 */
export function documentationSchema(
  route: RouteOptions,
  url: string,
  rules: ValidationPolicy,
): FastifySchema | undefined {
  const own = route.schema as FastifySchema | undefined
  if (own?.hide) return own
  const tag = apiRouteTag(route)
  if (tag) return apiRouteSchema(RESOURCE_BY_NAME[tag.resource], tag.operation, rules) as FastifySchema
  const sync = (route.config as { syncRoute?: 'start' | 'job' | 'cancel' } | undefined)?.syncRoute
  if (sync) return syncRouteSchema(sync, rules) as FastifySchema
  const query = (route.config as { queryRoute?: string } | undefined)?.queryRoute
  if (query) return queryRouteSchema(query) as FastifySchema
  return (operationsRouteSchema(url) as FastifySchema | null) ?? own
}

/**
 * Registers @fastify/swagger, GET /openapi.json and, when switched on,
 * @fastify/swagger-ui at /docs. Call before registering the routes to document.
 */
export async function registerOpenApi(app: FastifyInstance, opts: OpenApiRegistration): Promise<void> {
  const policy = opts.store.current
  const rules = policy.gateway.validation
  await app.register(swagger, {
    // A plain JSON frame; swagger-parser validates the result in test/http/openapi/plugin.test.ts.
    openapi: documentFrame(opts.version ?? packageVersion()) as FastifyDynamicSwaggerOptions['openapi'],
    transform: ({ schema, url, route }) => ({
      schema: documentationSchema(route, url, rules) ?? (schema as FastifySchema),
      url,
    }),
    transformObject: (document) =>
      'openapiObject' in document ? referenceSharedHeaders(document.openapiObject) : document.swaggerObject,
  })

  // Generated on first use and kept: the routes cannot change once the server runs.
  let text: string | null = null
  app.get(OPENAPI_PATH, { schema: { hide: true } }, async (_request, reply) => {
    text ??= JSON.stringify(app.swagger())
    reply.header('cache-control', 'no-cache').type('application/json; charset=utf-8').send(text)
  })

  if (opts.swaggerUi === true || policy.gateway.docs.swaggerUi) {
    await app.register(swaggerUi, {
      routePrefix: SWAGGER_UI_PREFIX,
      staticCSP: { ...SWAGGER_UI_CSP },
      // Nothing leaves the page: no call to the public validator badge service.
      validatorUrl: false,
      uiConfig: { deepLinking: true, docExpansion: 'list', displayRequestDuration: true },
    })
  }
}
