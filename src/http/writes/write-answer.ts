/**
 * A client's write answered (SPEC 3.2, 3.5), the same for the API route and for the write path
 * below Fastify (src/http/writes/write-handler.ts): the checks a write's fields still owe once it
 * is admitted, then the write forwarded (src/writes/write-forwarder.ts) and the body the client
 * gets. Neither path decides anything here on its own (shared/STYLE.md).
 */

import { NO_AUDIT, type WriteAudit } from '../../audit/write-audit.js'
import type { ListingSource } from '../../cache/listing-source.js'
import { redactRecord } from '../../cache/redaction.js'
import { GatewayError } from '../../errors.js'
import type { ConsumerPolicy, Policy } from '../../policy/types.js'
import type { ResourceFacts } from '../../resources.js'
import type { RequestTrace } from '../../telemetry/tracing.js'
import type { UpstreamClient } from '../../upstream/client.js'
import {
  bodyValidators,
  describeSchemaError,
  timeOrderProblem,
  type WriteOperation,
} from '../../validation/request-schema.js'
import { type ForwardedWrite, forwardWrite } from '../../writes/write-forwarder.js'

/** The content type of every write's answer. */
export const WRITE_CONTENT_TYPE = 'application/json; charset=utf-8'
/** A write's answer is never cached by anyone. */
export const WRITE_CACHE_CONTROL = 'no-store'

export interface WriteAnswerDeps {
  readonly upstream: UpstreamClient
  readonly listings: ListingSource
  /** Where forwarded writes are recorded (SPEC 11). Default: nowhere. */
  readonly audit?: WriteAudit
}

/** An admitted write: its body checked against the policy's schema, credentials removed. */
export interface AdmittedWrite
  extends Pick<
    ForwardedWrite,
    'facts' | 'operation' | 'pathUserId' | 'fields' | 'auth' | 'policy' | 'requestId' | 'client'
  > {
  /** The consumer's policy (its `redact` masks the answer); null for none. */
  readonly consumer: ConsumerPolicy | null
  readonly consumerName: string
  readonly trace: RequestTrace | null
}

/** What a write's body (credentials removed; `{}` for none) earns against the policy's schema (SPEC 3.5): a 400, or null. */
export function writeBodyRefusal(
  policy: Policy,
  facts: ResourceFacts,
  op: WriteOperation,
  value: unknown,
): GatewayError | null {
  const validate = bodyValidators(policy.gateway.validation).get(`${facts.name}:${op}`)
  return validate?.(value)
    ? null
    : new GatewayError('IPDR_GW_VALIDATION', describeSchemaError(validate?.errors))
}

/** What the fields of an admitted write still earn (a 400), or null: a UserID that differs from the path's, times out of order. */
export function writeRefusal(
  pathUserId: string | null,
  fields: Readonly<Record<string, unknown>>,
): GatewayError | null {
  if (pathUserId !== null && fields.UserID !== undefined && fields.UserID !== pathUserId) {
    return new GatewayError('IPDR_GW_USER_ID_MISMATCH')
  }
  const order = timeOrderProblem(fields)
  return order ? new GatewayError('IPDR_GW_VALIDATION', order) : null
}

/**
 * Forwards the write and resolves with the body of a `200`: the upstream's own bytes (already
 * checked to be a JSON object), or the record with the consumer's redacted fields masked. Throws
 * the GatewayError the client gets.
 */
export async function answerWrite(deps: WriteAnswerDeps, w: AdmittedWrite): Promise<Buffer | string> {
  const { facts, operation, policy } = w
  // `mappings.delete: expire` (SPEC 17): the mapping is ended now rather than deleted, so who had the
  // address in the past stays answerable. Sent, audited and answered as the update it is.
  const expire =
    facts.name === 'mappings' && operation === 'delete' && policy.gateway.mappings.delete === 'expire'
  // Throws 503 before anything is sent when the intent cannot be recorded and the audit is required.
  const result = await forwardWrite(
    { upstream: deps.upstream, listings: deps.listings, audit: deps.audit ?? NO_AUDIT },
    {
      facts,
      operation: expire ? 'update' : operation,
      pathUserId: w.pathUserId,
      fields: expire ? { ...w.fields, endtime: String(Math.floor(Date.now() / 1000)) } : w.fields,
      auth: w.auth,
      policy,
      requestId: w.requestId,
      consumer: w.consumerName,
      client: w.client,
      trace: w.trace,
    },
  )
  const redact = w.consumer?.redact ?? []
  // What Fastify's default serializer makes of the object: JSON.stringify.
  return redact.length > 0 ? JSON.stringify(redactRecord(result.value, redact)) : result.body
}
