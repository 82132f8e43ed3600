/**
 * Child process: an OTLP/HTTP collector for row 18 that accepts every export and keeps none (the
 * gateway's exporting cost without a collector's). Handler `spans`: how many spans arrived. Options: none.
 */
import { createServer } from 'node:http'
import { serveAsChild } from '../lib/child.mjs'

serveAsChild(async () => {
  let spans = 0
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
        for (const rs of body.resourceSpans ?? [])
          for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0
      } catch {
        // Counted only when readable.
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    info: { url: `http://127.0.0.1:${server.address().port}` },
    handle(type) {
      if (type === 'spans') return spans
      throw new Error(`unknown ${type}`)
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  }
})
