/**
 * Helpers for the policy tests (not a test file): policy directories written
 * into temporary directories, and small valid documents to start from.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { loadPolicy } from '../../src/policy/load.js'
import type { Policy } from '../../src/policy/types.js'

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')

/** Fake test credentials, never real ones. */
export const CRM_KEY = 'test-gateway-key-crm-000000000000'
export const OPS_KEY = 'test-gateway-key-ops-111111111111'
export const ENV = {
  CRM_TOKEN: 'fake-crm-token',
  OPS_TOKEN: 'fake-ops-token',
  SCRAPE: 'fake-scrape',
} as const

export const CRM_YAML = `usernames: [crm]
keys: [${sha256(CRM_KEY)}]
upstream: { username: crm, tokenEnv: CRM_TOKEN, context: sales }
operations:
  customers: [list, read, create, replace, update, delete]
  mappings: [list, read]
rateLimit: { max: 1200, timeWindow: "1 minute" }
redact: [PhoneNumber, AltPhoneNumber]
allowIPs: [10.0.0.0/8, 127.0.0.1/32, "2001:db8::/32"]
`

export const OPS_YAML = `usernames: [ops, noc]
keys: [${sha256(OPS_KEY)}]
upstream: { username: ops, tokenEnv: OPS_TOKEN }
operations:
  mappings: [list, read, create, update]
`

export const DEFAULT_YAML = `operations:
  customers: [list, read]
`

/** Files of a policy directory, relative path → content. */
export interface PolicyFiles {
  [name: string]: string | PolicyFiles
}

/** As the content of `gateway.yaml`: write no such file. */
export const NO_FILE = '\u0000no file'

function writeTree(dir: string, tree: PolicyFiles): void {
  for (const [name, content] of Object.entries(tree)) {
    const path = join(dir, name)
    if (typeof content === 'string') writeFileSync(path, content)
    else {
      mkdirSync(path)
      writeTree(path, content)
    }
  }
}

/**
 * Writes a policy directory into a fresh temporary directory (removed when the
 * test ends) and returns its path; `gateway.yaml` defaults to an empty file.
 * mkdtemp rather than t.testdir: two runs of one test file at the same time
 * (two engineers, one checkout) must not share fixture directories.
 */
export function policyDir(t: Test, files: Record<string, string> = {}): string {
  const tree: PolicyFiles = {}
  for (const [name, content] of Object.entries({ 'gateway.yaml': '', ...files })) {
    if (content === NO_FILE) continue
    const parts = name.split('/')
    let node = tree
    for (const part of parts.slice(0, -1)) {
      const next = node[part]
      if (typeof next === 'object') node = next as PolicyFiles
      else node = node[part] = {} as PolicyFiles & Record<string, string>
    }
    node[parts[parts.length - 1]!] = content
  }
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-policy-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeTree(dir, tree)
  return dir
}

/** Loads a policy that must be valid. */
export async function validPolicy(
  t: Test,
  files: Record<string, string> = {},
  env: Record<string, string> = ENV,
): Promise<Policy> {
  const dir = policyDir(t, files)
  const result = await loadPolicy(dir, env)
  if (!result.ok) throw new Error(`expected a valid policy:\n${result.problems.join('\n')}`)
  return result.policy
}

/** Loads a policy that must be invalid; returns its problems with the directory prefix removed. */
export async function problemsOf(
  t: Test,
  files: Record<string, string>,
  env: Record<string, string> = ENV,
): Promise<string[]> {
  const dir = policyDir(t, files)
  const result = await loadPolicy(dir, env)
  if (result.ok) return []
  return result.problems.map((p) => (p.startsWith(`${dir}/`) ? p.slice(dir.length + 1) : p))
}
