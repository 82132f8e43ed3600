/**
 * Headless Chromium for the browser tests: Debian's `chromium` package driven
 * by playwright-core, in a fresh user-data directory, closed (and the
 * directory removed) when the test ends. A missing browser fails the test
 * with a clear message: `npm test` installs it (scripts/test-prerequisites.mjs), so it is never skipped.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM_PATH = '/usr/bin/chromium'

/** No GPU, no QUIC, nothing that phones home or updates itself during a test. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
] as const

/** Bound on every browser step (navigation, wait, click). */
export const STEP_TIMEOUT_MS = 20_000
const LAUNCH_TIMEOUT_MS = 30_000
const CLOSE_TIMEOUT_MS = 10_000

/**
 * Launches Chromium for `t`, or fails `t` and returns null when the binary is
 * missing. The context and its profile directory go away at `t`'s end.
 */
export async function launchChromium(t: Test): Promise<BrowserContext | null> {
  if (!existsSync(CHROMIUM_PATH)) {
    t.fail(
      `${CHROMIUM_PATH} is missing: the browser tests need Debian's chromium package ` +
        '(apt-get install -y --no-install-recommends chromium; npm test installs it as root)',
    )
    return null
  }
  // Playwright takes the profile directory as a parameter (it refuses --user-data-dir in args).
  const profile = mkdtempSync(join(tmpdir(), 'ipdr-gw-chromium-'))
  let context: BrowserContext
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: [...CHROMIUM_ARGS],
      timeout: LAUNCH_TIMEOUT_MS,
    })
  } catch (err) {
    rmSync(profile, { recursive: true, force: true })
    throw err
  }
  context.setDefaultTimeout(STEP_TIMEOUT_MS)
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS)
  t.teardown(async () => {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)
    })
    await Promise.race([context.close().catch(() => {}), timedOut])
    clearTimeout(timer)
    rmSync(profile, { recursive: true, force: true })
  })
  return context
}
