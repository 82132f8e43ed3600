// Every problem a policy can have, as the operator reads it: `file: path: message`.
import t from 'tap'
import { CRM_YAML, ENV, NO_FILE, OPS_YAML, policyDir, problemsOf, sha256 } from './fixtures.js'

interface Case {
  name: string
  files: Record<string, string>
  env?: Record<string, string>
  /** The exact problem list (directory prefix removed). */
  problems: string[]
}

const KEY = sha256('k1')

const schemaCases: Case[] = [
  {
    name: 'unknown top-level key',
    files: { 'gateway.yaml': 'upstreams: {}\n' },
    problems: [
      'gateway.yaml: upstreams: unknown key (known keys: upstream, auth, cache, rateLimit, validation, limits, cors, metrics, docs, store, server, telemetry, mappings, sync, audit, trustProxy)',
    ],
  },
  {
    name: 'upstream.timeZone: a zone the platform does not know; sync limits out of range',
    files: {
      'gateway.yaml': 'upstream: { timeZone: Mars/Olympus }\nsync: { concurrency: 33, maxJobs: 0 }\n',
    },
    problems: [
      'gateway.yaml: sync.concurrency: must be <= 32',
      'gateway.yaml: sync.maxJobs: must be >= 1',
      'gateway.yaml: upstream.timeZone: not a time zone this system knows: "Mars/Olympus" (an IANA name such as Asia/Kolkata)',
    ],
  },
  {
    name: 'store.redis: a URL that is not redis, never echoed (it may hold a password)',
    files: { 'gateway.yaml': 'store: { redis: { url: "http://:hunter2@cache:6379" } }\n' },
    problems: ['gateway.yaml: store.redis.url: must be a redis:, rediss: or redis+sentinel: URL'],
  },
  {
    name: 'store.redis: one way to reach Redis, addresses that parse, one source per secret (SPEC 15, 16)',
    files: {
      'gateway.yaml':
        'store: { redis: { url: "redis+sentinel://:hunter2@s1:26379,s2/mymaster", sentinels: ["s1:26379", "s2"], cluster: ["c1:7000"], passwordEnv: UNSET_REDIS_PW, passwordFile: pw } }\n',
    },
    problems: [
      'gateway.yaml: store.redis.url: each sentinel must be host:port',
      'gateway.yaml: store.redis.sentinels: cannot be used with url: name one way to reach Redis',
      'gateway.yaml: store.redis.sentinels[1]: must be host:port',
      'gateway.yaml: store.redis.passwordFile: cannot be used with passwordEnv: name one source for the secret',
      'gateway.yaml: store.redis.passwordEnv: environment variable UNSET_REDIS_PW is not set (or is empty)',
      'gateway.yaml: store.redis.passwordFile: cannot read "pw" (ENOENT)',
    ],
  },
  {
    name: 'store.redis: a keyPrefix with braces would break the hash tags',
    files: { 'gateway.yaml': 'store: { redis: { keyPrefix: "{gw}:" } }\n' },
    problems: ['gateway.yaml: store.redis.keyPrefix: must match the pattern ^[A-Za-z0-9._:-]+$'],
  },
  {
    name: 'store.redis: bad prefix, timeouts and lease out of range, unknown key',
    files: {
      'gateway.yaml':
        'store: { redis: { keyPrefix: "has space", timeoutMs: 0, leaseMs: 50, shareMaxBytes: -1, db: 2 } }\n',
    },
    problems: [
      'gateway.yaml: store.redis.db: unknown key (known keys: url, sentinels, name, cluster, passwordEnv, passwordFile, sentinelPasswordEnv, sentinelPasswordFile, tls, keyPrefix, timeoutMs, shareMaxBytes, leaseMs, directAcks)',
      'gateway.yaml: store.redis.keyPrefix: must match the pattern ^[A-Za-z0-9._:-]+$',
      'gateway.yaml: store.redis.timeoutMs: must be >= 1',
      'gateway.yaml: store.redis.shareMaxBytes: must be >= 0',
      'gateway.yaml: store.redis.leaseMs: must be >= 200',
    ],
  },
  {
    name: 'unknown nested key',
    files: { 'gateway.yaml': 'upstream: { circuit: { failure: 3 } }\n' },
    problems: ['gateway.yaml: upstream.circuit.failure: unknown key (known keys: failures, resetSeconds)'],
  },
  {
    name: 'wrong types and ranges, all listed',
    files: {
      'gateway.yaml': `upstream:
  dialect: v3
  timeoutMs: 0
  normalizeErrors: "yes"
cache: { ttlSeconds: -1, maxBytes: 1.5 }
limits: { bodyBytes: 0 }
cors: { origins: "https://a.example" }
metrics: { port: 70000 }
docs: { swaggerUi: 1 }
`,
    },
    problems: [
      'gateway.yaml: upstream.dialect: must be one of: v1, v2',
      'gateway.yaml: upstream.timeoutMs: must be >= 1',
      'gateway.yaml: upstream.normalizeErrors: must be true or false',
      'gateway.yaml: cache.ttlSeconds: must be >= 0',
      'gateway.yaml: cache.maxBytes: must be an integer',
      'gateway.yaml: limits.bodyBytes: must be >= 1',
      'gateway.yaml: cors.origins: must be a list',
      'gateway.yaml: metrics.port: must be <= 65535',
      'gateway.yaml: docs.swaggerUi: must be true or false',
    ],
  },
  {
    name: 'a document that is not a mapping',
    files: { 'gateway.yaml': '- a\n- b\n' },
    problems: ['gateway.yaml: (root): must be an object (a mapping of keys)'],
  },
  {
    name: 'duration that does not parse',
    files: { 'gateway.yaml': 'rateLimit: { max: 5, timeWindow: "1 fortnight" }\n' },
    problems: [
      'gateway.yaml: rateLimit.timeWindow: cannot parse duration "1 fortnight" (use milliseconds or e.g. "30 seconds", "1 minute", "2 hours", "1 day")',
    ],
  },
  {
    name: 'consumer: unknown resource, unknown operation, unknown redact field, bad key',
    files: {
      'consumers/crm.yaml': `keys: [${KEY.toUpperCase()}]
upstream: { username: crm, tokenEnv: CRM_TOKEN }
operations: { customer: [list], mappings: [list, fly] }
redact: [Phone]
`,
    },
    problems: [
      'consumers/crm.yaml: keys[0]: must be 64 lower-case hex characters (the SHA-256 of a gateway key, not the key)',
      'consumers/crm.yaml: operations.customer: unknown key (known keys: customers, mappings, queries)',
      'consumers/crm.yaml: operations.mappings[1]: must be one of: list, read, create, replace, update, delete',
      'consumers/crm.yaml: redact[0]: must be one of: Address, AltPhoneNumber, Email, Name, PhoneNumber, UserID, endtime, id, ipdr_customer_id, ipsubnet, starttime, terminalid',
    ],
  },
  {
    name: 'consumer: the Query API takes its own four operations (SPEC 12)',
    files: {
      'consumers/lea.yaml': 'usernames: [lea]\noperations: { queries: [list, create, read, delete] }\n',
    },
    problems: ['consumers/lea.yaml: operations.queries[3]: must be one of: list, create, read, cancel'],
  },
  {
    name: 'consumer: missing required keys, duplicates, bad env name',
    files: {
      'consumers/crm.yaml': `usernames: [crm, crm]
upstream: { tokenEnv: "1BAD" }
rateLimit: { timeWindow: "1 minute" }
`,
    },
    problems: [
      'consumers/crm.yaml: usernames: lists the same value twice (items 0 and 1)',
      'consumers/crm.yaml: upstream.tokenEnv: "1BAD" is not an environment variable name (letters, digits and _, not starting with a digit)',
      // A token without a username is a cross-check, listed after the schema's problems.
      'consumers/crm.yaml: rateLimit.max: is required',
      'consumers/crm.yaml: upstream.username: is required with tokenEnv or tokenFile',
    ],
  },
]

const crossCases: Case[] = [
  {
    name: 'a username in two consumers',
    files: { 'consumers/crm.yaml': CRM_YAML, 'consumers/ops.yaml': 'usernames: [noc, crm]\n' },
    problems: ['consumers/ops.yaml: usernames[1]: username "crm" is already used by consumer "crm"'],
  },
  {
    name: 'a key hash in two consumers',
    files: {
      'consumers/a.yaml': `keys: [${KEY}]\nupstream: { username: a, tokenEnv: CRM_TOKEN }\n`,
      'consumers/b.yaml': `keys: [${KEY}]\nupstream: { username: b, tokenEnv: OPS_TOKEN }\n`,
    },
    problems: ['consumers/b.yaml: keys[0]: this key hash is already used by consumer "a"'],
  },
  {
    // SPEC 16: HMAC or none would let a public key act as a shared secret.
    name: 'JWT issuers: HMAC and none refused, one key source each, each iss once',
    files: {
      'gateway.yaml': `auth:
  jwt:
    issuers:
      - { issuer: https://a.example, jwksUrl: https://a.example/jwks, audiences: [gw], algorithms: [RS256, HS256, none] }
      - { issuer: https://a.example, jwksUrl: https://a.example/jwks, discoveryUrl: https://a.example/.well-known/openid-configuration, audiences: [gw] }
      - { issuer: https://b.example, audiences: [gw] }
      - { issuer: https://c.example, publicKeyFile: missing.pem, audiences: [gw] }
`,
    },
    problems: [
      'gateway.yaml: auth.jwt.issuers[0].algorithms[1]: HS256 is refused: only asymmetric algorithms (RS*, PS*, ES*, EdDSA) can be trusted from an identity provider',
      'gateway.yaml: auth.jwt.issuers[0].algorithms[2]: none is refused: only asymmetric algorithms (RS*, PS*, ES*, EdDSA) can be trusted from an identity provider',
      'gateway.yaml: auth.jwt.issuers[1].issuer: this issuer is already listed',
      'gateway.yaml: auth.jwt.issuers[1]: needs exactly one of jwksUrl, discoveryUrl, publicKeyFile (has jwksUrl, discoveryUrl)',
      'gateway.yaml: auth.jwt.issuers[2]: needs exactly one of jwksUrl, discoveryUrl, publicKeyFile',
      'gateway.yaml: auth.jwt.issuers[3].publicKeyFile: cannot read "missing.pem" (ENOENT)',
    ],
  },
  {
    name: 'JWT consumers: a known issuer, subjects or client ids, upstream credentials; one token source',
    files: {
      'gateway.yaml':
        'auth: { jwt: { issuers: [{ issuer: https://a.example, jwksUrl: https://a.example/jwks, audiences: [gw] }] } }\n',
      'consumers/a.yaml': 'jwt: { issuer: https://a.example }\n',
      'consumers/b.yaml':
        'jwt: { issuer: https://other.example, clientIds: [crm] }\nupstream: { username: b, tokenEnv: CRM_TOKEN, tokenFile: token }\n',
      'consumers/c.yaml': 'upstream: { username: c, tokenFile: no-such-token }\n',
    },
    problems: [
      'consumers/a.yaml: jwt: a JWT consumer needs upstream credentials (upstream.username and upstream.tokenEnv or tokenFile)',
      'consumers/a.yaml: jwt: needs subjects or clientIds: which tokens of the issuer are this consumer',
      'consumers/b.yaml: upstream.tokenFile: one source for the token: tokenEnv or tokenFile, not both',
      'consumers/b.yaml: upstream.tokenFile: cannot read "token" (ENOENT)',
      'consumers/b.yaml: jwt.issuer: "https://other.example" is not one of gateway.yaml\'s auth.jwt.issuers',
      'consumers/c.yaml: upstream.tokenFile: cannot read "no-such-token" (ENOENT)',
    ],
  },
  {
    name: 'tokenEnv not set, metrics token not set',
    files: { 'gateway.yaml': 'metrics: { tokenEnv: SCRAPE }\n', 'consumers/ops.yaml': OPS_YAML },
    env: { CRM_TOKEN: 'x', OPS_TOKEN: '' },
    problems: [
      'gateway.yaml: metrics.tokenEnv: environment variable SCRAPE is not set (or is empty)',
      'consumers/ops.yaml: upstream.tokenEnv: environment variable OPS_TOKEN is not set (or is empty)',
    ],
  },
  {
    name: 'invalid CIDRs',
    files: {
      'gateway.yaml': 'trustProxy: [10.0.0.1, 10.0.0.0/33]\n',
      'consumers/a.yaml': 'allowIPs: [10.0.0.0/8, 300.1.1.1, "fe80::/129", example.com]\n',
    },
    problems: [
      'gateway.yaml: trustProxy[1]: "10.0.0.0/33" is not an IPv4/IPv6 address or CIDR',
      'consumers/a.yaml: allowIPs[1]: "300.1.1.1" is not an IPv4/IPv6 address or CIDR',
      'consumers/a.yaml: allowIPs[2]: "fe80::/129" is not an IPv4/IPv6 address or CIDR',
      'consumers/a.yaml: allowIPs[3]: "example.com" is not an IPv4/IPv6 address or CIDR',
    ],
  },
  {
    name: 'patterns: not compiling, unanchored, top-level alternation, nested quantifier',
    files: {
      'gateway.yaml': 'validation: { userIdPattern: "^[a-z$", phonePattern: "^(\\\\d+)+$" }\n',
    },
    problems: [
      'gateway.yaml: validation.userIdPattern: does not compile: Invalid regular expression: /^[a-z$/u: Unterminated character class',
      'gateway.yaml: validation.phonePattern: nested quantifiers (a repeated group that repeats inside) can backtrack catastrophically',
    ],
  },
  {
    name: 'patterns: anchors',
    files: { 'gateway.yaml': 'validation: { userIdPattern: "[a-z]+", phonePattern: "^a|b$" }\n' },
    problems: [
      'gateway.yaml: validation.userIdPattern: must be anchored: start with ^ and end with $',
      'gateway.yaml: validation.phonePattern: a top-level | escapes the anchors: wrap the alternatives, as in ^(?:a|b)$',
    ],
  },
  {
    name: 'durations out of range',
    files: {
      'gateway.yaml':
        'rateLimit: { max: 5, timeWindow: "31 days" }\nauth: { failureLimit: { timeWindow: "0 seconds" } }\n',
    },
    problems: [
      'gateway.yaml: auth.failureLimit.timeWindow: must be between 1 millisecond and 30 days (got 0 ms)',
      'gateway.yaml: rateLimit.timeWindow: must be between 1 millisecond and 30 days (got 2678400000 ms)',
    ],
  },
  {
    name: 'origins that never match a browser Origin',
    files: {
      'gateway.yaml':
        'cors: { origins: ["https://crm.example.com/", "crm.example.com", "*", "http://a.example:8080"] }\n',
    },
    problems: [
      'gateway.yaml: cors.origins[0]: "https://crm.example.com/" is not an origin scheme://host[:port] (did you mean "https://crm.example.com"?)',
      'gateway.yaml: cors.origins[1]: "crm.example.com" is not an origin scheme://host[:port]',
    ],
  },
  {
    name: 'upstream url',
    files: { 'gateway.yaml': 'upstream: { url: "ftp://user:secret@host/x?y=1" }\n' },
    problems: [
      'gateway.yaml: upstream.url: must be an http: or https: URL',
      'gateway.yaml: upstream.url: must not contain credentials (tokens belong in environment variables)',
      'gateway.yaml: upstream.url: must not have a query or fragment',
    ],
  },
  {
    name: 'upstream url that does not parse',
    files: { 'gateway.yaml': 'upstream: { url: "not a url" }\n' },
    problems: ['gateway.yaml: upstream.url: "not a url" is not a URL'],
  },
  {
    name: 'caFile that cannot be read',
    files: { 'gateway.yaml': 'upstream: { caFile: missing-ca.pem }\n' },
    problems: ['gateway.yaml: upstream.caFile: cannot read "missing-ca.pem" (ENOENT)'],
  },
  {
    name: 'consumer names become metric labels',
    files: {
      'consumers/CRM.yaml': '{}\n',
      'consumers/unknown.yaml': '{}\n',
      'consumers/a.b.yaml': '{}\n',
    },
    problems: [
      'consumers/CRM.yaml: (file): consumer name "CRM" (the file stem) must match ^[a-z0-9][a-z0-9_-]{0,63}$ and not be "unknown"; it becomes a metric label',
      'consumers/a.b.yaml: (file): consumer name "a.b" (the file stem) must match ^[a-z0-9][a-z0-9_-]{0,63}$ and not be "unknown"; it becomes a metric label',
      'consumers/unknown.yaml: (file): consumer name "unknown" (the file stem) must match ^[a-z0-9][a-z0-9_-]{0,63}$ and not be "unknown"; it becomes a metric label',
    ],
  },
  {
    name: 'keys without upstream credentials',
    files: { 'consumers/a.yaml': `keys: [${KEY}]\n` },
    problems: [
      'consumers/a.yaml: keys: a consumer with gateway keys needs upstream credentials (upstream.username, upstream.tokenEnv or tokenFile)',
    ],
  },
]

const fileCases: Case[] = [
  {
    name: 'missing gateway file',
    files: { 'gateway.yaml': NO_FILE },
    problems: ['gateway.yaml: (file): missing: the policy needs gateway.yaml (or gateway.json)'],
  },
  {
    name: 'gateway.yaml and gateway.json',
    files: { 'gateway.json': '{}' },
    problems: ['gateway.yaml: (file): gateway.yaml and gateway.json both exist; keep one'],
  },
  {
    name: 'one consumer in two formats',
    files: { 'consumers/crm.yml': '{}', 'consumers/crm.json': '{}' },
    problems: ['consumers/crm.yml: (file): crm.yml and crm.json both exist; keep one'],
  },
  {
    name: 'YAML syntax and duplicate keys',
    files: { 'gateway.yaml': 'cache:\n  ttlSeconds: 1\n  ttlSeconds: 2\n', 'consumers/a.yaml': 'a: [\n' },
    problems: [
      'gateway.yaml: line 3, column 3: Map keys must be unique',
      'consumers/a.yaml: line 2, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ],
  },
  {
    name: 'JSON syntax',
    files: { 'gateway.yaml': NO_FILE, 'gateway.json': '{"cache": }' },
    problems: [`gateway.json: (json): ${jsonError('{"cache": }')}`],
  },
]

function jsonError(text: string): string {
  try {
    JSON.parse(text)
    return ''
  } catch (err) {
    return (err as Error).message
  }
}

for (const [group, cases] of [
  ['schema', schemaCases],
  ['cross-checks', crossCases],
  ['files', fileCases],
] as const) {
  t.test(group, async (t) => {
    for (const c of cases) {
      t.test(c.name, async (t) => {
        t.same(await problemsOf(t, c.files, c.env ?? ENV), c.problems)
      })
    }
  })
}

t.test('every problem of many files is listed, grouped by file', async (t) => {
  const problems = await problemsOf(t, {
    'gateway.yaml': 'cache: { ttlSeconds: x }\nvalidation: { userIdPattern: "[a-z]+" }\n',
    'consumers/a.yaml': 'usernames: [crm]\nallowIPs: [bad]\nextra: 1\n',
    'consumers/b.yaml': 'usernames: [crm]\n',
  })
  t.same(problems, [
    'gateway.yaml: cache.ttlSeconds: must be an integer',
    'gateway.yaml: validation.userIdPattern: must be anchored: start with ^ and end with $',
    'consumers/a.yaml: extra: unknown key (known keys: usernames, keys, upstream, operations, rateLimit, redact, allowIPs, jwt)',
    'consumers/a.yaml: allowIPs[0]: "bad" is not an IPv4/IPv6 address or CIDR',
    'consumers/b.yaml: usernames[0]: username "crm" is already used by consumer "a"',
  ])
})

t.test('an unreadable policy directory is a problem, not a crash', async (t) => {
  const dir = policyDir(t)
  const { loadPolicy } = await import('../../src/policy/load.js')
  const result = await loadPolicy(`${dir}/nope`, {})
  t.same(result, {
    ok: false,
    problems: [`${dir}/nope: (directory): cannot read the policy directory (ENOENT)`],
  })
})

t.test('a file too large is refused unread', async (t) => {
  const problems = await problemsOf(t, { 'consumers/big.yaml': `# ${'x'.repeat(1024 * 1024)}\n` })
  t.same(problems, ['consumers/big.yaml: (file): larger than 1048576 bytes'])
})

t.test('a YAML alias bomb is refused', async (t) => {
  let yaml = 'a: &a [x, x, x, x, x, x, x, x, x, x]\n'
  for (let i = 0; i < 8; i++) {
    const prev = String.fromCharCode(97 + i)
    const next = String.fromCharCode(98 + i)
    yaml += `${next}: &${next} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]\n`
  }
  const problems = await problemsOf(t, { 'gateway.yaml': yaml })
  t.equal(problems.length, 1)
  t.match(problems[0], /^gateway\.yaml: \(yaml\): .*alias/i)
})
