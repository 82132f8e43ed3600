/**
 * Child process: the floor of row 10 (b), the same two pub/sub hops the
 * invalidation protocol makes with none of the gateway around them. It speaks
 * the protocol's channel layout under `keyPrefix` (`invalidations`,
 * `acks:NAME`, messages `seq\nsender`), through connections opened as the
 * gateway opens them (`openRedis`): every announcement it hears from another
 * sender it acknowledges at once, as an instance does after dropping its
 * entries; `announce` publishes `count` announcements one at a time, each
 * waiting for `acks` acknowledgements (default 1; at most 1 s) and then
 * `pauseMs`.
 * Options: `{ redisUrl, keyPrefix, name }`.
 */
import { closeRedis, openRedis } from '../../dist/store/redis-client.js'
import { serveAsChild } from '../lib/child.mjs'

serveAsChild(async ({ redisUrl, keyPrefix, name }) => {
  const cmd = openRedis({ url: redisUrl, timeoutMs: 100, name: `${name}:cmd` })
  const sub = openRedis({ url: redisUrl, timeoutMs: 100, name: `${name}:sub` })
  const invalidations = `${keyPrefix}invalidations`
  const ownAcks = `${keyPrefix}acks:${name}`
  let acked = null
  sub.on('message', (channel, message) => {
    const nl = message.indexOf('\n')
    if (channel === ownAcks) acked?.(message.slice(0, nl))
    else if (message.slice(nl + 1) !== name)
      void cmd.publish(`${keyPrefix}acks:${message.slice(nl + 1)}`, `${message.slice(0, nl)}\n${name}`)
  })
  for (let i = 0; cmd.status !== 'ready' || sub.status !== 'ready'; i++) {
    if (i > 200) throw new Error('redis-relay: no connection to Redis within 10 s')
    await new Promise((r) => setTimeout(r, 50))
  }
  await sub.subscribe(invalidations, ownAcks)

  async function announce({ count, pauseMs, acks = 1 }) {
    let answered = 0
    for (let seq = 1; seq <= count; seq++) {
      const ok = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000)
        let heard = 0
        acked = (of) => {
          if (of !== String(seq) || ++heard < acks) return
          clearTimeout(timer)
          resolve(true)
        }
        void cmd.publish(invalidations, `${seq}\n${name}`)
      })
      if (ok) answered++
      await new Promise((r) => setTimeout(r, pauseMs))
    }
    return { answered }
  }

  return {
    info: {},
    handle(type, args) {
      if (type === 'announce') return announce(args)
      throw new Error(`unknown ${type}`)
    },
    close() {
      closeRedis(cmd)
      closeRedis(sub)
    },
  }
})
