/** An in-memory emulator on a loopback port for one test, with the given users (every context). */
import type { Test } from 'tap'
import { type RunningEmulator, startEmulator } from '../../src/emulator/index.js'

export async function startUsersEmulator(
  t: Test,
  users: Record<string, string>,
  seed = 0,
): Promise<RunningEmulator> {
  const emu = await startEmulator({
    db: ':memory:',
    dialect: 'v2',
    users: Object.entries(users).map(([name, token]) => ({ name, token, contexts: null })),
    ...(seed > 0 ? { seed } : {}),
    port: 0,
    host: '127.0.0.1',
    logger: false,
  })
  t.teardown(() => emu.close())
  return emu
}
