/**
 * Child process: the emulator (SQLite file in a temp dir, seeded), the
 * upstream of row 9. Options: `{ seed }`. One user, `bench`, with the bench
 * token and every context.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startEmulator } from '../../dist/emulator/index.js'
import { serveAsChild } from '../lib/child.mjs'
import { BENCH_TOKEN, BENCH_USER } from '../lib/listing-data.mjs'

serveAsChild(async ({ seed }) => {
  const dir = mkdtempSync(join(tmpdir(), 'ipdr-gw-bench-emulator-'))
  let emulator
  try {
    emulator = await startEmulator({
      db: join(dir, 'emulator.sqlite'),
      dialect: 'v2',
      users: [{ name: BENCH_USER, token: BENCH_TOKEN, contexts: null }],
      seed,
      port: 0,
    })
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return {
    info: { url: emulator.url },
    close: async () => {
      await emulator.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
