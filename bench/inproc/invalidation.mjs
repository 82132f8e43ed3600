#!/usr/bin/env node
/**
 * Row 10 (b), the protocol alone: how long `invalidate()` takes until every
 * other instance has acknowledged, for three coherence instances (each with its
 * own Redis connections) against a redis-server on the other core. In one
 * process, so their acknowledgements share one event loop: an upper bound for
 * the protocol's own cost, without the emulator's write in the number; with
 * acknowledgements through Redis only, then with direct ones (`directAcks`).
 *
 *   npm run build && node bench/inproc/invalidation.mjs [writes]
 */
import { RedisCoherence } from '../../dist/store/coherence.js'
import { closeRedis, openRedis, urlEndpoint } from '../../dist/store/redis-client.js'
import { StoreHealth } from '../../dist/store/store-health.js'
import { killAll, LOAD_CPU, startChild } from '../lib/processes.mjs'
import { percentile } from '../lib/stats.mjs'

const writes = Number(process.argv[2] ?? 2000)
const redis = await startChild('servers/redis.mjs', {}, { cpu: LOAD_CPU })
const cache = { invalidateContext: () => 0, invalidateAll: () => 0 }
for (const directAcks of [false, true]) {
  const instances = []
  for (let i = 0; i < 3; i++) {
    const cmd = openRedis({ endpoint: urlEndpoint(redis.info.url), timeoutMs: 100, name: `bench-${i}` })
    const sub = openRedis({ endpoint: urlEndpoint(redis.info.url), timeoutMs: 100, name: `bench-${i}-sub` })
    const health = new StoreHealth()
    const c = new RedisCoherence({
      redis: cmd,
      subscriber: sub,
      keyPrefix: directAcks ? 'bench-direct:' : 'bench:',
      cache,
      health,
      leaseMs: 2000,
      timeoutMs: 100,
      directAcks,
    })
    c.start()
    instances.push({ c, cmd, sub, health })
  }
  // Past the first lease of a fresh Redis (writes wait out leases it may not list), all subscribed.
  await new Promise((r) => setTimeout(r, 2500))
  const ms = []
  for (let i = 0; i < writes; i++) {
    const t = performance.now()
    await instances[i % 3].c.invalidate(`ctx${i % 7}`)
    ms.push(performance.now() - t)
  }
  console.log(
    JSON.stringify({
      directAcks,
      writes,
      p50Ms: Number(percentile(ms, 50).toFixed(2)),
      p99Ms: Number(percentile(ms, 99).toFixed(2)),
      maxMs: Number(Math.max(...ms).toFixed(2)),
    }),
  )
  for (const i of instances) {
    await i.c.close()
    closeRedis(i.cmd)
    closeRedis(i.sub)
  }
}
await redis.stop()
killAll()
