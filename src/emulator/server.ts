/**
 * The only emulator file that listens. Signals and process exit belong to
 * the CLI (src/cli.ts), which calls `startEmulator` and later `close()`.
 */
import type { AddressInfo } from 'node:net'
import { buildEmulator } from './app.js'
import { DEFAULT_HOST, type EmulatorOptions } from './options.js'

export interface RunningEmulator {
  /** Base URL, e.g. `http://127.0.0.1:3000`. */
  url: string
  /** The bound port (useful with `port: 0`). */
  port: number
  /** Stops listening, finishes in-flight requests, closes the database. */
  close(): Promise<void>
}

/**
 * Builds the emulator and listens on `host` (default `127.0.0.1`) and `port`
 * (0 picks a free one). Rejects, with the database closed, when it cannot.
 */
export async function startEmulator(
  opts: EmulatorOptions & { port: number; host?: string },
): Promise<RunningEmulator> {
  const app = await buildEmulator(opts)
  try {
    await app.listen({ port: opts.port, host: opts.host ?? DEFAULT_HOST })
  } catch (err) {
    await app.close()
    throw err
  }
  const address = app.server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | undefined
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () => {
      closing ??= app.close()
      return closing
    },
  }
}
