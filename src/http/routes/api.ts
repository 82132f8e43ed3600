/**
 * The client-facing API (shared/SPEC.md 3.2): for each resource of the table,
 * list, read, create, replace, update and delete, all on one code path. Only
 * these routes reach the upstream, and only at the two API paths.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { NO_AUDIT, type WriteAudit } from '../../audit/write-audit.js'
import type { ListingSource } from '../../cache/listing-source.js'
import { redactRecord } from '../../cache/redaction.js'
import { GatewayError } from '../../errors.js'
import { type Operation, RESOURCES, type ResourceFacts } from '../../resources.js'
import type { UpstreamClient } from '../../upstream/client.js'
import {
  bodySchema,
  bodyValidators,
  DEFAULT_VALIDATION,
  describeSchemaError,
  timeOrderProblem,
  userIdProblem,
  type WriteOperation,
} from '../../validation/request-schema.js'
import { forwardWrite } from '../../writes/write-forwarder.js'
import { type AdmissionDeps, makeAdmission } from '../admission/admission.js'
import { sendListing, sendRead } from '../listing/replies.js'

/** The admission's dependencies (parseJson, rateLimiter, onDenied, isKnownGood, chargeUnproven) and the routes' own. */
export interface ApiRouteDeps extends AdmissionDeps {
  readonly upstream: UpstreamClient
  readonly listings: ListingSource
  /** Where forwarded writes are recorded (SPEC 11). Default: nowhere. */
  readonly audit?: WriteAudit
  /** Per-route `config.rateLimit` (the policy layer's rate limiter reads it). */
  readonly rateLimitConfig?: () => object
}

const patternCache = new Map<string, RegExp>()
function compiled(pattern: string): RegExp {
  let re = patternCache.get(pattern)
  if (!re) {
    re = new RegExp(pattern, 'u')
    if (patternCache.size > 64) patternCache.clear()
    patternCache.set(pattern, re)
  }
  return re
}

function pathUserId(request: FastifyRequest): string | null {
  const params = request.params as { UserID?: string } | undefined
  return params?.UserID ?? null
}

export function registerApiRoutes(app: FastifyInstance, deps: ApiRouteDeps): void {
  for (const facts of RESOURCES) {
    const route = (operation: Operation, method: RouteOptions['method'], withKey: boolean) => {
      const url = withKey ? `${facts.path}/:UserID` : facts.path
      const isWrite = operation !== 'list' && operation !== 'read'
      const admit = makeAdmission(facts, operation, deps, {
        path: checkPathUserId,
        ...(isWrite ? { body: (request) => checkBody(request, facts, operation as WriteOperation) } : {}),
      })
      const opts: RouteOptions = {
        method,
        url,
        config: {
          resource: facts.name,
          operation,
          ...(deps.rateLimitConfig ? { rateLimit: deps.rateLimitConfig() } : {}),
        },
        onRequest: admit.onRequest,
        preValidation: admit.preValidation,
        handler: isWrite
          ? (request, reply) => handleWrite(request, reply, facts, operation as WriteOperation, deps)
          : operation === 'list'
            ? (request, reply) => sendListing(request, reply, facts, deps.listings, deps.audit ?? NO_AUDIT)
            : (request, reply) => sendRead(request, reply, facts, deps.listings, deps.audit ?? NO_AUDIT),
      }
      if (isWrite) {
        // Documentation only: the admission step checks the body with the rules of the request's policy.
        opts.schema = { body: bodySchema(facts, operation as WriteOperation, DEFAULT_VALIDATION) }
        opts.validatorCompiler = () => (data: unknown) => ({ value: data })
      }
      app.route(opts)
    }
    route('list', 'GET', false)
    route('read', 'GET', true)
    route('create', 'POST', false)
    route('replace', 'PUT', true)
    route('update', 'PATCH', true)
    route('delete', 'DELETE', true)
  }
}

function checkPathUserId(request: FastifyRequest): void {
  const id = pathUserId(request)
  if (id === null) return
  const problem = userIdProblem(id, request.url, compiled(request.gw.policy.gateway.validation.userIdPattern))
  if (problem) throw new GatewayError('IPDR_GW_INVALID_USER_ID', problem)
}

/** SPEC 3.5 under the rules of the request's policy (a reload may change them); the body checked is the one forwarded. */
function checkBody(request: FastifyRequest, facts: ResourceFacts, op: WriteOperation): void {
  const validate = bodyValidators(request.gw.policy.gateway.validation).get(`${facts.name}:${op}`)
  const value = request.body ?? {}
  if (!validate?.(value)) throw new GatewayError('IPDR_GW_VALIDATION', describeSchemaError(validate?.errors))
  request.body = value
}

async function handleWrite(
  request: FastifyRequest,
  reply: FastifyReply,
  facts: ResourceFacts,
  op: WriteOperation,
  deps: ApiRouteDeps,
): Promise<void> {
  const auth = request.upstreamAuth
  if (!auth) throw new GatewayError('IPDR_GW_MISSING_CREDENTIALS')
  const policy = request.gw.policy
  const fields = (request.body ?? {}) as Record<string, unknown>
  const userId = pathUserId(request)
  if (userId !== null && fields.UserID !== undefined && fields.UserID !== userId) {
    throw new GatewayError('IPDR_GW_USER_ID_MISMATCH')
  }
  const order = timeOrderProblem(fields)
  if (order) throw new GatewayError('IPDR_GW_VALIDATION', order)

  // `mappings.delete: expire` (SPEC 17): the mapping is ended now rather than deleted, so who had the
  // address in the past stays answerable. Sent, audited and answered as the update it is.
  const expire = facts.name === 'mappings' && op === 'delete' && policy.gateway.mappings.delete === 'expire'
  // Throws 503 before anything is sent when the intent cannot be recorded and the audit is required.
  const result = await forwardWrite(
    {
      upstream: deps.upstream,
      listings: deps.listings,
      audit: deps.audit ?? NO_AUDIT,
    },
    {
      facts,
      operation: expire ? 'update' : op,
      pathUserId: userId,
      fields: expire ? { ...fields, endtime: String(Math.floor(Date.now() / 1000)) } : fields,
      auth,
      policy,
      requestId: String(request.id),
      consumer: request.gw.consumerName,
      client: request.ip,
      trace: request.gw.trace,
    },
  )
  const redact = request.gw.consumer?.redact ?? []
  reply.header('cache-control', 'no-store')
  if (redact.length > 0) {
    reply.send(redactRecord(result.value, redact))
    return
  }
  // The upstream's own bytes (already checked to be a JSON object): nothing re-serialized.
  reply.type('application/json; charset=utf-8').send(result.body)
}
