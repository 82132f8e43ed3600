/**
 * `ipdr-gateway sync FILE [--apply] [--delete] --gateway URL`: a client of a
 * running gateway's sync API (shared/SPEC.md 10). It posts the file (JSON, or
 * CSV when the name ends in .csv or --csv), follows the job with a progress bar
 * on a terminal (plain lines otherwise), prints the plan or the report, and
 * exits 0 when every record went through, 1 when records were invalid or
 * failed (or the job failed), 2 on bad usage or when the gateway cannot be used.
 *
 * Credentials come from the environment, never from a flag (flags show in `ps`):
 * IPDR_GATEWAY_KEY (a gateway key), else TRISUL_USERNAME + TRISUL_TOKEN;
 * TRISUL_CONTEXT optionally names the context.
 */
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { SingleBar } from 'cli-progress'
import { request } from 'undici'
import type { JobDocument } from './jobs.js'

export interface SyncIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: Readonly<Record<string, string | undefined>>
  /** Draw a progress bar (stderr is a terminal). */
  tty?: boolean
}

export const SYNC_USAGE = `Usage: ipdr-gateway sync FILE --gateway URL [--apply] [--delete] [--csv] [--json]

Sends FILE (a JSON array of customers, or CSV in Trisul's import layout when it
ends in .csv or with --csv) to the gateway's POST /sync/customers and follows the
job. Without --apply it only plans: nothing is changed. --delete also deletes
customers that are in Trisul but not in FILE. --json prints the final job
document instead of a summary.

Credentials from the environment: IPDR_GATEWAY_KEY (a gateway key), or
TRISUL_USERNAME and TRISUL_TOKEN; TRISUL_CONTEXT names the context.
Exit status: 0 every record in step; 1 records invalid or failed, or the job
failed; 2 bad usage, unreadable file, or the gateway refused the request.
`

// A CLI usage mistake (exit status 2), never an HTTP answer.
class UsageError extends Error {}

function credentials(env: SyncIo['env']): Record<string, string> {
  const context: Record<string, string> = env.TRISUL_CONTEXT ? { 'x-trisul-context': env.TRISUL_CONTEXT } : {}
  if (env.IPDR_GATEWAY_KEY) return { authorization: `Bearer ${env.IPDR_GATEWAY_KEY}`, ...context }
  if (env.TRISUL_USERNAME && env.TRISUL_TOKEN) {
    return {
      authorization: `Bearer ${env.TRISUL_TOKEN}`,
      'x-trisul-username': env.TRISUL_USERNAME,
      ...context,
    }
  }
  throw new UsageError('no credentials: set IPDR_GATEWAY_KEY, or TRISUL_USERNAME and TRISUL_TOKEN')
}

export async function runSync(argv: readonly string[], io: SyncIo): Promise<number> {
  let values: Record<string, string | boolean | undefined>
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: [...argv],
      options: {
        gateway: { type: 'string' },
        apply: { type: 'boolean' },
        delete: { type: 'boolean' },
        csv: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }))
  } catch (err) {
    io.stderr(`sync: ${(err as Error).message}\n\n${SYNC_USAGE}`)
    return 2
  }
  if (values.help) {
    io.stdout(SYNC_USAGE)
    return 0
  }
  try {
    const file = positionals[0]
    if (positionals.length !== 1 || !file) throw new UsageError('give exactly one FILE')
    const gateway = typeof values.gateway === 'string' ? values.gateway : io.env.IPDR_GATEWAY_URL
    if (!gateway) throw new UsageError('--gateway URL is required (or IPDR_GATEWAY_URL)')
    let base: URL
    try {
      base = new URL(gateway)
    } catch {
      throw new UsageError(`--gateway: not a URL: ${JSON.stringify(gateway)}`)
    }
    const headers = credentials(io.env)
    const body = await readFile(file)
    const csv = values.csv === true || /\.csv$/i.test(file)
    const query = new URLSearchParams({
      mode: values.apply ? 'apply' : 'plan',
      delete: String(values.delete === true),
      wait: '1',
    })
    const started = await call(new URL(`/sync/customers?${query}`, base), 'POST', headers, body, csv)
    if (started.status !== 202) return refused(io, started)
    const location = new URL(String(started.headers.location), base)
    let doc = started.json as JobDocument
    const bar =
      io.tty && doc.mode === 'apply'
        ? new SingleBar({
            format: 'sync [{bar}] {value}/{total} writes, {failed} failed',
            stream: process.stderr,
          })
        : null
    let reported = ''
    while (doc.state === 'planning' || doc.state === 'applying') {
      if (bar && doc.state === 'applying') {
        if (!bar.isActive) bar.start(doc.progress.total, 0, { failed: 0 })
        bar.update(doc.progress.done, { failed: doc.progress.failed })
      } else if (!bar) {
        const line = `${doc.state}: ${doc.progress.done}/${doc.progress.total} writes, ${doc.progress.failed} failed\n`
        if (line !== reported) io.stderr(line)
        reported = line
      }
      const next = await call(new URL(`${location.pathname}?wait=1`, base), 'GET', headers)
      if (next.status !== 200) return refused(io, next)
      doc = next.json as JobDocument
    }
    if (bar?.isActive) {
      bar.update(doc.progress.done, { failed: doc.progress.failed })
      bar.stop()
    }
    io.stdout(values.json ? `${JSON.stringify(doc, null, 2)}\n` : summary(doc))
    return doc.state === 'done' && doc.progress.failed === 0 && (doc.plan?.invalid ?? 0) === 0 ? 0 : 1
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`sync: ${err.message}\n\n${SYNC_USAGE}`)
      return 2
    }
    const e = err as NodeJS.ErrnoException
    io.stderr(`sync: ${e.code && !e.message.startsWith(e.code) ? `${e.code}: ` : ''}${e.message}\n`)
    return 2
  }
}

interface Answer {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly json: unknown
}

async function call(
  url: URL,
  method: 'GET' | 'POST',
  headers: Record<string, string>,
  body?: Buffer,
  csv = false,
): Promise<Answer> {
  const res = await request(url, {
    method,
    headers: body ? { ...headers, 'content-type': csv ? 'text/csv' : 'application/json' } : headers,
    ...(body ? { body } : {}),
  })
  const text = await res.body.text()
  let json: unknown = null
  try {
    json = JSON.parse(text)
  } catch {
    json = { message: text.slice(0, 200) }
  }
  return { status: res.statusCode, headers: res.headers, json }
}

function refused(io: SyncIo, answer: Answer): number {
  const { code, message } = (answer.json ?? {}) as { code?: string; message?: string }
  io.stderr(`sync: the gateway answered ${answer.status}${code ? ` ${code}` : ''}: ${message ?? ''}\n`)
  return 2
}

function summary(doc: JobDocument): string {
  const lines: string[] = []
  const p = doc.plan
  lines.push(`sync ${doc.mode} ${doc.state}${doc.delete ? ' (delete absent customers)' : ''}`)
  if (p) {
    lines.push(
      `customers: ${p.create} to create, ${p.update} to update, ${p.delete} ${doc.delete ? 'to delete' : 'absent (not deleted)'}, ${p.unchanged} unchanged, ${p.invalid} invalid`,
    )
  }
  if (doc.mappings) {
    const m = doc.mappings
    lines.push(
      `mappings: ${m.create} to create, ${m.update} to update, ${m.end} to end, ${m.delete} to delete, ${m.unchanged} unchanged`,
    )
  }
  if (doc.mode === 'apply')
    lines.push(`writes: ${doc.progress.done} of ${doc.progress.total} done, ${doc.progress.failed} failed`)
  for (const e of doc.errors) {
    lines.push(
      `  ${e.UserID ?? '-'}${e.source ? ` (${e.source})` : ''}${e.operation ? ` ${e.resource} ${e.operation}` : ''}: ${e.status} ${e.code} ${e.message}`,
    )
  }
  if (doc.truncated) lines.push('  (lists cut at 1000 entries; the counts are exact)')
  return `${lines.join('\n')}\n`
}
