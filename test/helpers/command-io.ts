/** Runs an in-process command (`runCheckPolicies`, `runAudit`) with its output captured. */
export interface CommandIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  env: Readonly<Record<string, string | undefined>>
}

export async function runCommand(
  command: (argv: string[], io: CommandIo) => Promise<number>,
  argv: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = ''
  let stderr = ''
  const code = await command(argv, {
    stdout: (s) => {
      stdout += s
    },
    stderr: (s) => {
      stderr += s
    },
    env,
  })
  return { code, stdout, stderr }
}
