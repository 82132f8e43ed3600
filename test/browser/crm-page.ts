/**
 * A tiny browser CRM for the browser test: an HTML page served by a
 * `node:http` server on its own port (so its origin differs from the
 * gateway's), whose script talks to the gateway with `fetch`, credentials in
 * headers, exactly as a browser-based CRM would.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface CrmConfig {
  /** The gateway's base URL, e.g. `http://127.0.0.1:41234`. */
  gateway: string
  username: string
  token: string
}

export interface CrmPageServer {
  /** The page's origin, e.g. `http://127.0.0.1:41235`. */
  readonly origin: string
  /** Serves the page with this configuration from now on. */
  configure(config: CrmConfig): void
  close(): Promise<void>
}

// The page script. Each call returns what the page sees: the status, the
// headers CORS lets it read, and the parsed body. `cache: 'no-store'` keeps the
// browser's HTTP cache out of the way, so an explicit If-None-Match reaches the
// gateway and its 304 reaches the page as it is (a browser revalidating its own
// cache entry would hand the page a 200 from the cache instead).
const PAGE_SCRIPT = `
const cfg = JSON.parse(document.getElementById('crm-config').textContent)
async function call(method, path, options = {}) {
  const headers = { Authorization: 'Bearer ' + cfg.token, 'X-Trisul-Username': cfg.username }
  if (options.body) headers['Content-Type'] = 'application/json'
  if (options.etag) headers['If-None-Match'] = options.etag
  const res = await fetch(cfg.gateway + path, {
    method,
    headers,
    body: options.body ? JSON.stringify(options.body) : undefined,
    mode: 'cors',
    credentials: 'omit',
    cache: 'no-store',
  })
  const text = await res.text()
  let body = null
  try { body = text ? JSON.parse(text) : null } catch { body = text }
  const h = (name) => res.headers.get(name)
  return {
    status: res.status,
    etag: h('ETag'),
    xCache: h('X-Cache'),
    total: h('X-Total-Count'),
    rateLimitRemaining: h('RateLimit-Remaining'),
    requestId: h('X-Request-Id'),
    body,
  }
}
function render(customers) {
  const list = document.getElementById('customers')
  list.replaceChildren(...customers.map((c) => {
    const li = document.createElement('li')
    li.dataset.userId = c.UserID
    li.textContent = c.Name + ' (' + c.UserID + ')'
    return li
  }))
}
window.crm = {
  async list(query = '', etag) {
    const res = await call('GET', '/api/ipdrcustomers' + query, { etag })
    if (res.status === 200 && Array.isArray(res.body)) render(res.body)
    return res
  },
  create(customer) { return call('POST', '/api/ipdrcustomers', { body: customer }) },
}
`

function pageHtml(config: CrmConfig): string {
  // JSON in a data block: `<` escaped so no value can close the script element.
  const json = JSON.stringify(config).replace(/</g, '\\u003c')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test CRM</title></head>
<body>
<h1>Customers</h1>
<ul id="customers"></ul>
<script type="application/json" id="crm-config">${json}</script>
<script>${PAGE_SCRIPT}</script>
</body></html>`
}

/** Starts the page server on 127.0.0.1, port 0. */
export async function startCrmPage(): Promise<CrmPageServer> {
  let config: CrmConfig | null = null
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/' && req.url !== '/crm.html')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    if (!config) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('not configured')
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' })
    res.end(pageHtml(config))
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    configure(c) {
      config = c
    },
    close() {
      for (const s of sockets) s.destroy()
      return new Promise((resolve) => server.close(() => resolve()))
    },
  }
}
