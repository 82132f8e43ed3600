/**
 * The API routes' preValidation step: read a GET body, resolve the credentials,
 * find the consumer, apply its rules, and leave on the request what the handler
 * needs (`request.gw`, `request.upstreamAuth`). Denied requests never reach the
 * upstream. Credential fields are removed from the body here, so nothing later
 * can log, validate or forward the client's copy.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { hashToken } from '../cache/listing-cache.js'
import {
  CREDENTIAL_HEADERS,
  headerValues,
  type ResolvedCredentials,
  resolveCredentials,
} from '../credentials.js'
import { GatewayError, WWW_AUTHENTICATE } from '../errors.js'
import { evaluate, findConsumer } from '../policy/evaluate.js'
import type { ConsumerPolicy, Policy } from '../policy/types.js'
import { CREDENTIAL_FIELDS, type Operation, type ResourceFacts } from '../resources.js'
import { hasBody, readRawBody } from './get-body.js'
import './request-context.js'

/** The upstream identity a request acts as. Never logged. */
export interface UpstreamAuth {
  readonly username: string
  readonly token: string
  /** sha256 of the token: cache keys never hold the token itself. */
  readonly tokenHash: string
  readonly context: string
}

declare module 'fastify' {
  interface FastifyRequest {
    upstreamAuth: UpstreamAuth | null
  }
}

export interface AuthenticateDeps {
  readonly policy: () => Policy
  readonly parseJson: (text: string) => unknown
  readonly onDenied?: (consumer: string, operation: Operation) => void
}

function unauthorized(code: GatewayError['code'], message: string): GatewayError {
  return new GatewayError(code, message, { headers: { 'www-authenticate': WWW_AUTHENTICATE } })
}

export function makeAuthenticate(facts: ResourceFacts, operation: Operation, deps: AuthenticateDeps) {
  return async function authenticate(request: FastifyRequest, _reply: FastifyReply): Promise<void> {
    const policy = request.gw.policy
    request.gw.resource = facts.name
    request.gw.operation = operation

    if (request.method === 'GET' && hasBody(request.raw)) {
      const raw = await readRawBody(request.raw, policy.gateway.limits.bodyBytes)
      const text = raw.toString('utf8').trim()
      if (text.length > 0) {
        try {
          request.body = deps.parseJson(text)
        } catch (err) {
          throw new GatewayError('IPDR_GW_INVALID_JSON', undefined, { cause: err })
        }
      }
    }

    const resolved: ResolvedCredentials = resolveCredentials({
      headers: headerValues(request.raw.rawHeaders, CREDENTIAL_HEADERS),
      body: request.body,
      bodyCredentials: policy.gateway.auth.bodyCredentials,
      isGatewayKey: (keyHash) => findConsumer(policy, { kind: 'key', keyHash }) !== null,
    })
    if (!resolved.ok) throw unauthorized(resolved.code, resolved.message)

    let consumer: ConsumerPolicy | null
    let username: string
    let token: string
    let tokenHash: string | undefined
    if (resolved.form === 'key') {
      consumer = findConsumer(policy, { kind: 'key', keyHash: resolved.keyHash })
      const tokenValue = consumer ? policy.tokens.get(consumer.name) : undefined
      if (!consumer?.upstream || tokenValue === undefined) {
        throw unauthorized('IPDR_GW_MALFORMED_CREDENTIALS', 'This gateway key has no upstream credentials')
      }
      username = consumer.upstream.username
      token = tokenValue
    } else {
      consumer = findConsumer(policy, { kind: 'username', username: resolved.username })
      username = resolved.username
      token = resolved.token
      tokenHash = resolved.tokenHash
    }
    request.gw.consumer = consumer
    request.gw.consumerName = consumer?.name ?? 'unknown'

    const decision = evaluate(policy, { consumer, resource: facts.name, operation, clientIp: request.ip })
    if (!decision.allow) {
      deps.onDenied?.(request.gw.consumerName, operation)
      throw new GatewayError(decision.code, decision.message)
    }
    // A named consumer shares one budget across its credentials; the default
    // consumer is counted per upstream username (shared/SPEC.md 4).
    request.gw.rateKey =
      consumer && consumer.name !== 'default' ? `consumer:${consumer.name}` : `default:${username}`

    const upstreamPolicy = policy.gateway.upstream
    // v1 has no contexts: every request of a user shares one listing, whatever header it sent.
    const context =
      upstreamPolicy.dialect === 'v1'
        ? upstreamPolicy.defaultContext
        : (resolved.context ?? consumer?.upstream?.context ?? upstreamPolicy.defaultContext)
    request.upstreamAuth = { username, token, tokenHash: tokenHash ?? hashToken(token), context }

    const body = request.body
    if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
      for (const f of CREDENTIAL_FIELDS) delete (body as Record<string, unknown>)[f]
    }
  }
}
