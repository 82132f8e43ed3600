/**
 * The child side of a benchmark process (servers, the burst client, the
 * in-process measurements). Options arrive as JSON in argv[2]; the child
 * reports `{ type: 'ready', info }` over IPC once it serves, then answers the
 * parent's `{ id, type }` messages with `handle(type, args)` (`cpu`, the
 * process's CPU time in µs, is built in). It exits when
 * told to stop or when the parent goes away, so no server outlives a run.
 */

/**
 * The host's monotonic clock in ms (`process.hrtime`, CLOCK_MONOTONIC): unlike `performance.now()`,
 * which counts from each process's start, the same clock in every process on this host, so times
 * taken in two children can be subtracted.
 */
export const hostNow = () => Number(process.hrtime.bigint()) / 1e6

/**
 * @param {(opts: any) => Promise<{ info: object, handle?: (type: string, args: any) => unknown, close?: () => Promise<void> | void }>} start
 */
export function serveAsChild(start) {
  if (typeof process.send !== 'function') {
    console.error('this script is started by bench/run.mjs (it needs an IPC channel)')
    process.exit(2)
  }
  const opts = JSON.parse(process.argv[2] ?? '{}')
  let running = null
  const exit = async (code) => {
    try {
      await running?.close?.()
    } finally {
      process.exit(code)
    }
  }
  process.on('disconnect', () => void exit(0))
  process.on('message', async (msg) => {
    if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') return
    if (msg.type === 'stop') {
      try {
        await running?.close?.()
      } finally {
        process.send({ id: msg.id, ok: true, result: null }, () => process.exit(0))
      }
      return
    }
    try {
      let result
      if (msg.type === 'cpu' && running?.cpu) {
        // A child that runs the server as another program (nginx) counts that program's CPU.
        result = running.cpu()
      } else if (msg.type === 'cpu') {
        // CPU time of this process (all threads), for CPU per request: far less sensitive than
        // req/s to other work on a shared machine.
        const { user, system } = process.cpuUsage()
        result = user + system
      } else {
        if (!running?.handle) throw new Error(`no handler for ${msg.type}`)
        result = await running.handle(msg.type, msg.args)
      }
      process.send({ id: msg.id, ok: true, result })
    } catch (err) {
      process.send({ id: msg.id, ok: false, error: String(err?.message ?? err) })
    }
  })
  start(opts).then(
    (r) => {
      running = r
      process.send({ type: 'ready', info: r.info })
    },
    (err) => {
      process.send({ type: 'failed', error: String(err?.stack ?? err) }, () => process.exit(1))
    },
  )
}

/** `server.listen` on 127.0.0.1 with a free port; resolves to the base URL. */
export function listenLoopback(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      resolve(`http://127.0.0.1:${port}`)
    })
  })
}
