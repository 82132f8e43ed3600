/**
 * `ipdr-gateway check-policies DIR`: the same check `serve` runs at start,
 * for CI and for operators before a reload. Exit codes: 0 valid, 1 problems
 * (each on its own line on stderr), 2 bad usage. `--schema` prints the JSON
 * Schema of the files.
 */
import { loadPolicy } from './load.js'
import { policyJsonSchema } from './schema.js'

export interface CheckIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: Readonly<Record<string, string | undefined>>
}

export const CHECK_POLICIES_USAGE = `Usage: ipdr-gateway check-policies DIR
       ipdr-gateway check-policies --schema

Checks the policy in DIR (gateway.yaml and consumers/*.yaml) exactly as
\`serve\` does at start, including that every tokenEnv variable is set.
Exit status: 0 valid, 1 problems (one per line on stderr), 2 bad usage.
--schema prints the JSON Schema of the policy files.
`

/**
 * Runs the command. `argv` holds the arguments after `check-policies` (a
 * leading `check-policies` word is tolerated when more arguments follow).
 */
export async function runCheckPolicies(argv: string[], io: CheckIo): Promise<number> {
  const args = argv.length > 1 && argv[0] === 'check-policies' ? argv.slice(1) : [...argv]
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(CHECK_POLICIES_USAGE)
    return 0
  }
  if (args.length === 1 && args[0] === '--schema') {
    io.stdout(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`)
    return 0
  }
  const dir = args[0]
  if (args.length !== 1 || dir === undefined || dir === '' || dir.startsWith('-')) {
    const what = args.length === 0 ? 'missing DIR' : `unexpected arguments: ${args.join(' ')}`
    io.stderr(`check-policies: ${what}\n\n${CHECK_POLICIES_USAGE}`)
    return 2
  }
  const result = await loadPolicy(dir, io.env)
  if (!result.ok) {
    for (const p of result.problems) io.stderr(`${p}\n`)
    const n = result.problems.length
    io.stderr(`policy invalid: ${n} ${n === 1 ? 'problem' : 'problems'}\n`)
    return 1
  }
  const n = result.policy.consumers.length
  io.stdout(`policy OK: ${n} ${n === 1 ? 'consumer' : 'consumers'} (version ${result.policy.version})\n`)
  return 0
}
