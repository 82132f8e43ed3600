/**
 * Opens the audit trail a gateway writes (SPEC 11): the file of the policy's `audit.file` or of
 * `--audit-file`, its group-commit writer, and the write and access records made through it.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import { type GatewayMetrics, recordAuditLine } from '../metrics.js'
import type { AuditPolicy } from '../policy/types.js'
import type { AuditHeadStore } from '../store/audit-heads.js'
import { SyslogShipper } from './syslog-shipper.js'
import { NO_AUDIT, WriteAudit } from './write-audit.js'
import { AuditTrail } from './writer.js'

/**
 * The audit trail of `audit.file` (or `--audit-file`), opened before the gateway serves: a file
 * it cannot write, or one another process writes, stops the start when the audit is required.
 */
export async function openWriteAudit(
  policy: AuditPolicy,
  options: {
    readonly auditFile?: string
    readonly instanceName?: string
    readonly now?: () => number
    /** The shared store's place for the head (SPEC 14). */
    readonly headStore?: AuditHeadStore | null
  },
  metrics: GatewayMetrics,
  log: FastifyBaseLogger,
): Promise<WriteAudit> {
  const file = options.auditFile ?? policy.file
  if (file === null) return NO_AUDIT
  const shipper = policy.syslog === null ? null : await shipperOf(policy.syslog, metrics, log)
  let trail: AuditTrail
  try {
    const signingKey = policy.signingKeyFile === null ? null : await signingKeyOf(policy.signingKeyFile)
    trail = await AuditTrail.open({
      file,
      fsync: policy.fsync,
      maxBytes: policy.maxBytes,
      signingKey,
      checkpointMs: policy.checkpointSeconds * 1000,
      retainDays: policy.legalHold ? null : policy.retainDays,
      headStore: options.headStore ?? null,
      onRetention: (deleted) =>
        log.info({ file: deleted }, 'audit trail: a rotated file past audit.retainDays deleted'),
      onGap: ({ known, found }) =>
        log.error(
          { file, knownSeq: known.seq, foundSeq: found.seq },
          'audit trail: the file is shorter than its last checkpoint (lines deleted, or the file replaced); a gap line records it',
        ),
      ...(shipper ? { onLines: (lines: readonly string[]) => shipper.ship(lines) } : {}),
      ...(options.instanceName ? { instance: options.instanceName } : {}),
      ...(options.now ? { now: options.now } : {}),
      onRepair: (info) =>
        log.warn(
          info,
          'audit trail: closed a line torn by a crash with a repair line (audit verify shows it)',
        ),
    })
  } catch (err) {
    await shipper?.close(0)
    const message = `audit.file ${file}: ${(err as Error).message}`
    if (policy.required) throw new Error(message, { cause: err })
    log.error({ file }, `${message}; audit.required is false: serving without an audit trail`)
    return NO_AUDIT
  }
  log.info({ file: trail.file, seq: trail.head.seq }, 'audit trail')
  return new WriteAudit(trail, {
    required: policy.required,
    reads: policy.reads,
    readUserIds: policy.readUserIds,
    ...(shipper ? { shipper } : {}),
    onRecord: (result, phase) => recordAuditLine(metrics, result, phase),
    onError: (phase, err) =>
      log.error(
        { phase, file: trail.file, error: (err as Error)?.message },
        'audit trail: a line could not be written',
      ),
  })
}

/** The Ed25519 private key of `audit.signingKeyFile`; anything else is refused at start. */
async function signingKeyOf(file: string): Promise<KeyObject> {
  let key: KeyObject
  try {
    key = createPrivateKey(await readFile(file))
  } catch (err) {
    throw new Error(
      `audit.signingKeyFile ${file}: not a private key in PEM (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
    )
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(
      `audit.signingKeyFile ${file}: an Ed25519 key is needed (openssl genpkey -algorithm ed25519), not ${key.asymmetricKeyType}`,
    )
  }
  return key
}

/** The off-host copy of `audit.syslog`: connecting in the background (an absent receiver never stops the start). */
async function shipperOf(
  syslog: NonNullable<AuditPolicy['syslog']>,
  metrics: GatewayMetrics,
  log: FastifyBaseLogger,
): Promise<SyslogShipper> {
  const ca = syslog.caFile === null ? null : await readFile(syslog.caFile)
  const shipper = new SyslogShipper({
    host: syslog.host,
    port: syslog.port,
    tls: syslog.tls,
    ca,
    queueBytes: syslog.queueBytes,
    onShipped: (result, n) => metrics.auditShipped.inc({ result }, n),
    onState: (connected, err) =>
      connected
        ? log.info({ host: syslog.host, port: syslog.port }, 'audit trail: shipping to the syslog receiver')
        : log.warn(
            { host: syslog.host, port: syslog.port, error: err?.message },
            'audit trail: the syslog receiver is away; lines wait in order',
          ),
  })
  metrics.setAuditShipQueue(() => shipper.queueBytes)
  return shipper
}
