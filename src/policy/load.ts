/**
 * Reads a policy directory (`DIR/gateway.{yaml,yml,json}` and
 * `DIR/consumers/NAME.{yaml,yml,json}`, nothing else), validates every file
 * against the schema, fills defaults, runs the cross-checks and returns either
 * a deeply frozen {@link Policy} or EVERY problem as `file: path: message`.
 * Never throws on bad input: an unreadable directory is a problem too.
 */
import { createHash, createPublicKey } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { access, readdir, readFile, stat } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import type { ValidateFunction } from 'ajv'
import Ajv2020 from 'ajv/dist/2020.js'
import { parseDocument } from 'yaml'
import type { ApiResourceName, PolicyOperation } from '../resources.js'
import { applyDefaults } from './apply-defaults.js'
import {
  type ConsumerDoc,
  checkConsumerName,
  crossCheckConsumer,
  crossCheckConsumers,
  crossCheckGateway,
  type GatewayDoc,
  ProblemList,
} from './cross-check.js'
import { parseDuration } from './duration.js'
import { POLICY_SCHEMA_ID, policyJsonSchema } from './schema.js'
import { formatSchemaErrors } from './schema-errors.js'
import type { ConsumerPolicy, GatewayPolicy, Policy, RateLimitPolicy, StoreSecrets } from './types.js'

export type LoadResult = { ok: true; policy: Policy } | { ok: false; problems: string[] }

type Env = Readonly<Record<string, string | undefined>>

/** Policy files are small; anything larger is a mistake (or an attack on the parser). */
export const MAX_POLICY_FILE_BYTES = 1024 * 1024
const EXTENSIONS = ['.yaml', '.yml', '.json'] as const

interface Validators {
  readonly gateway: ValidateFunction
  readonly consumer: ValidateFunction
  readonly gatewaySchema: Record<string, unknown>
  readonly consumerSchema: Record<string, unknown>
}

let validators: Validators | null = null

function getValidators(): Validators {
  if (validators) return validators
  const schema = policyJsonSchema()
  const ajv = new Ajv2020.default({ allErrors: true, strict: true, allowUnionTypes: true, verbose: true })
  ajv.addSchema(schema)
  const defs = schema.$defs as Record<string, Record<string, unknown>>
  validators = {
    gateway: ajv.getSchema(`${POLICY_SCHEMA_ID}#/$defs/gateway`) as ValidateFunction,
    consumer: ajv.getSchema(`${POLICY_SCHEMA_ID}#/$defs/consumer`) as ValidateFunction,
    gatewaySchema: defs.gateway!,
    consumerSchema: defs.consumer!,
  }
  return validators
}

interface SourceFile {
  /** The path shown in problems: DIR joined with the relative name. */
  readonly file: string
  /** Relative to DIR, `/`-separated: hashed into the version. */
  readonly rel: string
  readonly text: string
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code
  return typeof code === 'string' ? code : 'error'
}

async function isFile(path: string): Promise<boolean> {
  try {
    // stat follows symlinks: Kubernetes ConfigMap volumes are symlinks.
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

async function readSource(dir: string, rel: string, problems: ProblemList): Promise<SourceFile | null> {
  const file = join(dir, rel)
  try {
    const info = await stat(file)
    if (info.size > MAX_POLICY_FILE_BYTES) {
      problems.add(file, '(file)', `larger than ${MAX_POLICY_FILE_BYTES} bytes`)
      return null
    }
    return { file, rel, text: await readFile(file, 'utf8') }
  } catch (err) {
    problems.add(file, '(file)', `cannot read (${errorCode(err)})`)
    return null
  }
}

/** Parses YAML or JSON; an empty YAML file is an empty mapping. */
function parseSource(source: SourceFile, problems: ProblemList): { ok: true; data: unknown } | { ok: false } {
  if (source.rel.endsWith('.json')) {
    try {
      return { ok: true, data: JSON.parse(source.text) }
    } catch (err) {
      problems.add(source.file, '(json)', (err as Error).message)
      return { ok: false }
    }
  }
  const doc = parseDocument(source.text, { uniqueKeys: true, prettyErrors: true })
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const pos = err.linePos?.[0]
      const where = pos ? `line ${pos.line}, column ${pos.col}` : '(yaml)'
      // Pretty messages append the position and a source excerpt: keep the first sentence.
      const message = (err.message.split('\n')[0] ?? 'invalid YAML').replace(
        / at line \d+, column \d+:?$/,
        '',
      )
      problems.add(source.file, where, message)
    }
    return { ok: false }
  }
  try {
    const data = doc.toJS({ maxAliasCount: 100 }) as unknown
    return { ok: true, data: data ?? {} }
  } catch (err) {
    problems.add(source.file, '(yaml)', (err as Error).message)
    return { ok: false }
  }
}

/** Finds `base.{yaml,yml,json}` among `names`; more than one is a problem. */
function pickOne(dir: string, base: string, names: readonly string[], problems: ProblemList): string | null {
  const found = EXTENSIONS.map((ext) => `${base}${ext}`).filter((n) => names.includes(n))
  if (found.length > 1) {
    problems.add(join(dir, found[0]!), '(file)', `${found.join(' and ')} both exist; keep one`)
    return null
  }
  return found[0] ?? null
}

function validate(
  validator: ValidateFunction,
  schema: Record<string, unknown>,
  source: SourceFile,
  data: unknown,
  problems: ProblemList,
): unknown {
  if (!validator(data)) {
    for (const p of formatSchemaErrors(validator.errors)) problems.addSchema(source.file, p.path, p.message)
  }
  return applyDefaults(schema, data)
}

function rateLimit(raw: { max: number; timeWindow: string | number }): RateLimitPolicy {
  const parsed = parseDuration(raw.timeWindow)
  return { max: raw.max, timeWindow: raw.timeWindow, timeWindowMs: parsed.ok ? parsed.ms : 60_000 }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    if (!(value instanceof Map)) for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}

// Shapes after schema validation and defaults (checked, so the casts hold).
interface RawGateway {
  upstream: Omit<GatewayPolicy['upstream'], 'urlFromPolicy'>
  auth: {
    bodyCredentials: boolean
    failureLimit: { max: number; timeWindow: string | number }
    knownGoodSeconds: number
    jwt: {
      issuers: {
        issuer: string
        jwksUrl?: string
        discoveryUrl?: string
        publicKeyFile?: string
        audiences: string[]
        algorithms: string[]
      }[]
    }
  }
  cache: GatewayPolicy['cache']
  rateLimit: { max: number; timeWindow: string | number }
  validation: GatewayPolicy['validation']
  limits: GatewayPolicy['limits']
  cors: { origins: string[] }
  metrics: GatewayPolicy['metrics']
  docs: GatewayPolicy['docs']
  trustProxy: string[]
  store: GatewayPolicy['store']
  audit: GatewayPolicy['audit']
  mappings: GatewayPolicy['mappings']
  telemetry: GatewayPolicy['telemetry']
  sync: Omit<GatewayPolicy['sync'], 'maxBodyBytes'> & { maxBodyBytes?: number; maxInputBytes?: number }
  server: GatewayPolicy['server']
}

/** `sync.maxBodyBytes` when neither it nor its old name `maxInputBytes` is given: 64 MiB. */
export const DEFAULT_SYNC_MAX_BODY_BYTES = 67_108_864

interface RawConsumer {
  usernames: string[]
  keys: string[]
  upstream: {
    username?: string
    tokenEnv?: string | null
    tokenFile?: string | null
    context: string | null
    contexts: string[] | null
  } | null
  operations: Partial<Record<ApiResourceName, PolicyOperation[]>>
  rateLimit: { max: number; timeWindow: string | number } | null
  redact: string[]
  allowIPs: string[] | null
  jwt: { issuer: string; subjects?: string[]; clientIds?: string[]; scopes: string[] } | null
}

function buildGateway(dir: string, raw: RawGateway, urlFromPolicy: boolean): GatewayPolicy {
  const caFile = raw.upstream.caFile
  const inDir = (path: string) => (isAbsolute(path) ? path : resolve(dir, path))
  const tls = raw.server.tls
  const { maxInputBytes, maxBodyBytes, ...sync } = raw.sync
  return {
    ...raw,
    // The old name is read when the SPEC's is not given.
    sync: { ...sync, maxBodyBytes: maxBodyBytes ?? maxInputBytes ?? DEFAULT_SYNC_MAX_BODY_BYTES },
    server: {
      ...raw.server,
      tls:
        tls === null
          ? null
          : {
              certFile: inDir(tls.certFile),
              keyFile: inDir(tls.keyFile),
              clientCaFile: tls.clientCaFile === null ? null : inDir(tls.clientCaFile),
              ciphers: tls.ciphers ?? null,
            },
    },
    audit: {
      ...raw.audit,
      signingKeyFile: raw.audit.signingKeyFile === null ? null : inDir(raw.audit.signingKeyFile),
      syslog:
        raw.audit.syslog === null
          ? null
          : {
              ...raw.audit.syslog,
              caFile: raw.audit.syslog.caFile === null ? null : inDir(raw.audit.syslog.caFile),
            },
    },
    upstream: {
      ...raw.upstream,
      urlFromPolicy,
      caFile: caFile === null ? null : isAbsolute(caFile) ? caFile : resolve(dir, caFile),
    },
    auth: {
      bodyCredentials: raw.auth.bodyCredentials,
      failureLimit: rateLimit(raw.auth.failureLimit),
      knownGoodSeconds: raw.auth.knownGoodSeconds,
      jwt: {
        issuers: raw.auth.jwt.issuers.map((i) => ({
          issuer: i.issuer,
          jwksUrl: i.jwksUrl ?? null,
          discoveryUrl: i.discoveryUrl ?? null,
          publicKeyFile: i.publicKeyFile === undefined ? null : inDir(i.publicKeyFile),
          audiences: i.audiences,
          algorithms: i.algorithms,
        })),
      },
    },
    rateLimit: rateLimit(raw.rateLimit),
  }
}

function buildConsumer(dir: string, name: string, raw: RawConsumer): ConsumerPolicy {
  return {
    name,
    usernames: raw.usernames,
    keys: raw.keys,
    upstream:
      raw.upstream === null
        ? null
        : {
            username: raw.upstream.username ?? null,
            tokenEnv: raw.upstream.tokenEnv ?? null,
            tokenFile:
              raw.upstream.tokenFile === undefined || raw.upstream.tokenFile === null
                ? null
                : isAbsolute(raw.upstream.tokenFile)
                  ? raw.upstream.tokenFile
                  : resolve(dir, raw.upstream.tokenFile),
            context: raw.upstream.context,
            contexts: raw.upstream.contexts,
          },
    operations: raw.operations,
    rateLimit: raw.rateLimit === null ? null : rateLimit(raw.rateLimit),
    redact: raw.redact,
    allowIPs: raw.allowIPs,
    jwt:
      raw.jwt === null
        ? null
        : {
            issuer: raw.jwt.issuer,
            subjects: raw.jwt.subjects ?? null,
            clientIds: raw.jwt.clientIds ?? null,
            scopes: raw.jwt.scopes,
          },
  }
}

/**
 * Loads and checks the policy in `dir`. `env` supplies the variables named by
 * `tokenEnv` keys (pass `process.env` from the CLI, a literal in tests).
 */
export async function loadPolicy(dir: string, env: Env): Promise<LoadResult> {
  const problems = new ProblemList()
  const v = getValidators()

  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    return {
      ok: false,
      problems: [`${dir}: (directory): cannot read the policy directory (${errorCode(err)})`],
    }
  }

  const sources: SourceFile[] = []

  // gateway.*
  let gatewayDoc: GatewayDoc | null = null
  let urlFromPolicy = false
  for (const ext of EXTENSIONS) problems.noteFile(join(dir, `gateway${ext}`))
  const gatewayName = pickOne(dir, 'gateway', names, problems)
  if (gatewayName === null && !EXTENSIONS.some((ext) => names.includes(`gateway${ext}`))) {
    problems.add(
      join(dir, 'gateway.yaml'),
      '(file)',
      'missing: the policy needs gateway.yaml (or gateway.json)',
    )
  } else if (gatewayName !== null) {
    const source = await readSource(dir, gatewayName, problems)
    if (source) {
      sources.push(source)
      const parsed = parseSource(source, problems)
      if (parsed.ok) {
        const data = validate(v.gateway, v.gatewaySchema, source, parsed.data, problems)
        const upstream = (parsed.data as { upstream?: unknown } | null)?.upstream
        urlFromPolicy = typeof upstream === 'object' && upstream !== null && Object.hasOwn(upstream, 'url')
        gatewayDoc = { file: source.file, data }
      }
    }
  }

  // consumers/*
  const consumersDir = join(dir, 'consumers')
  let consumerNames: string[] = []
  try {
    consumerNames = (await stat(consumersDir)).isDirectory() ? await readdir(consumersDir) : []
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') {
      problems.add(consumersDir, '(directory)', `cannot read (${errorCode(err)})`)
    }
  }
  const stems = new Set<string>()
  for (const n of consumerNames) {
    const ext = EXTENSIONS.find((e) => n.endsWith(e))
    // Dotfiles are editors' swap files and Kubernetes' `..data` links.
    if (ext && !n.startsWith('.') && n.length > ext.length) stems.add(n.slice(0, -ext.length))
  }
  const consumerDocs: ConsumerDoc[] = []
  for (const stem of [...stems].sort()) {
    for (const ext of EXTENSIONS) problems.noteFile(join(consumersDir, `${stem}${ext}`))
    const fileName = pickOne(consumersDir, stem, consumerNames, problems)
    if (fileName === null || !(await isFile(join(consumersDir, fileName)))) continue
    checkConsumerName(problems, join(consumersDir, fileName), stem)
    const source = await readSource(dir, `consumers/${fileName}`, problems)
    if (!source) continue
    sources.push(source)
    const parsed = parseSource(source, problems)
    if (!parsed.ok) continue
    const data = validate(v.consumer, v.consumerSchema, source, parsed.data, problems)
    consumerDocs.push({ file: source.file, name: stem, data })
  }

  // Cross-checks, then the file-system ones.
  if (gatewayDoc) crossCheckGateway(problems, gatewayDoc, env)
  for (const doc of consumerDocs) crossCheckConsumer(problems, doc, env)
  crossCheckConsumers(problems, consumerDocs)
  const data = gatewayDoc?.data as
    | {
        upstream?: { caFile?: unknown }
        server?: { tls?: Record<string, unknown> | null }
        store?: { redis?: Record<string, unknown> | null }
        audit?: { signingKeyFile?: unknown; syslog?: unknown }
      }
    | undefined
  const readable: [string, unknown][] = [
    ['upstream.caFile', data?.upstream?.caFile],
    ['server.tls.certFile', data?.server?.tls?.certFile],
    ['server.tls.keyFile', data?.server?.tls?.keyFile],
    ['server.tls.clientCaFile', data?.server?.tls?.clientCaFile],
    ['store.redis.passwordFile', data?.store?.redis?.passwordFile],
    ['audit.signingKeyFile', data?.audit?.signingKeyFile],
    ['audit.syslog.caFile', (data?.audit?.syslog as { caFile?: unknown } | null | undefined)?.caFile],
    ['store.redis.sentinelPasswordFile', data?.store?.redis?.sentinelPasswordFile],
    ['metrics.tokenFile', (data as { metrics?: { tokenFile?: unknown } } | undefined)?.metrics?.tokenFile],
  ]
  for (const [key, file] of readable) {
    if (!gatewayDoc || typeof file !== 'string' || file === '') continue
    try {
      await access(isAbsolute(file) ? file : resolve(dir, file), fsConstants.R_OK)
    } catch (err) {
      problems.add(gatewayDoc.file, key, `cannot read ${JSON.stringify(file)} (${errorCode(err)})`)
    }
  }

  // SPEC 16: the JWT issuers' key files, the consumers' token files, and issuers the consumers name.
  const issuers = (gatewayDoc?.data as { auth?: { jwt?: { issuers?: unknown } } } | undefined)?.auth?.jwt
    ?.issuers
  const issuerNames = new Set<string>()
  if (gatewayDoc && Array.isArray(issuers)) {
    for (const [i, raw] of issuers.entries()) {
      const { issuer, publicKeyFile } = (raw ?? {}) as { issuer?: unknown; publicKeyFile?: unknown }
      if (typeof issuer === 'string') issuerNames.add(issuer)
      if (typeof publicKeyFile !== 'string') continue
      const path = isAbsolute(publicKeyFile) ? publicKeyFile : resolve(dir, publicKeyFile)
      try {
        createPublicKey(await readFile(path, 'utf8'))
      } catch (err) {
        const code = errorCode(err)
        const why = /^E[A-Z]+$/.test(code) ? code : 'not a PEM public key'
        problems.add(
          gatewayDoc.file,
          ['auth', 'jwt', 'issuers', i, 'publicKeyFile'],
          `cannot read ${JSON.stringify(publicKeyFile)} (${why})`,
        )
      }
    }
  }
  for (const doc of consumerDocs) {
    const c = doc.data as { upstream?: { tokenFile?: unknown } | null; jwt?: { issuer?: unknown } | null }
    const tokenFile = c?.upstream?.tokenFile
    if (typeof tokenFile === 'string') {
      try {
        await access(isAbsolute(tokenFile) ? tokenFile : resolve(dir, tokenFile), fsConstants.R_OK)
      } catch (err) {
        problems.add(
          doc.file,
          'upstream.tokenFile',
          `cannot read ${JSON.stringify(tokenFile)} (${errorCode(err)})`,
        )
      }
    }
    const issuer = c?.jwt?.issuer
    if (typeof issuer === 'string' && !issuerNames.has(issuer))
      problems.add(
        doc.file,
        'jwt.issuer',
        `${JSON.stringify(issuer)} is not one of gateway.yaml's auth.jwt.issuers`,
      )
  }

  if (problems.list.length > 0 || !gatewayDoc) return { ok: false, problems: [...problems.list] }

  const gateway = buildGateway(dir, gatewayDoc.data as RawGateway, urlFromPolicy)
  const consumers = consumerDocs.map((d) => buildConsumer(dir, d.name, d.data as RawConsumer))
  const tokens = new Map<string, string>()
  for (const c of consumers) {
    const token = await secretOf(dir, env, c.upstream?.tokenEnv ?? null, c.upstream?.tokenFile ?? null)
    if (token !== null) tokens.set(c.name, token)
  }
  const jwtPublicKeys = new Map<string, string>()
  for (const issuer of gateway.auth.jwt.issuers) {
    if (issuer.publicKeyFile !== null)
      jwtPublicKeys.set(issuer.issuer, await readFile(issuer.publicKeyFile, 'utf8'))
  }
  const metricsToken = await secretOf(dir, env, gateway.metrics.tokenEnv, gateway.metrics.tokenFile)
  const redis = gateway.store.redis
  const storeSecrets: StoreSecrets = {
    password: await secretOf(dir, env, redis?.passwordEnv ?? null, redis?.passwordFile ?? null),
    sentinelPassword: await secretOf(
      dir,
      env,
      redis?.sentinelPasswordEnv ?? null,
      redis?.sentinelPasswordFile ?? null,
    ),
  }

  const hash = createHash('sha256')
  for (const s of [...sources].sort((a, b) => (a.rel < b.rel ? -1 : 1))) {
    hash.update(s.rel).update('\u0000').update(s.text).update('\u0000')
  }
  const policy: Policy = {
    gateway,
    consumers,
    tokens,
    jwtPublicKeys,
    metricsToken,
    storeSecrets,
    version: hash.digest('hex').slice(0, 12),
  }
  return { ok: true, policy: deepFreeze(policy) }
}

/**
 * A secret named by its `…Env` or `…File` key (SPEC 16): the variable's value, or the file's text with
 * one trailing newline trimmed (systemd credentials and Kubernetes secrets end with one). Both were
 * checked readable before; null when neither is named.
 */
async function secretOf(
  dir: string,
  env: Env,
  envName: string | null,
  file: string | null,
): Promise<string | null> {
  if (envName !== null) return env[envName] ?? null
  if (file === null) return null
  const text = await readFile(isAbsolute(file) ? file : resolve(dir, file), 'utf8')
  return text.replace(/\r?\n$/, '')
}
