/**
 * The client-facing API (shared/SPEC.md 3.2): for each resource of the table,
 * list, read, create, replace, update and delete, all on one code path. Only
 * these routes reach the upstream, and only at the two API paths.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import { NO_AUDIT, type WriteAudit } from '../../audit/write-audit.js'
import type { ListingSource } from '../../cache/listing-source.js'
import { GatewayError } from '../../errors.js'
import { type Operation, RESOURCES, type ResourceFacts } from '../../resources.js'
import type { UpstreamClient } from '../../upstream/client.js'
import {
  bodySchema,
  DEFAULT_VALIDATION,
  pathUserIdRefusal,
  type WriteOperation,
} from '../../validation/request-schema.js'
import { type AdmissionDeps, makeAdmission } from '../admission/admission.js'
import { sendListing, sendRead } from '../listing/replies.js'
import {
  answerWrite,
  WRITE_CACHE_CONTROL,
  WRITE_CONTENT_TYPE,
  writeBodyRefusal,
  writeRefusal,
} from '../writes/write-answer.js'

/** The admission's dependencies (parseJson, rateLimiter, onDenied, isKnownGood, chargeUnproven) and the routes' own. */
export interface ApiRouteDeps extends AdmissionDeps {
  readonly upstream: UpstreamClient
  readonly listings: ListingSource
  /** Where forwarded writes are recorded (SPEC 11). Default: nowhere. */
  readonly audit?: WriteAudit
  /** Per-route `config.rateLimit` (the policy layer's rate limiter reads it). */
  readonly rateLimitConfig?: () => object
}

function pathUserIdOf(request: FastifyRequest): string | null {
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
  const id = pathUserIdOf(request)
  if (id === null) return
  const refusal = pathUserIdRefusal(id, request.url, request.gw.policy.gateway.validation)
  if (refusal) throw refusal
}

/** SPEC 3.5 under the rules of the request's policy (a reload may change them); the body checked is the one forwarded. */
function checkBody(request: FastifyRequest, facts: ResourceFacts, op: WriteOperation): void {
  const value = request.body ?? {}
  const refusal = writeBodyRefusal(request.gw.policy, facts, op, value)
  if (refusal) throw refusal
  request.body = value
}

async function handleWrite(
  request: FastifyRequest,
  reply: FastifyReply,
  facts: ResourceFacts,
  operation: WriteOperation,
  deps: ApiRouteDeps,
): Promise<void> {
  const auth = request.upstreamAuth
  if (!auth) throw new GatewayError('IPDR_GW_MISSING_CREDENTIALS')
  const fields = (request.body ?? {}) as Record<string, unknown>
  const pathUserId = pathUserIdOf(request)
  const refusal = writeRefusal(pathUserId, fields)
  if (refusal) throw refusal
  const gw = request.gw
  const body = await answerWrite(deps, {
    facts,
    operation,
    pathUserId,
    fields,
    auth,
    policy: gw.policy,
    requestId: String(request.id),
    consumer: gw.consumer,
    consumerName: gw.consumerName,
    client: request.ip,
    trace: gw.trace,
  })
  reply.header('cache-control', WRITE_CACHE_CONTROL).type(WRITE_CONTENT_TYPE).send(body)
}
