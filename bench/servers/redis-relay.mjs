/**
 * Child process: the floor of row 10 (b), the same hops the invalidation
 * protocol makes with none of the gateway around them. It speaks the protocol's
 * channel layout under `keyPrefix` (`invalidations`, `acks:NAME`, messages
 * `seq\nsender`), through connections opened as the gateway opens them
 * (`openRedis`): every announcement it hears from another sender it
 * acknowledges at once, as an instance does after dropping its entries, through
 * Redis or, when the announcement carries a port (`seq\nsender port`), by a
 * UDP datagram to it, then through Redis only if no receipt came within 5 ms
 * (`directAcks`, src/store/direct-acks.ts); `announce` publishes `count`
 * announcements one at a time, each waiting for `acks` acknowledgements from
 * distinct senders (default 1; at most 1 s), whichever way they come, then
 * `pauseMs`, and reports when each was settled (`hostNow`).
 * Options: `{ redisUrl, keyPrefix, name, direct }` (`direct`: ask for datagrams).
 */
import { createSocket } from 'node:dgram'
import { closeRedis, openRedis, urlEndpoint } from '../../dist/store/redis-client.js'
import { hostNow, serveAsChild } from '../lib/child.mjs'

serveAsChild(async ({ redisUrl, keyPrefix, name, direct = false }) => {
  const cmd = openRedis({ endpoint: urlEndpoint(redisUrl), timeoutMs: 100, name: `${name}:cmd` })
  const sub = openRedis({ endpoint: urlEndpoint(redisUrl), timeoutMs: 100, name: `${name}:sub` })
  const udp = createSocket('udp4')
  await new Promise((r) => udp.bind(0, '127.0.0.1', r))
  const invalidations = `${keyPrefix}invalidations`
  const ownAcks = `${keyPrefix}acks:${name}`
  let acked = null
  const unreceipted = new Map()
  udp.on('message', (m, rinfo) => {
    const text = m.toString()
    if (text.startsWith('!')) {
      clearTimeout(unreceipted.get(text.slice(1)))
      unreceipted.delete(text.slice(1))
      return
    }
    const [seq, from] = text.split('\n')
    udp.send(`!${text}`, rinfo.port, rinfo.address)
    acked?.(seq, from)
  })
  sub.on('message', (channel, message) => {
    const nl = message.indexOf('\n')
    const seq = message.slice(0, nl)
    if (channel === ownAcks) {
      acked?.(seq, message.slice(nl + 1))
      return
    }
    const [sender, port] = message.slice(nl + 1).split(' ')
    if (sender === name) return
    const throughRedis = () => void cmd.publish(`${keyPrefix}acks:${sender}`, `${seq}\n${name}`)
    if (!port) {
      throughRedis()
      return
    }
    udp.send(`${seq}\n${name}`, Number(port), '127.0.0.1')
    unreceipted.set(`${seq}\n${name}`, setTimeout(throughRedis, 5))
  })
  for (let i = 0; cmd.status !== 'ready' || sub.status !== 'ready'; i++) {
    if (i > 200) throw new Error('redis-relay: no connection to Redis within 10 s')
    await new Promise((r) => setTimeout(r, 50))
  }
  await sub.subscribe(invalidations, ownAcks)
  const sender = direct ? `${name} ${udp.address().port}` : name

  async function announce({ count, pauseMs, acks = 1 }) {
    let answered = 0
    const settled = []
    for (let seq = 1; seq <= count; seq++) {
      const ok = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000)
        const heard = new Set()
        acked = (of, from) => {
          if (of !== String(seq) || heard.has(from)) return
          heard.add(from)
          if (heard.size < acks) return
          settled.push([seq, hostNow()])
          clearTimeout(timer)
          resolve(true)
        }
        void cmd.publish(invalidations, `${seq}\n${sender}`)
      })
      if (ok) answered++
      await new Promise((r) => setTimeout(r, pauseMs))
    }
    return { answered, settled }
  }

  return {
    info: {},
    handle(type, args) {
      if (type === 'announce') return announce(args)
      throw new Error(`unknown ${type}`)
    },
    close() {
      udp.close()
      closeRedis(cmd)
      closeRedis(sub)
    },
  }
})
