/**
 * Builds a gateway for a test: a policy directory written from plain objects
 * (JSON files, which the loader accepts like YAML), loaded through the real
 * loader, and an app in front of a given upstream, closed when the test ends.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { type AppOptions, buildApp } from '../../src/app.js'
import { loadPolicy } from '../../src/policy/load.js'
import type { Policy } from '../../src/policy/types.js'

export const ALL_OPERATIONS = {
  customers: ['list', 'read', 'create', 'replace', 'update', 'delete'],
  mappings: ['list', 'read', 'create', 'replace', 'update', 'delete'],
}

export const PERMISSIVE_DEFAULT = { operations: ALL_OPERATIONS }

export interface PolicySpec {
  gateway?: Record<string, unknown>
  consumers?: Record<string, Record<string, unknown>>
  env?: Record<string, string>
}

export function writePolicyDir(dir: string, spec: PolicySpec): string {
  mkdirSync(join(dir, 'consumers'), { recursive: true })
  writeFileSync(join(dir, 'gateway.json'), JSON.stringify(spec.gateway ?? {}))
  const consumers = spec.consumers ?? { default: PERMISSIVE_DEFAULT }
  for (const [name, doc] of Object.entries(consumers)) {
    writeFileSync(join(dir, 'consumers', `${name}.json`), JSON.stringify(doc))
  }
  return dir
}

/** A fresh directory under the OS temp dir, removed when the test ends. */
export function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-gw-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export async function makePolicy(t: Test, spec: PolicySpec = {}): Promise<Policy> {
  const dir = writePolicyDir(tempDir(t), spec)
  const loaded = await loadPolicy(dir, spec.env ?? {})
  if (!loaded.ok) throw new Error(`test policy invalid:\n${loaded.problems.join('\n')}`)
  return loaded.policy
}

/** A pino destination that keeps every line, for log assertions. */
export function logCapture(): { stream: Writable; lines: string[]; text(): string } {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean))
      cb()
    },
  })
  return { stream, lines, text: () => lines.join('\n') }
}

export interface TestGateway {
  app: FastifyInstance
  url: string
}

export async function startGateway(
  t: Test,
  opts: {
    policy: AppOptions['policy']
    upstreamUrl: string
    listen?: boolean
    /** Called before the app is ready (to add hooks). */
    prepare?: (app: FastifyInstance) => void
  } & Partial<AppOptions>,
): Promise<TestGateway> {
  const { prepare, ...appOptions } = opts
  const app = await buildApp({ logger: false, probe: false, ...appOptions })
  t.teardown(() => app.close())
  prepare?.(app)
  if (opts.listen === false) {
    await app.ready()
    return { app, url: '' }
  }
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url }
}
