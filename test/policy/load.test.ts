// Loading valid policies: defaults, the built Policy, what is read and what is not.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadPolicy } from '../../src/policy/load.js'
import {
  CRM_KEY,
  CRM_YAML,
  DEFAULT_YAML,
  ENV,
  NO_FILE,
  OPS_YAML,
  policyDir,
  sha256,
  validPolicy,
} from './fixtures.js'

const SPEC_DEFAULTS = {
  upstream: {
    url: 'http://127.0.0.1:3000',
    urlFromPolicy: false,
    dialect: 'v2',
    defaultContext: 'default',
    timeoutMs: 10000,
    connectTimeoutMs: 3000,
    probeIntervalSeconds: 10,
    normalizeErrors: true,
    caFile: null,
    circuit: { failures: 5, resetSeconds: 10 },
    maxListingBytes: 2147483648,
    timeZone: 'Asia/Kolkata',
  },
  auth: {
    bodyCredentials: true,
    failureLimit: { max: 10, timeWindow: '1 minute', timeWindowMs: 60000 },
    knownGoodSeconds: 600,
    jwt: { issuers: [] },
  },
  cache: { ttlSeconds: 30, staleIfErrorSeconds: 300, maxBytes: 268435456, applyWrites: true },
  rateLimit: { max: 600, timeWindow: '1 minute', timeWindowMs: 60000 },
  validation: {
    userIdPattern: '^[A-Za-z0-9._@:+-]{1,64}$',
    maxFieldLength: 256,
    email: true,
    phonePattern: '^[0-9+() -]{4,20}$',
    requiredFields: ['UserID', 'Name'],
  },
  limits: { bodyBytes: 1048576, inFlightBodyBytes: 268435456 },
  cors: { origins: [] },
  metrics: { port: null, tokenEnv: null, tokenFile: null },
  docs: { swaggerUi: false },
  trustProxy: [],
  store: { redis: null },
  telemetry: { otlp: { endpoint: null }, sampleRatio: 0.01, maxSampledPerSecond: 1000 },
  server: {
    requestTimeoutMs: 30000,
    headersTimeoutMs: 10000,
    keepAliveTimeoutMs: 72000,
    maxConnectionsPerAddress: 256,
    trustedAddresses: [],
    tls: null,
  },
  mappings: { delete: 'remove' },
  sync: {
    concurrency: 4,
    maxWritesPerSecond: 50,
    maxBodyBytes: 67108864,
    requestTimeoutMs: 300000,
    maxRecords: 2000000,
    maxJobs: 2,
  },
  audit: {
    file: null,
    required: true,
    fsync: false,
    maxBytes: 104857600,
    reads: true,
    readUserIds: 100,
    retainDays: 730,
    legalHold: false,
    signingKeyFile: null,
    checkpointSeconds: 60,
    syslog: null,
  },
}

t.test('an empty gateway.yaml means every default of SPEC 4', async (t) => {
  const policy = await validPolicy(t)
  t.same(policy.gateway, SPEC_DEFAULTS)
  t.same(policy.consumers, [])
  t.equal(policy.tokens.size, 0)
  t.equal(policy.metricsToken, null)
  t.match(policy.version, /^[0-9a-f]{12}$/)
})

t.test('the shipped policy is valid, has a permissive default and leaves the upstream unset', async (t) => {
  const result = await loadPolicy(new URL('../../policies', import.meta.url).pathname, {})
  if (!result.ok) throw new Error(result.problems.join('\n'))
  const { policy } = result
  t.same(
    { ...policy.gateway, upstream: { ...policy.gateway.upstream } },
    { ...SPEC_DEFAULTS, audit: { ...SPEC_DEFAULTS.audit, file: 'data/audit.jsonl' } },
    'the shipped gateway.yaml shows the defaults, and turns the audit trail on (SPEC 11)',
  )
  t.equal(policy.gateway.upstream.urlFromPolicy, false, 'npm start runs the embedded emulator')
  t.same(
    policy.consumers.map((c) => c.name),
    ['default', 'lea-demo'],
    'examples/ is not loaded',
  )
  const d = policy.consumers[0]!
  t.same(d.operations, {
    customers: ['list', 'read', 'create', 'replace', 'update', 'delete'],
    mappings: ['list', 'read', 'create', 'replace', 'update', 'delete'],
  })
  t.notOk('queries' in d.operations, 'the default consumer has no Query API operation (SPEC 12)')
  t.same([d.keys, d.upstream, d.rateLimit, d.redact, d.allowIPs], [[], null, null, [], null])
  // The demo's lookups: one named consumer, queries only, from this host only.
  const lea = policy.consumers[1]!
  t.same(lea.operations, { queries: ['list', 'create', 'read', 'cancel'] })
  t.same(lea.usernames, ['demo-lea'])
  t.same(lea.allowIPs, ['127.0.0.1/32', '::1/128'])
})

t.test('the example LEA desk is valid once copied into consumers/', async (t) => {
  const { readFileSync } = await import('node:fs')
  const example = readFileSync(new URL('../../policies/examples/lea-desk.yaml', import.meta.url), 'utf8')
  const policy = await validPolicy(t, { 'consumers/lea-desk.yaml': example }, { LEA_TRISUL_TOKEN: 'fake' })
  t.same(policy.consumers[0]?.operations.queries, ['list', 'create', 'read', 'cancel'])
})

t.test('the example consumer is valid once copied into consumers/', async (t) => {
  const { readFileSync } = await import('node:fs')
  const example = readFileSync(new URL('../../policies/examples/crm.yaml', import.meta.url), 'utf8')
  const policy = await validPolicy(t, { 'consumers/crm.yaml': example }, { CRM_TRISUL_TOKEN: 'fake' })
  t.equal(policy.consumers[0]?.rateLimit?.timeWindowMs, 60000)
})

t.test('consumers are built with defaults, sorted by name, tokens resolved', async (t) => {
  const policy = await validPolicy(t, {
    'gateway.yaml': 'metrics: { tokenEnv: SCRAPE }\nupstream: { url: "https://trisul.example:8443/" }\n',
    'consumers/ops.yaml': OPS_YAML,
    'consumers/crm.yaml': CRM_YAML,
    'consumers/default.json': JSON.stringify({ operations: { customers: ['list', 'read'] } }),
  })
  t.same(
    policy.consumers.map((c) => c.name),
    ['crm', 'default', 'ops'],
  )
  const [crm, def, ops] = policy.consumers
  t.same(crm, {
    name: 'crm',
    usernames: ['crm'],
    keys: [sha256(CRM_KEY)],
    upstream: { username: 'crm', tokenEnv: 'CRM_TOKEN', tokenFile: null, context: 'sales', contexts: null },
    operations: {
      customers: ['list', 'read', 'create', 'replace', 'update', 'delete'],
      mappings: ['list', 'read'],
    },
    rateLimit: { max: 1200, timeWindow: '1 minute', timeWindowMs: 60000 },
    redact: ['PhoneNumber', 'AltPhoneNumber'],
    allowIPs: ['10.0.0.0/8', '127.0.0.1/32', '2001:db8::/32'],
    jwt: null,
  })
  t.same(def, {
    name: 'default',
    usernames: [],
    keys: [],
    upstream: null,
    operations: { customers: ['list', 'read'] },
    rateLimit: null,
    redact: [],
    allowIPs: null,
    jwt: null,
  })
  t.same(ops?.upstream, {
    username: 'ops',
    tokenEnv: 'OPS_TOKEN',
    tokenFile: null,
    context: null,
    contexts: null,
  })
  t.same(
    [...policy.tokens],
    [
      ['crm', ENV.CRM_TOKEN],
      ['ops', ENV.OPS_TOKEN],
    ],
  )
  t.equal(policy.metricsToken, ENV.SCRAPE)
  t.equal(policy.gateway.upstream.url, 'https://trisul.example:8443/')
  t.equal(policy.gateway.upstream.urlFromPolicy, true)
})

t.test('time windows in milliseconds and in words', async (t) => {
  const policy = await validPolicy(t, {
    'gateway.yaml':
      'rateLimit: { max: 5, timeWindow: 1500 }\nauth: { failureLimit: { max: 0, timeWindow: "2 hours" } }\n',
    'consumers/a.yaml': 'rateLimit: { max: 1, timeWindow: "30 seconds" }\n',
    'consumers/b.yaml': 'rateLimit: { max: 1, timeWindow: "1 day" }\n',
  })
  t.equal(policy.gateway.rateLimit.timeWindowMs, 1500)
  t.same(policy.gateway.auth.failureLimit, { max: 0, timeWindow: '2 hours', timeWindowMs: 7_200_000 })
  t.equal(policy.consumers[0]?.rateLimit?.timeWindowMs, 30_000)
  t.equal(policy.consumers[1]?.rateLimit?.timeWindowMs, 86_400_000)
})

t.test('the policy is deeply frozen', async (t) => {
  const policy = await validPolicy(t, { 'consumers/crm.yaml': CRM_YAML })
  t.ok(Object.isFrozen(policy))
  t.ok(Object.isFrozen(policy.gateway.upstream.circuit))
  t.ok(Object.isFrozen(policy.gateway.cors.origins))
  t.ok(Object.isFrozen(policy.consumers))
  t.ok(Object.isFrozen(policy.consumers[0]?.operations.customers))
  t.throws(() => {
    ;(policy.gateway.rateLimit as { max: number }).max = 1
  })
})

t.test('version: the same files give the same version, any change another', async (t) => {
  const a = await validPolicy(t, { 'consumers/crm.yaml': CRM_YAML })
  const b = await validPolicy(t, { 'consumers/crm.yaml': CRM_YAML })
  const c = await validPolicy(t, { 'consumers/crm.yaml': `${CRM_YAML}# a comment\n` })
  const d = await validPolicy(t, { 'consumers/crm2.yaml': CRM_YAML })
  t.equal(a.version, b.version)
  t.not(a.version, c.version)
  t.not(a.version, d.version)
})

t.test('only gateway.* and consumers/* are read', async (t) => {
  const dir = policyDir(t, {
    'consumers/a.yaml': DEFAULT_YAML,
    'consumers/.a.yaml.swp': 'garbage: [',
    'consumers/notes.txt': 'garbage: [',
    'consumers/b.yaml~': 'garbage: [',
    'examples/crm.yaml': 'garbage: [',
    'README.md': 'garbage',
    'other.yaml': 'garbage: [',
  })
  mkdirSync(join(dir, 'consumers', 'sub.yaml'))
  const result = await loadPolicy(dir, ENV)
  t.ok(result.ok)
  if (result.ok)
    t.same(
      result.policy.consumers.map((c) => c.name),
      ['a'],
    )
})

t.test('symlinked files are followed (Kubernetes ConfigMap volumes)', async (t) => {
  const dir = policyDir(t, { 'gateway.yaml': NO_FILE, 'data/gw.yaml': 'cache: { ttlSeconds: 5 }\n' })
  symlinkSync(join(dir, 'data', 'gw.yaml'), join(dir, 'gateway.yaml'))
  mkdirSync(join(dir, 'consumers'))
  writeFileSync(join(dir, 'data', 'a.yaml'), DEFAULT_YAML)
  symlinkSync(join(dir, 'data', 'a.yaml'), join(dir, 'consumers', 'a.yaml'))
  const result = await loadPolicy(dir, ENV)
  t.ok(result.ok)
  if (result.ok) {
    t.equal(result.policy.gateway.cache.ttlSeconds, 5)
    t.same(
      result.policy.consumers.map((c) => c.name),
      ['a'],
    )
  }
})

t.test('gateway.json and a YAML file that is only comments', async (t) => {
  const policy = await validPolicy(t, {
    'gateway.yaml': NO_FILE,
    'gateway.json': JSON.stringify({ cors: { origins: ['https://crm.example'] } }),
    'consumers/a.yml': '# nothing yet\n',
  })
  t.same(policy.gateway.cors.origins, ['https://crm.example'])
  t.same(policy.consumers[0]?.operations, {})
})

t.test('caFile is resolved against the policy directory', async (t) => {
  const dir = policyDir(t, {
    'gateway.yaml': 'upstream: { caFile: certs/ca.pem }\n',
    'certs/ca.pem': 'fake pem',
  })
  const result = await loadPolicy(dir, ENV)
  t.ok(result.ok)
  if (result.ok) t.equal(result.policy.gateway.upstream.caFile, join(dir, 'certs', 'ca.pem'))
  writeFileSync(
    join(dir, 'gateway.yaml'),
    `upstream: { caFile: ${JSON.stringify(join(dir, 'certs', 'ca.pem'))} }\n`,
  )
  const r2 = await loadPolicy(dir, ENV)
  t.ok(r2.ok)
  if (r2.ok) t.equal(r2.policy.gateway.upstream.caFile, join(dir, 'certs', 'ca.pem'))
})

t.test('consumers that is a file, not a directory, holds no consumers', async (t) => {
  const policy = await validPolicy(t, { consumers: 'not a directory' })
  t.same(policy.consumers, [])
})

t.test(
  'secrets from files (SPEC 16): a token file per consumer and a scrape token file, one newline trimmed',
  async (t) => {
    const policy = await validPolicy(t, {
      'gateway.yaml': 'metrics: { tokenFile: secrets/scrape }\n',
      'secrets/scrape': 'scrape-token-123\n',
      'secrets/crm': 'crm-token-456\n\n',
      'consumers/crm.yaml': 'keys: []\nupstream: { username: crm, tokenFile: secrets/crm }\n',
    })
    t.equal(policy.metricsToken, 'scrape-token-123')
    // Only one trailing newline is the file's end; a second is part of the secret as written.
    t.equal(policy.tokens.get('crm'), 'crm-token-456\n')
  },
)
