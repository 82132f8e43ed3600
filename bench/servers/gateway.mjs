/**
 * Child process: the compiled gateway (dist/), built exactly as `serve` builds
 * it (policy loaded by the real loader, `buildApp`), without logging or the
 * readiness probe. Options: `{ upstreamUrl, ttlSeconds, redisUrl, keyPrefix, rateLimit, leaseMs, audit, sync, identities, logFile, otlpEndpoint }` (a shared store
 * when `redisUrl` is set; an audit trail when `audit: { file, fsync }` is; production request logging,
 * info level and redacted as `serve` logs, into `logFile` when it is set).
 * Handlers `loop-start` and `loop-max`: the longest event-loop delay in between, in ms.
 * Handler `settled`: when each of this instance's writes was settled (every other instance
 * acknowledged it: `SETTLED_CHANNEL`), as `[seq, ms]` on the host's monotonic clock (`hostNow`).
 */
import { subscribe } from 'node:diagnostics_channel'
import { rmSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { buildApp } from '../../dist/app.js'
import { LOG_REDACT_PATHS } from '../../dist/logging.js'
import { loadPolicy } from '../../dist/policy/load.js'
import { SETTLED_CHANNEL } from '../../dist/store/coherence.js'
import { hostNow, serveAsChild } from '../lib/child.mjs'
import { writeBenchPolicy } from '../lib/policy.mjs'

serveAsChild(async ({ logFile, otlpEndpoint, ...policyOptions }) => {
  const { upstreamUrl } = policyOptions
  const dir = writeBenchPolicy(policyOptions)
  let loaded
  try {
    loaded = await loadPolicy(dir, {})
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
  if (!loaded.ok) throw new Error(`bench policy invalid:\n${loaded.problems.join('\n')}`)
  const logger = logFile
    ? { level: 'info', file: logFile, redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' } }
    : false
  const app = await buildApp({
    policy: loaded.policy,
    upstreamUrl,
    logger,
    probe: false,
    ...(otlpEndpoint ? { otlpEndpoint } : {}),
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  const settled = []
  subscribe(SETTLED_CHANNEL, ({ seq }) => settled.push([seq, hostNow()]))
  // The event loop's longest delay between 'loop-start' and 'loop-max', in ms (1 ms resolution).
  const loop = monitorEventLoopDelay({ resolution: 1 })
  if (process.env.GAPS) {
    let last = performance.now()
    setInterval(() => {
      const n = performance.now()
      if (n - last > 60) console.error('GAP', Math.round(n - last), 'ending', Math.round(n))
      last = n
    }, 10)
  }
  return {
    info: { url },
    handle(type) {
      if (type === 'settled') return settled.splice(0)
      if (type === 'loop-start') {
        loop.reset()
        loop.enable()
        return null
      }
      if (type === 'loop-max') {
        loop.disable()
        return loop.max / 1e6
      }
      throw new Error(`unknown ${type}`)
    },
    close: () => app.close(),
  }
})
