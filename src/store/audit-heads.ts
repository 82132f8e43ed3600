/**
 * The audit trail's head kept in the shared store (SPEC 14): a second place beside the file's
 * `.NAME.head`, so a trail whose file and `.head` were both removed still gets its `gap` line. The
 * types live here, below `src/audit/`, which uses them.
 */
import { sha256Hex } from '../credentials.js'
import { type StoreClient, withinDeadline } from './redis-client.js'

/** The head of the trail as last checkpointed, kept beside the file (`.NAME.head`): a trail found shorter is a gap. */
export interface HeadRecord {
  readonly seq: number
  readonly hash: string
  readonly time: string
  readonly instance: string
  /** The checkpoint line's signature, when there is a signing key. */
  readonly signature?: string
}

/** A second place for the head (the shared store): read at open, written at each checkpoint. */
export interface AuditHeadStore {
  get(instance: string, trail: string): Promise<HeadRecord | null>
  set(instance: string, trail: string, head: HeadRecord): Promise<void>
}

/** How long an audit head stays in the store without a checkpoint: past DoT's two years. */
const AUDIT_HEAD_TTL_MS = 800 * 86_400_000

/**
 * The audit trail's head in the store (SPEC 14), one key per instance and trail (hashed names), with
 * a TTL. At open the trail is read once the connection is up (a start waits at most a second for it).
 */
export function auditHeadsIn(redis: StoreClient, prefix: string, timeoutMs: number): AuditHeadStore {
  const key = (instance: string, trail: string) =>
    `${prefix}audit:head:${sha256Hex(`${instance}\n${trail}`).slice(0, 40)}`
  return {
    async get(instance, trail) {
      for (let i = 0; i < 50 && redis.status !== 'ready'; i++) await new Promise((r) => setTimeout(r, 20))
      const text = await withinDeadline(redis.get(key(instance, trail)), Math.max(timeoutMs, 500))
      return text === null ? null : (JSON.parse(text) as HeadRecord)
    },
    async set(instance, trail, head) {
      await withinDeadline(
        redis.set(key(instance, trail), JSON.stringify(head), 'PX', AUDIT_HEAD_TTL_MS),
        timeoutMs,
      )
    },
  }
}
