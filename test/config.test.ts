import t from 'tap'
import { ConfigError, DEFAULT_PORT, parseServeConfig, SHIPPED_POLICIES_DIR } from '../src/config.js'

t.test('defaults', async (t) => {
  const c = parseServeConfig([], {})
  t.same(c, {
    host: '127.0.0.1',
    port: DEFAULT_PORT,
    upstreamUrl: null,
    policiesDir: SHIPPED_POLICIES_DIR,
    logLevel: 'info',
    metricsPort: null,
    shutdownTimeoutMs: 10_000,
    redisUrl: null,
    auditFile: null,
    tls: null,
    otlpEndpoint: null,
  })
  t.ok(Object.isFrozen(c))
})

t.test('OTEL_EXPORTER_OTLP_ENDPOINT names the collector (SPEC 18); a bad one stops the start', async (t) => {
  const c = parseServeConfig([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' })
  t.equal(c.otlpEndpoint, 'http://127.0.0.1:4318')
  t.throws(() => parseServeConfig([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }), ConfigError)
})

t.test('--audit-file overrides AUDIT_FILE', async (t) => {
  t.equal(parseServeConfig([], { AUDIT_FILE: 'data/a.jsonl' }).auditFile, 'data/a.jsonl')
  t.equal(parseServeConfig(['--audit-file', 'b.jsonl'], { AUDIT_FILE: 'data/a.jsonl' }).auditFile, 'b.jsonl')
})

t.test('flags override the environment, which overrides defaults', async (t) => {
  const env = {
    PORT: '9000',
    HOST: '0.0.0.0',
    UPSTREAM_URL: 'http://trisul:3000',
    POLICIES_DIR: '/etc/p',
    LOG_LEVEL: 'warn',
    METRICS_PORT: '9100',
  }
  const fromEnv = parseServeConfig([], env)
  t.match(fromEnv, {
    port: 9000,
    host: '0.0.0.0',
    upstreamUrl: 'http://trisul:3000',
    policiesDir: '/etc/p',
    logLevel: 'warn',
    metricsPort: 9100,
  })
  const fromFlags = parseServeConfig(
    [
      '--port',
      '9001',
      '--host',
      '::1',
      '--upstream',
      'https://t.example:3000',
      '--policies',
      'p',
      '--log-level',
      'debug',
      '--metrics-port',
      '9101',
      '--shutdown-timeout',
      '500',
    ],
    env,
  )
  t.match(fromFlags, {
    port: 9001,
    host: '::1',
    upstreamUrl: 'https://t.example:3000',
    policiesDir: 'p',
    logLevel: 'debug',
    metricsPort: 9101,
    shutdownTimeoutMs: 500,
  })
  t.equal(parseServeConfig([], { PORT: '' }).port, DEFAULT_PORT, 'an empty variable is unset')
  t.equal(parseServeConfig([], {}).redisUrl, null, 'no shared store by default')
  t.equal(parseServeConfig([], { REDIS_URL: 'redis://r:6379' }).redisUrl, 'redis://r:6379')
  t.equal(
    parseServeConfig(['--redis', 'rediss://:pw@r:6380/2'], { REDIS_URL: 'redis://r:6379' }).redisUrl,
    'rediss://:pw@r:6380/2',
    'the flag wins',
  )
})

t.test('every error names its flag or variable', async (t) => {
  const rows: [string[], Record<string, string>, RegExp][] = [
    [['--port', 'x'], {}, /^--port: /],
    [[], { PORT: '70000' }, /^PORT: /],
    [['--upstream', 'ftp://x'], {}, /^--upstream: must be http/],
    [[], { UPSTREAM_URL: 'not a url' }, /^UPSTREAM_URL: not a URL/],
    [['--upstream', 'http://user:pw@x'], {}, /must not carry credentials/],
    [['--log-level', 'loud'], {}, /^--log-level: must be one of/],
    [['--metrics-port', '0'], {}, /^--metrics-port: /],
    [['--shutdown-timeout', 'soon'], {}, /^--shutdown-timeout: /],
    [['--bogus'], {}, /bogus/],
    [['--redis', 'http://cache:6379'], {}, /^--redis: must be a redis:, rediss: or redis\+sentinel: URL$/],
    [[], { REDIS_URL: 'redis://:secret@' }, /^REDIS_URL: /],
    [['--redis', 'redis://cache:6379/x'], {}, /database number/],
    [['positional'], {}, /positional/],
  ]
  for (const [argv, env, re] of rows) {
    t.throws(() => parseServeConfig(argv, env), ConfigError)
    try {
      parseServeConfig(argv, env)
    } catch (err) {
      t.match((err as Error).message, re, argv.join(' ') || JSON.stringify(env))
    }
  }
})

t.test('--tls-cert and --tls-key go together', async (t) => {
  t.same(parseServeConfig(['--tls-cert', 'c.pem', '--tls-key', 'k.pem'], {}).tls, {
    certFile: 'c.pem',
    keyFile: 'k.pem',
  })
  t.same(parseServeConfig([], { TLS_CERT_FILE: 'c.pem', TLS_KEY_FILE: 'k.pem' }).tls, {
    certFile: 'c.pem',
    keyFile: 'k.pem',
  })
  t.throws(
    () => parseServeConfig(['--tls-cert', 'c.pem'], {}),
    /--tls-cert: --tls-cert and --tls-key go together/,
  )
  t.throws(() => parseServeConfig([], { TLS_KEY_FILE: 'k.pem' }), /TLS_KEY_FILE/)
})
