/**
 * The sync job runner (SPEC 10, 13): plans a checked input against listings fetched for the job,
 * and with `mode=apply` sends the writes through the forwarder of single writes (audit,
 * invalidation, no retry), at the policy's pace. Every failure ends in the job document, never
 * thrown. What a plan discloses is bounded by what the consumer could read (SPEC 13): absent
 * customers are named only to a consumer that may list, and every plan is an access line.
 */
import { disclosedIds } from '../audit/disclosure.js'
import type { WriteAudit } from '../audit/write-audit.js'
import type { ListingEntry } from '../cache/listing-entry.js'
import type { ListingSource } from '../cache/listing-source.js'
import { loopTurns, runStepsYielding } from '../cache/steps.js'
import type { UpstreamAuth } from '../credentials.js'
import { GatewayError, toGatewayError, verdictOfError } from '../errors.js'
import type { GatewayMetrics } from '../metrics.js'
import { evaluate } from '../policy/evaluate.js'
import type { ConsumerPolicy, Policy } from '../policy/types.js'
import { RESOURCE_BY_NAME } from '../resources.js'
import { scrubSecrets } from '../secrets.js'
import type { UpstreamClient } from '../upstream/client.js'
import { bodyValidators } from '../validation/request-schema.js'
import { forwardWrite } from '../writes/write-forwarder.js'
import { applyWrites } from './apply.js'
import { type CheckedInput, type InputRules, SyncInputError, syncInputs } from './input.js'
import type { SyncJob } from './jobs.js'
import { type CurrentState, type SyncPlan, SyncPlanner } from './plan.js'

const CUSTOMERS = RESOURCE_BY_NAME.customers

export interface JobRunnerDeps {
  readonly upstream: UpstreamClient
  readonly listings: ListingSource
  readonly audit: WriteAudit
  readonly metrics: GatewayMetrics
  /** Settles a failed-authentication charge the job holds (SPEC 13), once Trisul has answered its credentials. */
  readonly settleCharge?: (
    address: string,
    auth: UpstreamAuth,
    verdict: 'accepted' | 'refused' | null,
  ) => Promise<void>
}

/** Whether the consumer may read the listing (SPEC 13: else a plan names only the UserIDs it sent). */
export function mayList(policy: Policy, consumer: ConsumerPolicy | null, clientIp: string): boolean {
  return evaluate(policy, { consumer, resource: 'customers', operation: 'list', clientIp }).allow
}

export interface JobContext {
  /** The request was charged a failed authentication, which the job settles once Trisul answers. */
  readonly charged: boolean
  readonly input: CheckedInput
  readonly csv: boolean
  /** The consumer may list customers: absent UserIDs may be named. */
  readonly mayList: boolean
  /** The consumer's `redact`: never compared (written when sent). */
  readonly redact: readonly string[]
  readonly requestId: string
  readonly auth: UpstreamAuth
  readonly policy: Policy
  readonly consumer: string
  readonly client: string
  /** Where a job that fails for the gateway's own reason (5xx) is logged. */
  readonly log: { error(obj: object, msg: string): void }
}

/** What Trisul holds, read from the listings fetched for the job. */
function currentOf(customers: ListingEntry, mappings: ListingEntry | null): CurrentState {
  return {
    customer: (userId) => {
      const pos = customers.lookup(userId)[0]
      return pos === undefined ? undefined : customers.record(pos)
    },
    *userIds() {
      for (let pos = 0; pos < customers.count; pos++) {
        const id = customers.record(pos).UserID
        if (typeof id === 'string') yield id
      }
    },
    mappingsOf: (customerId) => {
      if (mappings === null || (typeof customerId !== 'number' && typeof customerId !== 'string')) return []
      return mappings.lookup(customerId).map((p) => mappings.record(p))
    },
  }
}

/** Plans, and with `mode=apply` applies; every failure ends in the job document, never thrown. */
export async function runJob(job: SyncJob, deps: JobRunnerDeps, ctx: JobContext): Promise<void> {
  try {
    const { policy, auth } = ctx
    let customers: ListingEntry
    try {
      customers = await deps.listings.fresh(CUSTOMERS, auth, policy, `${job.id}.customers`)
    } catch (err) {
      if (ctx.charged) await deps.settleCharge?.(ctx.client, auth, verdictOfError(toGatewayError(err)))
      throw err
    }
    if (ctx.charged) await deps.settleCharge?.(ctx.client, auth, 'accepted')
    // Under `mappings.delete: expire` a delete retires the absent customers' mappings: it needs them.
    const expireMappings = job.deleteAbsent && policy.gateway.mappings.delete === 'expire'
    const mappings =
      ctx.csv || expireMappings
        ? await deps.listings.fresh(RESOURCE_BY_NAME.mappings, auth, policy, `${job.id}.mappings`)
        : null
    const planner = new SyncPlanner(currentOf(customers, mappings), {
      delete: job.deleteAbsent,
      expireMappings,
      now: Math.floor(Date.now() / 1000),
      blind: ctx.redact,
      keepWrites: job.mode === 'apply',
    })
    const validators = bodyValidators(policy.gateway.validation)
    const rules: InputRules = {
      customer: validators.get('customers:create') as InputRules['customer'],
      mapping: validators.get('mappings:create') as InputRules['mapping'],
      timeZone: policy.gateway.upstream.timeZone,
    }
    // A turn for other requests every few ms: a record costs up to 0.2 ms (parsing, validation, a
    // time-zone conversion), so a count of records would let a slow one hold the loop.
    const turn = loopTurns()
    for await (const input of syncInputs(ctx.input, rules)) {
      planner.add(input)
      await turn()
      if (job.cancelRequested) break
    }
    const plan = await runStepsYielding(planner.finishSteps())
    job.planned(plan, { nameAbsent: ctx.mayList })
    await deps.audit.access({
      requestId: ctx.requestId,
      consumer: ctx.consumer,
      client: ctx.client,
      trisulUser: auth.username,
      context: auth.context,
      resource: 'customers',
      operation: job.mode === 'apply' ? 'sync-apply' : 'sync-plan',
      query: { mode: job.mode, delete: job.deleteAbsent, syncJob: job.id },
      status: 200,
      disclosed: disclosedIds(disclosedUserIds(planner, plan, ctx.mayList), deps.audit.readUserIds),
      redacted: ctx.redact,
    })
    if (job.mode === 'apply' && !job.cancelRequested) {
      const sync = policy.gateway.sync
      const forwarder = { upstream: deps.upstream, listings: deps.listings, audit: deps.audit }
      await applyWrites(plan.writes, {
        concurrency: sync.concurrency,
        perSecond: sync.maxWritesPerSecond,
        cancelled: () => job.cancelRequested,
        write: async (w, index) => {
          try {
            await forwardWrite(forwarder, {
              facts: RESOURCE_BY_NAME[w.resource],
              operation: w.operation,
              pathUserId: w.operation === 'create' ? null : w.UserID,
              fields: w.fields,
              auth,
              policy,
              requestId: `${job.id}.${index + 1}`,
              consumer: ctx.consumer,
              client: ctx.client,
              before: w.before,
              syncJob: job.id,
            })
            return { ok: true, status: 200 }
          } catch (err) {
            const ge = toGatewayError(err)
            return { ok: false, status: ge.statusCode, code: ge.code, message: ge.message }
          }
        },
        onOutcome: (w, outcome) => {
          const result = outcome.ok ? 'ok' : outcome.status < 500 ? 'rejected' : 'failed'
          deps.metrics.syncWrites.inc({ resource: w.resource, operation: w.operation, outcome: result })
          job.wrote(
            outcome.ok,
            outcome.ok
              ? undefined
              : {
                  // A customer deleted because it was absent is named only to a consumer that may list.
                  UserID:
                    ctx.mayList || w.operation !== 'delete' || w.resource !== 'customers' ? w.UserID : null,
                  status: outcome.status,
                  code: outcome.code ?? 'IPDR_GW_INTERNAL',
                  message: scrubSecrets(outcome.message ?? '', [ctx.auth.token]),
                  resource: w.resource,
                  operation: w.operation,
                },
          )
        },
      })
    }
    job.finish()
  } catch (err) {
    const ge =
      err instanceof SyncInputError
        ? new GatewayError('IPDR_GW_SYNC_INVALID_INPUT', err.message)
        : toGatewayError(err)
    if (ge.statusCode >= 500)
      ctx.log.error({ err: ge.cause ?? ge, code: ge.code, syncJob: job.id }, 'sync job failed')
    job.finish({ UserID: null, status: ge.statusCode, code: ge.code, message: ge.message })
  }
}

/**
 * The UserIDs a plan discloses something of: every UserID of the input (whether each exists shows in
 * the counts), and the absent ones only to a consumer that may list.
 */
function disclosedUserIds(planner: SyncPlanner, plan: SyncPlan, nameAbsent: boolean): readonly string[] {
  const ids = planner.inputUserIds()
  return nameAbsent && plan.absent.length > 0 ? ids.concat(plan.absent) : ids
}
