/**
 * Child process: nginx doing the gateway's job, the peer an operator would
 * otherwise deploy (issue 17). Debian's `nginx-light` (bench/run.mjs installs
 * it when missing), one worker, started on a free loopback port with a config
 * written here, stopped by pid. What it does, in nginx's own terms:
 *
 * - strict `map`s turn `Authorization: Bearer <token>` and `X-Trisul-Username`
 *   into variables (anything else: 401, nothing sent upstream);
 * - the upstream body is built with `proxy_set_body` (JSON with the
 *   credentials and the context), on GET too;
 * - `proxy_cache` keyed by URI + token + username, `proxy_cache_lock on`, the
 *   same TTL as the gateway's bench policy;
 * - POST passes the client's body through as it is: nginx cannot merge
 *   credentials into a JSON body without a scripting module, so its client
 *   sends Trisul's own body (credentials inside);
 * - `sendfile off`, access log off unless `accessLog` (the production row);
 *   `gzip on` (level 1, application/json) when `gzip`.
 *
 * Options: `{ upstreamUrl, gzip, accessLog }`. `cpu` reports the CPU time of
 * the master and its worker (µs, from /proc), like the Node children's.
 */
import { spawn } from 'node:child_process'
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serveAsChild } from '../lib/child.mjs'
import { BENCH_CONTEXT } from '../lib/listing-data.mjs'

export const NGINX = '/usr/sbin/nginx'

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

/** The config: every path inside `prefix`, nothing of the system's nginx touched. */
function config({ prefix, port, upstream, gzip, accessLog }) {
  return `worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log ${accessLog ? `${prefix}/access.log combined` : 'off'};
  sendfile off;
  keepalive_requests 1000000;
  client_body_temp_path ${prefix}/body;
  proxy_temp_path ${prefix}/proxy;
  fastcgi_temp_path ${prefix}/fastcgi;
  uwsgi_temp_path ${prefix}/uwsgi;
  scgi_temp_path ${prefix}/scgi;
  proxy_cache_path ${prefix}/cache levels=1:2 keys_zone=ipdr:16m max_size=1g inactive=1h use_temp_path=off;
  ${gzip ? 'gzip on; gzip_comp_level 1; gzip_types application/json; gzip_min_length 256;' : 'gzip off;'}

  # Strict: a token of 8-256 URL-safe characters, a username as the gateway's userIdPattern.
  map $http_authorization $trisul_token {
    default "";
    "~^Bearer (?<t>[A-Za-z0-9._~+/=-]{8,256})$" $t;
  }
  map $http_x_trisul_username $trisul_user {
    default "";
    "~^(?<u>[A-Za-z0-9._@:+-]{1,64})$" $u;
  }

  upstream trisul {
    server ${upstream};
    keepalive 32;
  }

  server {
    listen 127.0.0.1:${port};
    location = /api/ipdrcustomers {
      if ($request_method = POST) { rewrite ^ /_write last; }
      if ($trisul_token = "") { return 401; }
      if ($trisul_user = "") { return 401; }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_set_header X-Trisul-Username "";
      proxy_set_header Content-Type application/json;
      proxy_set_body '{"api_token":"$trisul_token","username":"$trisul_user","contextname":"${BENCH_CONTEXT}"}';
      proxy_cache ipdr;
      proxy_cache_key "customers|$trisul_token|$trisul_user";
      proxy_cache_valid 200 1h;
      proxy_cache_lock on;
      proxy_pass http://trisul;
    }
    location = /_write {
      internal;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_pass http://trisul/api/ipdrcustomers;
    }
  }
}
`
}

/** Utime + stime of `pid` in µs (clock ticks of 10 ms). */
function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return 0
  }
}

/** The master and its children (the worker). */
function familyCpu(master) {
  let total = cpuOf(master)
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === master) total += cpuOf(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return total
}

serveAsChild(async ({ upstreamUrl, gzip = false, accessLog = false }) => {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing (apt-get install nginx-light)`)
  const prefix = mkdtempSync(join(tmpdir(), 'ipdr-bench-nginx-'))
  // Run as root, nginx's worker drops to an unprivileged user: it must reach the prefix and write the cache.
  chmodSync(prefix, 0o755)
  mkdirSync(join(prefix, 'cache'), { mode: 0o777 })
  chmodSync(join(prefix, 'cache'), 0o777)
  const port = await freePort()
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(conf, config({ prefix, port, upstream: new URL(upstreamUrl).host, gzip, accessLog }))
  const proc = spawn(NGINX, ['-p', prefix, '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  // Never outlive this process (a bench interrupted by a signal exits through here).
  process.on('exit', () => proc.kill('SIGKILL'))
  let stderr = ''
  proc.stderr.on('data', (d) => {
    stderr += d
  })
  const url = `http://127.0.0.1:${port}`
  // Ready once it answers (a 401: no credentials).
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${stderr.trim()}`)
    try {
      const res = await fetch(`${url}/api/ipdrcustomers`)
      await res.arrayBuffer()
      if (res.status === 401) break
    } catch {
      // not listening yet
    }
    if (i > 100) throw new Error(`nginx did not answer: ${stderr.trim()}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    info: { url },
    cpu: () => familyCpu(proc.pid),
    close: () =>
      new Promise((resolve) => {
        proc.once('exit', () => {
          rmSync(prefix, { recursive: true, force: true })
          resolve()
        })
        proc.kill('SIGQUIT')
        setTimeout(() => proc.kill('SIGKILL'), 3000).unref()
      }),
  }
})
