/**
 * The soak: 60 s of mixed traffic (listings, filters, single reads, writes,
 * conditional and compressed reads, client errors) at a steady 150 req/s over
 * real sockets, after a 10 s warm-up, with an upstream fault injected every 5 s
 * (hang, reset, 5xx, invalid JSON, refused connections, slow, broken body,
 * envelope) and a healthy tail. The gateway runs in its own process
 * (soak-gateway.ts, forked with --expose-gc) so that what is measured is the
 * gateway: RSS growth after warm-up ≤ 10% (both samples after a forced GC),
 * no event-loop stall over 200 ms, no unhandled rejection, no uncaught
 * exception, no leak warning; every request answered, by status, none with an
 * unexpected status, and none with a 5xx once the upstream has recovered.
 */
import { type ChildProcess, fork } from 'node:child_process'
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import ts from 'typescript'
import { Pool } from 'undici'
import {
  type Behaviour,
  type RecordedRequest,
  startRecordingUpstream,
} from '../helpers/recording-upstream.js'

const RATE_PER_SECOND = 150
/** Requests in flight at most (150/s at the gateway's usual few ms each needs far fewer). */
const MAX_IN_FLIGHT = 64
const WARMUP_MS = 10_000
/** 60 s in CI; SOAK_SECONDS runs a longer soak by hand (leak hunting). */
const SOAK_MS = Number(process.env.SOAK_SECONDS ?? 60) * 1000
/**
 * Faults, one every FAULT_EVERY_MS, each lasting FAULT_MS, start during the warm-up: the RSS baseline
 * then holds what handling them costs (a timed-out upstream fills the in-flight bound, whose buffers
 * the allocator keeps), so a later rise is growth, not the first fault's high-water mark.
 */
const FAULT_EVERY_MS = 5000
const FAULT_MS = 1500
/** The last fault ends this long before the traffic stops: the recovery must show. */
const HEALTHY_TAIL_MS = 10_000
/** The gateway's upstream.timeoutMs in soak-gateway.ts. */
const TIMEOUT_MS = 1000
const RSS_GROWTH_LIMIT = 0.1
const STALL_LIMIT_MS = 200
/** A stall caused on purpose during the warm-up, to check that the meters see one. */
const CALIBRATION_STALL_MS = 300

const CUSTOMERS = Array.from({ length: 200 }, (_, i) => ({
  id: i + 1,
  Name: `Customer ${i}`,
  Address: `${i} MG Road, Bengaluru`,
  Email: `c${i}@example.com`,
  PhoneNumber: `98${String(i).padStart(8, '0')}`,
  AltPhoneNumber: '',
  UserID: `U${i}`,
}))
const MAPPINGS = Array.from({ length: 100 }, (_, i) => ({
  id: i + 1,
  ipdr_customer_id: i + 1,
  ipsubnet: `10.0.${i}.0/24`,
  starttime: 0,
  endtime: null,
  terminalid: `t${i}`,
}))

function healthy(req: RecordedRequest): Behaviour {
  const mapping = req.url.startsWith('/api/ipdrcustomers_mapping')
  if (req.method === 'GET') return { kind: 'json', body: mapping ? MAPPINGS : CUSTOMERS }
  const { api_token: _t, username: _u, contextname: _c, context: _x, ...fields } = req.body ?? {}
  return { kind: 'json', body: { id: 999, ...fields } }
}

const FAULTS: readonly [string, Behaviour | 'refuse'][] = [
  ['hang', { kind: 'hang' }],
  ['reset', { kind: 'reset' }],
  ['500', { kind: 'raw', status: 500, body: 'oops', contentType: 'text/plain' }],
  ['invalid JSON', { kind: 'raw', body: '[{"id":1,' }],
  ['refused', 'refuse'],
  ['slow', { kind: 'json', body: [], delayMs: TIMEOUT_MS * 1.5 }],
  ['reset mid-body', { kind: 'reset-mid-body', partial: '[{"id":1' }],
  ['envelope', { kind: 'json', body: { status: 'ERROR', message: 'Invalid API token' } }],
  ['trickle', { kind: 'trickle', chunks: ['[', '{"id":1}', ']'], intervalMs: TIMEOUT_MS }],
  ['503', { kind: 'raw', status: 503, body: 'busy', contentType: 'text/plain' }],
]

/** A small seeded PRNG (mulberry32): the same traffic mix on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

interface Planned {
  kind: string
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  path: string
  headers: Record<string, string>
  body?: string
}

const USERS = ['ana', 'bala', 'chitra', 'dev', 'esha', 'farid', 'gita', 'hari']

function plan(rand: () => number, etags: Map<string, string>): Planned {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
  const user = pick(USERS)
  const auth = { authorization: `Bearer soak-token-${user}`, 'x-trisul-username': user }
  const json = { ...auth, 'content-type': 'application/json' }
  const n = Math.floor(rand() * 220)
  const r = rand()
  if (r < 0.25) {
    const gzip = rand() < 0.3
    return {
      kind: 'list',
      method: 'GET',
      path: '/api/ipdrcustomers',
      headers: gzip ? { ...auth, 'accept-encoding': 'gzip' } : auth,
    }
  }
  if (r < 0.35) {
    const q = pick(['?q=customer%201', `?limit=10&offset=${n}`, `?UserID=U${n}`, '?q=mg'])
    return { kind: 'filter', method: 'GET', path: `/api/ipdrcustomers${q}`, headers: auth }
  }
  if (r < 0.5) return { kind: 'read', method: 'GET', path: `/api/ipdrcustomers/U${n}`, headers: auth }
  if (r < 0.58) {
    const q = pick(['', `?ip=10.0.${n % 120}.7`, `?ip=10.0.${n % 120}.7&at=5`])
    return { kind: 'mappings', method: 'GET', path: `/api/ipdrcustomers_mapping${q}`, headers: auth }
  }
  if (r < 0.63)
    return { kind: 'mapping-read', method: 'GET', path: `/api/ipdrcustomers_mapping/U${n}`, headers: auth }
  if (r < 0.68) {
    const etag = etags.get(user)
    return {
      kind: 'conditional',
      method: 'GET',
      path: '/api/ipdrcustomers',
      headers: etag ? { ...auth, 'if-none-match': etag } : auth,
    }
  }
  if (r < 0.76) {
    const w = pick([
      ['POST', '/api/ipdrcustomers', { UserID: `N${n}`, Name: 'New' }],
      ['PATCH', `/api/ipdrcustomers/U${n}`, { Name: 'Renamed' }],
      ['DELETE', `/api/ipdrcustomers/U${n}`, undefined],
      ['POST', '/api/ipdrcustomers_mapping', { UserID: `U${n}`, ipsubnet: `10.9.${n}.0/24`, starttime: '0' }],
      [
        'PUT',
        `/api/ipdrcustomers/U${n}`,
        {
          UserID: `U${n}`,
          Name: 'R',
          Address: 'A',
          Email: 'r@example.com',
          PhoneNumber: '9800000000',
          AltPhoneNumber: '',
        },
      ],
    ] as const)
    const [method, path, body] = w
    return {
      kind: 'write',
      method,
      path,
      headers: body ? json : auth,
      ...(body ? { body: JSON.stringify(body) } : {}),
    }
  }
  if (r < 0.8) {
    return {
      kind: 'body-credentials',
      method: 'GET',
      path: '/api/ipdrcustomers',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ api_token: `soak-token-${user}`, username: user }),
    }
  }
  if (r < 0.84)
    return {
      kind: 'bad-auth',
      method: 'GET',
      path: '/api/ipdrcustomers',
      headers: { authorization: 'Basic %%%' },
    }
  if (r < 0.87) return { kind: 'not-found', method: 'GET', path: `/api/nothing/${n}`, headers: auth }
  if (r < 0.9) return { kind: 'bad-query', method: 'GET', path: '/api/ipdrcustomers?limit=0', headers: auth }
  if (r < 0.93) {
    return { kind: 'bad-json', method: 'POST', path: '/api/ipdrcustomers', headers: json, body: '{"UserID":' }
  }
  if (r < 0.94) {
    const big = JSON.stringify({ UserID: 'U1', Name: 'x'.repeat(20_000) })
    return { kind: 'too-large', method: 'POST', path: '/api/ipdrcustomers', headers: json, body: big }
  }
  if (r < 0.97) {
    return {
      kind: 'invalid-body',
      method: 'POST',
      path: '/api/ipdrcustomers',
      headers: json,
      body: '{"Name":1}',
    }
  }
  return { kind: 'health', method: 'GET', path: '/healthz', headers: {} }
}

/** Statuses each kind may get; anything else is a bug. 5xx are the upstream faults' statuses. */
const FAULT_STATUSES = [502, 503, 504]
const ALLOWED: Record<string, readonly number[]> = {
  list: [200, 401, ...FAULT_STATUSES],
  filter: [200, 401, ...FAULT_STATUSES],
  read: [200, 404, 401, ...FAULT_STATUSES],
  mappings: [200, 401, ...FAULT_STATUSES],
  'mapping-read': [200, 404, 401, ...FAULT_STATUSES],
  conditional: [200, 304, 401, ...FAULT_STATUSES],
  write: [200, 401, ...FAULT_STATUSES],
  'body-credentials': [200, 401, ...FAULT_STATUSES],
  'bad-auth': [401],
  'not-found': [404],
  'bad-query': [400],
  'bad-json': [400],
  'too-large': [413],
  'invalid-body': [400],
  health: [200],
}

interface Sample {
  rss: number
  heapUsed: number
  /** Memory of Buffers and other objects V8 points to outside its heap. */
  external: number
  /** monitorEventLoopDelay: includes time the OS ran other processes. */
  elMaxMs: number
  elP99Ms: number
  /** The longest stall the gateway's own work can account for (soak-gateway.ts, stallMeter). */
  busyMaxMs: number
}

function nextMessage<T>(child: ChildProcess, type: string, timeoutMs = 30_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no '${type}' message from the soak gateway within ${timeoutMs} ms`))
    }, timeoutMs)
    const onMessage = (msg: { type: string; error?: string }) => {
      if (msg.type === type) {
        cleanup()
        resolve(msg as T)
      } else if (msg.type === 'failed') {
        cleanup()
        reject(new Error(`soak gateway failed: ${msg.error}`))
      }
    }
    const onExit = (code: number | null) => {
      cleanup()
      reject(new Error(`soak gateway exited (${code}) before '${type}'`))
    }
    const cleanup = () => {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.on('exit', onExit)
  })
}

/**
 * The gateway as plain JavaScript in a temporary directory: src/, the policy
 * helper and soak-gateway.ts, each transpiled on its own (the project compiles
 * with isolatedModules, so this is what tsc emits), beside a link to
 * node_modules. Running it without the TypeScript loader keeps the compiler's
 * own 200+ MB out of the process being measured.
 */
function transpiledGateway(t: Test): string {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const out = mkdtempSync(join(tmpdir(), 'ipdr-gw-soak-js-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    )
  const files = [
    ...walk(join(root, 'src')),
    join(root, 'test/helpers/gateway.ts'),
    join(root, 'test/robustness/soak-gateway.ts'),
  ]
  for (const file of files) {
    const { outputText } = ts.transpileModule(readFileSync(file, 'utf8'), {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
    })
    const dest = join(out, relative(root, file)).replace(/\.ts$/, '.js')
    mkdirSync(dirname(dest), { recursive: true })
    writeFileSync(dest, outputText)
  }
  copyFileSync(join(root, 'package.json'), join(out, 'package.json'))
  symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir')
  return join(out, 'test/robustness/soak-gateway.js')
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

t.test('soak: steady mixed traffic with upstream faults, nothing lost, nothing leaked', async (t) => {
  const upstream = await startRecordingUpstream(healthy)
  t.teardown(() => upstream.close())
  const script = transpiledGateway(t)
  let stderr = ''
  // No coverage or loader hooks of the test runner in the measured process.
  const { NODE_OPTIONS: _o, NODE_V8_COVERAGE: _c, ...env } = process.env
  const child = fork(script, [], {
    // The young generation at its full size from the start: V8 otherwise grows it with the
    // allocation rate, so a loaded machine adds up to ~32 MB of RSS after the warm-up that is
    // V8's sizing, not a leak (docs/decisions.md, "Node.js lines").
    execArgv: ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'],
    env: { ...env, SOAK_UPSTREAM: upstream.url },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  })
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000)
  })
  t.teardown(() => {
    // Only the process this test started, by its handle.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const ready = await nextMessage<{ url: string; gc: boolean }>(child, 'ready', 60_000).catch(
    (err: Error) => {
      throw new Error(`${err.message}\n${stderr}`)
    },
  )
  t.ok(ready.gc, 'the gateway process can force a GC (--expose-gc)')
  const sample = async (gc: boolean): Promise<Sample> => {
    child.send({ type: 'sample', gc })
    return nextMessage<Sample>(child, 'sample')
  }

  const pool = new Pool(ready.url, { connections: 100, headersTimeout: 20_000, bodyTimeout: 20_000 })
  t.teardown(() => pool.close())
  const rand = prng(0x1b0c)
  const etags = new Map<string, string>()
  let sent = 0
  let inFlight = 0
  let maxInFlight = 0
  let maxLatencyMs = 0
  const byStatus = new Map<number, number>()
  const errors = new Map<string, number>()
  const unexpected: string[] = []
  const lateFailures: string[] = []

  const start = performance.now()
  const trafficEnd = WARMUP_MS + SOAK_MS
  const lastFaultEnd = trafficEnd - HEALTHY_TAIL_MS
  /** Requests sent after this moment must not fail: the upstream has been healthy for a while. */
  const recoveredAfter = lastFaultEnd + 3000

  const fire = (p: Planned, sentAt: number) => {
    sent++
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    const began = performance.now()
    pool
      .request({ method: p.method, path: p.path, headers: p.headers, ...(p.body ? { body: p.body } : {}) })
      .then(async (res) => {
        await res.body.dump()
        byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1)
        if (!(ALLOWED[p.kind] ?? []).includes(res.statusCode) && unexpected.length < 20) {
          unexpected.push(`${p.kind} ${p.method} ${p.path} → ${res.statusCode}`)
        }
        if (res.statusCode >= 500 && sentAt > recoveredAfter && lateFailures.length < 20) {
          lateFailures.push(`${p.kind} ${p.method} ${p.path} → ${res.statusCode} at ${Math.round(sentAt)} ms`)
        }
        const etag = res.headers.etag
        const user = p.headers['x-trisul-username']
        if (p.kind === 'list' && typeof etag === 'string' && user && !p.headers['accept-encoding']) {
          etags.set(user, etag)
        }
      })
      .catch((err: { code?: string }) => {
        const code = err?.code ?? String(err)
        errors.set(code, (errors.get(code) ?? 0) + 1)
      })
      .finally(() => {
        inFlight--
        maxLatencyMs = Math.max(maxLatencyMs, performance.now() - began)
      })
  }

  let warm: Sample | null = null
  let calibrated = false
  let faultIndex = 0
  let faultActive = false
  let nextFaultAt = 2000
  const rssLog: string[] = []
  let nextRssLog = 0
  // One loop, bounded by the clock and by a tick count: send what the rate owes, switch faults,
  // take the warm-up sample.
  for (let tick = 0; tick < (trafficEnd / 10) * 3; tick++) {
    const now = performance.now() - start
    if (now >= trafficEnd) break
    const owed = Math.floor((now / 1000) * RATE_PER_SECOND) - sent
    // A stalled load generator catches up at most a little: the rate stays steady.
    // In flight is bounded too: on a machine busy with other work, an open-loop generator would
    // pile up requests and measure its own backlog instead of the gateway's memory.
    for (let i = 0; i < Math.min(owed, 20, MAX_IN_FLIGHT - inFlight); i++) fire(plan(rand, etags), now)
    if (!calibrated && now >= WARMUP_MS / 2) {
      // The stall meters must see a stall that really happens on the gateway's event loop.
      calibrated = true
      child.send({ type: 'block', ms: CALIBRATION_STALL_MS })
      await nextMessage(child, 'block')
      const seen = await sample(false)
      t.ok(
        seen.busyMaxMs >= CALIBRATION_STALL_MS * 0.9 && seen.elMaxMs >= CALIBRATION_STALL_MS * 0.9,
        `a deliberate ${CALIBRATION_STALL_MS} ms stall is measured (${seen.busyMaxMs.toFixed(0)} ms own work, ${seen.elMaxMs.toFixed(0)} ms delay)`,
      )
    }
    if (!warm && now >= WARMUP_MS) {
      warm = await sample(true)
      child.send({ type: 'reset-delay' })
      await nextMessage(child, 'reset-delay')
      t.comment(
        `after warm-up: rss ${(warm.rss / 1048576).toFixed(1)} MB, heap ${(warm.heapUsed / 1048576).toFixed(1)} MB`,
      )
    }
    if (now >= nextRssLog) {
      nextRssLog += 10_000
      // SOAK_GC_SAMPLES=1 (by hand) forces a GC at each sample to follow the live heap.
      const s = await sample(process.env.SOAK_GC_SAMPLES === '1')
      rssLog.push(
        `${Math.round(now / 1000)}s:${(s.rss / 1048576).toFixed(0)}MB/${(s.heapUsed / 1048576).toFixed(1)}MB/${(s.external / 1048576).toFixed(1)}MB`,
      )
    }
    if (!faultActive && now >= nextFaultAt && now + FAULT_MS <= lastFaultEnd) {
      const [, behaviour] = FAULTS[faultIndex % FAULTS.length] as (typeof FAULTS)[number]
      faultIndex++
      faultActive = true
      if (behaviour === 'refuse') await upstream.refuseConnections()
      else upstream.respond(() => behaviour)
    } else if (faultActive && now >= nextFaultAt + FAULT_MS) {
      faultActive = false
      nextFaultAt += FAULT_EVERY_MS
      await upstream.acceptConnections()
      upstream.respond(healthy)
    }
    // Keep the recorder from growing for a minute: only the gateway is measured.
    if (upstream.requests.length > 1000) upstream.requests.splice(0)
    await sleep(10)
  }
  if (faultActive) {
    await upstream.acceptConnections()
    upstream.respond(healthy)
  }
  const sendingMs = performance.now() - start
  // Every request gets an answer: wait for the stragglers (bounded).
  for (let waited = 0; inFlight > 0 && waited < 30_000; waited += 50) await sleep(50)

  const end = await sample(false)
  const endGc = await sample(true)
  child.send({ type: 'stop' })
  const stopped = await nextMessage<{ unhandled: string[]; uncaught: string[]; warnings: string[] }>(
    child,
    'stopped',
  )

  const answered = [...byStatus.values()].reduce((a, b) => a + b, 0)
  const failed = [...errors.values()].reduce((a, b) => a + b, 0)
  const statuses = Object.fromEntries([...byStatus].sort((a, b) => a[0] - b[0]))
  t.comment(`sent ${sent} requests in ${(sendingMs / 1000).toFixed(1)} s (${faultIndex} faults injected)`)
  t.comment(
    `answered by status: ${JSON.stringify(statuses)}; client errors: ${JSON.stringify(Object.fromEntries(errors))}`,
  )
  t.comment(`max in flight ${maxInFlight}, max latency ${Math.round(maxLatencyMs)} ms`)
  t.comment(`rss/heap/external over time: ${rssLog.join(' ')}`)
  t.ok(warm, 'sampled after the warm-up')
  const warmRss = warm?.rss ?? 0
  const growth = (endGc.rss - warmRss) / warmRss
  t.comment(
    `RSS after warm-up ${(warmRss / 1048576).toFixed(1)} MB, after the soak ${(endGc.rss / 1048576).toFixed(1)} MB (${(growth * 100).toFixed(1)}%); heap ${((warm?.heapUsed ?? 0) / 1048576).toFixed(1)} → ${(endGc.heapUsed / 1048576).toFixed(1)} MB`,
  )
  t.comment(
    `event-loop delay after warm-up: max ${end.elMaxMs.toFixed(1)} ms, p99 ${end.elP99Ms.toFixed(1)} ms; longest stall of the gateway's own work ${end.busyMaxMs.toFixed(1)} ms`,
  )

  t.ok(sent >= ((RATE_PER_SECOND * trafficEnd) / 1000) * 0.9, `a steady rate: ${sent} requests`)
  t.equal(failed, 0, 'every request got an HTTP answer (no reset, no timeout)')
  t.equal(answered + failed, sent, 'every request is accounted for')
  t.same(unexpected, [], 'no status outside what each kind of request may get')
  t.same(lateFailures, [], 'no 5xx once the upstream had recovered')
  t.ok(
    FAULT_STATUSES.some((s) => (byStatus.get(s) ?? 0) > 0),
    'the faults did reach clients as 5xx',
  )
  t.ok(maxLatencyMs < TIMEOUT_MS + 10_000, 'every answer came within the timeout plus slack')
  t.ok(
    growth <= RSS_GROWTH_LIMIT,
    `RSS growth after warm-up ≤ ${RSS_GROWTH_LIMIT * 100}% (${(growth * 100).toFixed(1)}%)`,
  )
  // The raw delay counts when the machine ran other processes; a stall is the gateway's own
  // only as far as its CPU time covers it (see stallMeter in soak-gateway.ts).
  const stallMs = Math.min(end.elMaxMs, end.busyMaxMs)
  t.ok(stallMs <= STALL_LIMIT_MS, `no event-loop stall over ${STALL_LIMIT_MS} ms (${stallMs.toFixed(1)} ms)`)
  t.same(stopped.unhandled, [], 'no unhandled rejection in the gateway')
  t.same(stopped.uncaught, [], 'no uncaught exception in the gateway')
  t.same(
    stopped.warnings.filter((w) => !/^\w*Deprecation/.test(w)),
    [],
    'no process warning but deprecations (MaxListenersExceeded would mean a leak)',
  )
})
