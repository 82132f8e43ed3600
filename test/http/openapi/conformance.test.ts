/**
 * The OpenAPI document as tools outside this project read it (issue 32):
 * Redocly's linter reports no problem, and Prism, a validating proxy, passes a
 * CRM's requests through to a gateway in front of the real emulator — reads,
 * writes, mappings, sync (JSON and CSV) and the error answers — with no
 * violation of the document in a request or in a response.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { request } from 'undici'
import { startUsersEmulator } from '../../helpers/emulator.js'
import { ALL_OPERATIONS, makePolicy, startGateway, tempDir } from '../../helpers/gateway.js'
import { freePort } from '../../helpers/redis-server.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const REDOCLY = join(ROOT, 'node_modules/@redocly/cli/bin/cli.js')
const PRISM = join(ROOT, 'node_modules/@stoplight/prism-cli/dist/index.js')
// No call home from either tool: CI has no network but the registries.
const QUIET_ENV = {
  ...process.env,
  REDOCLY_TELEMETRY: 'off',
  REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
  NO_UPDATE_NOTIFIER: '1',
  NO_COLOR: '1',
}

const TOKEN = 'crmtoken-0123456789'
const AUTH = { authorization: `Bearer ${TOKEN}`, 'x-trisul-username': 'crm' }
const JSON_AUTH = { ...AUTH, 'content-type': 'application/json' }

async function gatewayOnEmulator(t: Test) {
  const emu = await startUsersEmulator(t, { crm: TOKEN }, 5)
  const policy = await makePolicy(t, {
    consumers: {
      default: {
        operations: { ...ALL_OPERATIONS, customers: [...ALL_OPERATIONS.customers, 'sync'] },
      },
    },
  })
  const gw = await startGateway(t, { policy, upstreamUrl: emu.url })
  const res = await request(`${gw.url}/openapi.json`)
  const file = join(tempDir(t), 'openapi.json')
  writeFileSync(file, await res.body.text())
  return { gw, file }
}

t.test('Redocly lint: no error and no warning', async (t) => {
  const { file } = await gatewayOnEmulator(t)
  const { stdout } = await promisify(execFile)(process.execPath, [REDOCLY, 'lint', file, '--format=json'], {
    env: QUIET_ENV,
    maxBuffer: 16 << 20,
  }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
  const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
    totals: { errors: number; warnings: number }
    problems: { message: string }[]
  }
  t.same(
    report.problems.map((p) => p.message),
    [],
    'no problem reported',
  )
  t.equal(report.totals.errors, 0)
  t.equal(report.totals.warnings, 0)
})

/** Prism proxying `upstream` under `file`; resolves once it listens. */
async function startPrism(t: Test, file: string, upstream: string): Promise<string> {
  const port = await freePort()
  const child: ChildProcess = spawn(
    process.execPath,
    [PRISM, 'proxy', file, upstream, '--host', '127.0.0.1', '--port', String(port)],
    { env: QUIET_ENV, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  let output = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Prism did not start:\n${output}`)), 60_000)
    const seen = (chunk: Buffer) => {
      output += chunk.toString('utf8')
      if (output.includes('Prism is listening')) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout?.on('data', seen)
    child.stderr?.on('data', seen)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`Prism exited (${code}):\n${output}`))
    })
  })
  return `http://127.0.0.1:${port}`
}

interface Call {
  readonly name: string
  readonly method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  readonly path: string
  readonly headers?: Record<string, string>
  readonly body?: string
  readonly status: number
}

const customer = (userId: string, name: string) =>
  JSON.stringify({
    UserID: userId,
    Name: name,
    Email: `${userId.toLowerCase()}@example.in`,
    PhoneNumber: '9845012345',
  })

/** A CRM's day, valid requests only: every answer, error or not, is one the document describes. */
const VALID: readonly Call[] = [
  { name: 'list', path: '/api/ipdrcustomers', status: 200 },
  { name: 'filter and page', path: '/api/ipdrcustomers?q=a&limit=2&offset=0', status: 200 },
  {
    name: 'create',
    method: 'POST',
    path: '/api/ipdrcustomers',
    body: customer('CRM1', 'Asha Rao'),
    status: 200,
  },
  {
    name: 'create twice',
    method: 'POST',
    path: '/api/ipdrcustomers',
    body: customer('CRM1', 'Asha Rao'),
    status: 409,
  },
  { name: 'read', path: '/api/ipdrcustomers/CRM1', status: 200 },
  { name: 'read unknown', path: '/api/ipdrcustomers/NOSUCH', status: 404 },
  {
    name: 'replace',
    method: 'PUT',
    path: '/api/ipdrcustomers/CRM1',
    body: JSON.stringify({
      UserID: 'CRM1',
      Name: 'Asha Rao',
      Address: 'MG Road, Bengaluru',
      Email: 'asha@example.in',
      PhoneNumber: '9845012345',
      AltPhoneNumber: '',
    }),
    status: 200,
  },
  {
    name: 'update',
    method: 'PATCH',
    path: '/api/ipdrcustomers/CRM1',
    body: '{"Address":"Indiranagar"}',
    status: 200,
  },
  {
    name: 'update unknown',
    method: 'PATCH',
    path: '/api/ipdrcustomers/NOSUCH',
    body: '{"Address":"x"}',
    status: 404,
  },
  {
    name: 'map a subnet',
    method: 'POST',
    path: '/api/ipdrcustomers_mapping',
    body: '{"UserID":"CRM1","ipsubnet":"192.168.1.0/24","starttime":"0","endtime":null,"terminalid":"T1"}',
    status: 200,
  },
  {
    name: 'who had this IP then',
    path: '/api/ipdrcustomers_mapping?ip=192.168.1.7&at=1735669799',
    status: 200,
  },
  { name: 'mapping listing', path: '/api/ipdrcustomers_mapping', status: 200 },
  { name: "one customer's mappings", path: '/api/ipdrcustomers_mapping/CRM1', status: 200 },
  {
    name: 'update a mapping',
    method: 'PATCH',
    path: '/api/ipdrcustomers_mapping/CRM1',
    body: '{"ipsubnet":"192.168.1.0/24","terminalid":"T2"}',
    status: 200,
  },
  {
    name: 'delete a mapping',
    method: 'DELETE',
    path: '/api/ipdrcustomers_mapping/CRM1',
    body: '{"ipsubnet":"192.168.1.0/24"}',
    status: 200,
  },
  { name: 'delete', method: 'DELETE', path: '/api/ipdrcustomers/CRM1', status: 200 },
  { name: 'delete again', method: 'DELETE', path: '/api/ipdrcustomers/CRM1', status: 404 },
  {
    name: 'sync plan (listing shape, id included)',
    method: 'POST',
    path: '/sync/customers?wait=10',
    body: JSON.stringify([
      { id: 99, UserID: 'CRM2', Name: 'Ravi' },
      { UserID: 'CRM3', Name: 'Meena' },
    ]),
    status: 202,
  },
  {
    name: 'sync apply',
    method: 'POST',
    path: '/sync/customers?mode=apply&wait=10',
    body: JSON.stringify([{ UserID: 'CRM2', Name: 'Ravi' }]),
    status: 202,
  },
  {
    name: 'sync CSV with mappings',
    method: 'POST',
    path: '/sync/customers?wait=10',
    headers: { ...AUTH, 'content-type': 'text/csv' },
    body: '10.9.9.0/24,Csv Person,Pune,,,,CSV1,,,T9\n',
    status: 202,
  },
  { name: 'unknown sync job', path: '/sync/jobs/nosuch', status: 404 },
  { name: 'cancel an unknown job', method: 'DELETE', path: '/sync/jobs/nosuch', status: 404 },
  {
    name: 'wrong token',
    path: '/api/ipdrcustomers',
    headers: { authorization: 'Bearer wrong-token-000', 'x-trisul-username': 'crm' },
    status: 401,
  },
  { name: 'liveness', path: '/healthz', headers: {}, status: 200 },
  { name: 'readiness', path: '/readyz', headers: {}, status: 200 },
]

/** Requests the document itself says are wrong: Prism flags the request, never the gateway's answer. */
const INVALID: readonly Call[] = [
  {
    name: 'no Name on create',
    method: 'POST',
    path: '/api/ipdrcustomers',
    body: '{"UserID":"X9"}',
    status: 400,
  },
  {
    name: 'sync with an invalid record (reported in the job)',
    method: 'POST',
    path: '/sync/customers?wait=10',
    body: JSON.stringify([{ UserID: 'CRM4', Name: 'Kiran', Email: 'not an address' }]),
    status: 202,
  },
  { name: 'limit not a number', path: '/api/ipdrcustomers?limit=abc', status: 400 },
  { name: 'no credentials', path: '/api/ipdrcustomers', headers: {}, status: 401 },
]

async function send(base: string, call: Call) {
  const res = await request(`${base}${call.path}`, {
    method: call.method ?? 'GET',
    headers: call.headers ?? (call.body === undefined ? AUTH : JSON_AUTH),
    ...(call.body === undefined ? {} : { body: call.body }),
  })
  await res.body.text()
  const location = res.headers.location
  const violations = res.headers['sl-violations']
  const list = typeof violations === 'string' ? (JSON.parse(violations) as { location: string[] }[]) : []
  return {
    status: res.statusCode,
    violations: list,
    location: typeof location === 'string' ? location : null,
  }
}

t.test('Prism proxies a CRM without a violation', async (t) => {
  const { gw, file } = await gatewayOnEmulator(t)
  const prism = await startPrism(t, file, gw.url)
  let job: string | null = null
  for (const call of VALID) {
    const { status, violations, location } = await send(prism, call)
    t.equal(status, call.status, `${call.name}: status`)
    t.same(violations, [], `${call.name}: no violation`)
    job ??= location
  }
  t.ok(job, 'a sync answered with its Location')
  for (const call of [
    { name: 'a sync job', path: `${job}?wait=1`, status: 200 },
    { name: 'cancel an ended job', method: 'DELETE', path: `${job}`, status: 200 },
  ] as const) {
    const { status, violations } = await send(prism, call)
    t.equal(status, call.status, `${call.name}: status`)
    t.same(violations, [], `${call.name}: no violation`)
  }
  for (const call of INVALID) {
    const { status, violations } = await send(prism, call)
    t.equal(status, call.status, `${call.name}: status`)
    t.ok(violations.length > 0, `${call.name}: Prism sees the request is wrong`)
    t.same(
      violations.filter((v) => v.location[0] !== 'request'),
      [],
      `${call.name}: the gateway's answer follows the document`,
    )
  }
})
