/**
 * The emulator's options: the programmatic shape, its one strict validation
 * (every message names the option), and the command-line flags of
 * shared/SPEC.md section 7 parsed with node:util parseArgs.
 */
import { createHash } from 'node:crypto'
import { parseArgs } from 'node:util'
import { isTimeZone } from '../shared/trisul-time.js'

/** One API user of the emulated Trisul server. */
export interface EmulatorUser {
  /** Matched against the body field `username`. */
  name: string
  /** Matched against the body field `api_token`. */
  token: string
  /** Contexts this user may access (v2); `null` means every known context. Ignored in v1. */
  contexts: string[] | null
}

export interface EmulatorOptions {
  /** SQLite file path (its directory is created), or `':memory:'`. */
  db: string
  /** `v1`: credentials `api_token` + `username`; `v2`: also `contextname` / `context`. */
  dialect: 'v1' | 'v2'
  /** API users; with none, every request gets `Invalid API token`. */
  users: EmulatorUser[]
  /**
   * Known contexts (v2). Default: `default` plus every context a user names.
   * Ignored in v1, where the one implicit context is `default`.
   */
  contexts?: string[]
  /** Fill this many deterministic customers into the `default` context on open. Default 0. */
  seed?: number
  /** Give each seeded customer one mapping (10.0.0.1, 10.0.0.2, …, from 2024-01-01). Default false. */
  seedMappings?: boolean
  /** Passed to Fastify as its `logger` option. Default `false`. */
  logger?: boolean | object
  /** Largest accepted request body in bytes, on every method including GET. Default 1 MiB. */
  bodyLimit?: number
  /**
   * Seconds an IPDR query takes from NEW through INPROGRESS to COMPLETED (the Query API,
   * shared/SPEC.md 12). Default 2; 0 completes every query at once.
   */
  querySeconds?: number
  /** IANA zone of the Query API's `DD-MM-YYYY HH:MM:SS` times. Default `Asia/Kolkata`. */
  timeZone?: string
}

export const DEFAULT_PORT = 3000
export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_DB = './data/emulator.sqlite'
export const DEFAULT_DIALECT = 'v2'
export const DEFAULT_CONTEXT = 'default'
export const DEFAULT_BODY_LIMIT = 1024 * 1024
export const DEFAULT_QUERY_SECONDS = 2
export const DEFAULT_TIME_ZONE = 'Asia/Kolkata'
const MAX_QUERY_SECONDS = 3600
/** Upper bound of `--seed`, so a typo cannot fill the disk. */
export const MAX_SEED = 10_000_000
const MAX_BODY_LIMIT = 64 * 1024 * 1024

const CONTEXT_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const USER_NAME_PATTERN = /^[^:\u0000-\u001f\u007f]{1,128}$/
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const TOKEN_PATTERN = /^[^:\u0000-\u001f\u007f]{1,512}$/

/** A user as the request path needs it: the token kept only as a digest for a constant-time compare. */
export interface ResolvedUser {
  readonly name: string
  readonly tokenDigest: Buffer
  /** `null`: every known context. */
  readonly contexts: ReadonlySet<string> | null
}

/** The validated, frozen options used by the emulator. */
export interface ResolvedEmulatorOptions {
  readonly db: string
  readonly dialect: 'v1' | 'v2'
  readonly users: ReadonlyMap<string, ResolvedUser>
  readonly contexts: ReadonlySet<string>
  readonly seed: number
  readonly seedMappings: boolean
  readonly logger: boolean | object
  readonly bodyLimit: number
  readonly querySeconds: number
  readonly timeZone: string
}

/** SHA-256 of a token; equal-length digests allow `timingSafeEqual`. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

function fail(message: string): never {
  throw new Error(`emulator options: ${message}`)
}

function checkContextName(name: unknown, where: string): string {
  if (typeof name !== 'string' || !CONTEXT_PATTERN.test(name)) {
    fail(`${where}: context name ${JSON.stringify(name)} must match ${CONTEXT_PATTERN}`)
  }
  return name
}

/**
 * Validates options once and freezes the result. Throws an `Error` whose
 * message names the offending option.
 */
export function resolveEmulatorOptions(opts: EmulatorOptions): ResolvedEmulatorOptions {
  if (opts === null || typeof opts !== 'object') fail('options must be an object')
  if (typeof opts.db !== 'string' || opts.db.length === 0) fail('db: must be a file path or ":memory:"')
  if (opts.dialect !== 'v1' && opts.dialect !== 'v2') fail('dialect: must be "v1" or "v2"')
  if (!Array.isArray(opts.users)) fail('users: must be an array')

  const users = new Map<string, ResolvedUser>()
  const named = new Set<string>()
  opts.users.forEach((u, i) => {
    const where = `users[${i}]`
    if (u === null || typeof u !== 'object') fail(`${where}: must be an object`)
    if (typeof u.name !== 'string' || !USER_NAME_PATTERN.test(u.name)) {
      fail(`${where}.name: 1-128 characters, no ":" or control characters`)
    }
    if (typeof u.token !== 'string' || !TOKEN_PATTERN.test(u.token)) {
      fail(`${where}.token: 1-512 characters, no ":" or control characters`)
    }
    if (users.has(u.name)) fail(`${where}.name: user "${u.name}" is given twice`)
    let contexts: Set<string> | null = null
    if (u.contexts !== null && u.contexts !== undefined) {
      if (!Array.isArray(u.contexts) || u.contexts.length === 0) {
        fail(`${where}.contexts: a non-empty array of context names, or null for every context`)
      }
      contexts = new Set(u.contexts.map((c, j) => checkContextName(c, `${where}.contexts[${j}]`)))
      for (const c of contexts) named.add(c)
    }
    users.set(u.name, Object.freeze({ name: u.name, tokenDigest: tokenDigest(u.token), contexts }))
  })

  let contexts: Set<string>
  if (opts.dialect === 'v1') {
    // v1 has no contexts: everything lives in `default`, so a database can later be served as v2.
    contexts = new Set([DEFAULT_CONTEXT])
  } else if (opts.contexts !== undefined) {
    if (!Array.isArray(opts.contexts) || opts.contexts.length === 0) {
      fail('contexts: a non-empty array of context names')
    }
    contexts = new Set(opts.contexts.map((c, i) => checkContextName(c, `contexts[${i}]`)))
    for (const c of named) {
      if (!contexts.has(c)) fail(`users: context "${c}" is named by a user but not listed in contexts`)
    }
  } else {
    contexts = new Set([DEFAULT_CONTEXT, ...named])
  }

  const seed = opts.seed ?? 0
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > MAX_SEED) fail(`seed: an integer 0-${MAX_SEED}`)
  if (seed > 0 && !contexts.has(DEFAULT_CONTEXT)) {
    fail(`seed: seeded customers go into the context "${DEFAULT_CONTEXT}", which contexts does not list`)
  }
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT
  if (!Number.isSafeInteger(bodyLimit) || bodyLimit < 64 || bodyLimit > MAX_BODY_LIMIT) {
    fail(`bodyLimit: an integer 64-${MAX_BODY_LIMIT}`)
  }
  const querySeconds = opts.querySeconds ?? DEFAULT_QUERY_SECONDS
  if (typeof querySeconds !== 'number' || !(querySeconds >= 0 && querySeconds <= MAX_QUERY_SECONDS)) {
    fail(`querySeconds: a number of seconds 0-${MAX_QUERY_SECONDS}`)
  }
  const timeZone = opts.timeZone ?? DEFAULT_TIME_ZONE
  if (typeof timeZone !== 'string' || !isTimeZone(timeZone)) {
    fail(`timeZone: ${JSON.stringify(timeZone)} is not an IANA time zone this platform knows`)
  }
  const logger = opts.logger ?? false
  if (typeof logger !== 'boolean' && (logger === null || typeof logger !== 'object')) {
    fail('logger: a boolean or a Fastify logger options object')
  }

  return Object.freeze({
    db: opts.db,
    dialect: opts.dialect,
    users,
    contexts,
    seed,
    seedMappings: opts.seedMappings === true,
    logger,
    bodyLimit,
    querySeconds,
    timeZone,
  })
}

export const EMULATOR_HELP = `Usage: ipdr-gateway emulator [options]

Serves Trisul's IPDR customers API (/api/ipdrcustomers), IP-mapping API
(/api/ipdrcustomers_mapping) and IPDR Query API (/api/ipdr_query) backed by
SQLite, for demos, tests and CRM developers without a Trisul server. Never
needed in production.

Options:
  --port N                  TCP port (default ${DEFAULT_PORT}; 0 picks a free port)
  --host ADDR               address to listen on (default ${DEFAULT_HOST})
  --db PATH                 SQLite file, its directory is created (default ${DEFAULT_DB});
                            ":memory:" keeps nothing
  --dialect v1|v2           v1: body credentials api_token + username;
                            v2: also contextname (customers) / context (mappings)
                            (default ${DEFAULT_DIALECT})
  --user NAME:TOKEN[:C1,C2] an API user, repeatable; without a context list
                            the user may access every context
  --contexts A,B            known contexts (default: "default" plus every
                            context a --user names)
  --seed N                  fill N deterministic customers into the "default"
                            context; only what is missing is added
  --query-seconds S         seconds an IPDR query takes to complete
                            (default ${DEFAULT_QUERY_SECONDS}; 0: at once)
  --time-zone ZONE          zone of the Query API's DD-MM-YYYY HH:MM:SS times
                            (default ${DEFAULT_TIME_ZONE})
  --help                    this text

Example:
  ipdr-gateway emulator --port 3000 --dialect v2 --user demo:demotoken
  curl -X GET http://127.0.0.1:3000/api/ipdrcustomers -H 'Content-Type: application/json' \\
    -d '{"api_token":"demotoken","username":"demo","contextname":"default"}'
`

function parseUserFlag(text: string): EmulatorUser {
  const parts = text.split(':')
  if (parts.length < 2 || parts.length > 3) {
    throw new Error(`--user ${JSON.stringify(text)}: expected NAME:TOKEN or NAME:TOKEN:CTX1,CTX2`)
  }
  const [name = '', token = '', list] = parts
  if (name === '') throw new Error(`--user ${JSON.stringify(text)}: the user name is empty`)
  if (token === '') throw new Error(`--user ${JSON.stringify(text)}: the token is empty`)
  if (list === undefined) return { name, token, contexts: null }
  const contexts = list.split(',')
  if (contexts.some((c) => c === '')) {
    throw new Error(
      `--user ${JSON.stringify(text)}: empty context name in the list (omit ":..." for every context)`,
    )
  }
  return { name, token, contexts }
}

function parseIntegerFlag(flag: string, text: string, min: number, max: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new Error(`${flag} ${JSON.stringify(text)}: expected an integer ${min}-${max}`)
  }
  return Number(text)
}

/**
 * Parses the flags of `ipdr-gateway emulator` (the arguments after the
 * subcommand). Throws an `Error` with a message naming the flag on any
 * problem, including unknown flags and positional arguments. `--help` is not
 * handled here: print `EMULATOR_HELP` before calling.
 */
export function parseEmulatorArgs(argv: string[]): EmulatorOptions & { port: number; host: string } {
  // parseArgs throws a TypeError naming the flag (`Unknown option '--x'`), which is message enough.
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      db: { type: 'string' },
      dialect: { type: 'string' },
      user: { type: 'string', multiple: true },
      contexts: { type: 'string' },
      seed: { type: 'string' },
      'query-seconds': { type: 'string' },
      'time-zone': { type: 'string' },
    },
  })
  const str = (k: 'port' | 'host' | 'db' | 'dialect' | 'contexts' | 'seed'): string | undefined => values[k]

  const portText = str('port')
  const port = portText === undefined ? DEFAULT_PORT : parseIntegerFlag('--port', portText, 0, 65535)
  const host = str('host') ?? DEFAULT_HOST
  if (host === '') throw new Error('--host: must not be empty')
  const db = str('db') ?? DEFAULT_DB
  if (db === '') throw new Error('--db: must not be empty')
  const dialect = str('dialect') ?? DEFAULT_DIALECT
  if (dialect !== 'v1' && dialect !== 'v2') {
    throw new Error(`--dialect ${JSON.stringify(dialect)}: expected v1 or v2`)
  }
  const users = (values.user ?? []).map(parseUserFlag)
  const contextsText = str('contexts')
  let contexts: string[] | undefined
  if (contextsText !== undefined) {
    contexts = contextsText.split(',')
    if (contexts.some((c) => c === ''))
      throw new Error(`--contexts ${JSON.stringify(contextsText)}: empty name`)
  }
  const seedText = str('seed')
  const seed = seedText === undefined ? 0 : parseIntegerFlag('--seed', seedText, 0, MAX_SEED)

  const opts: EmulatorOptions & { port: number; host: string } = { port, host, db, dialect, users, seed }
  if (contexts !== undefined) opts.contexts = contexts
  const querySecondsText = values['query-seconds']
  if (querySecondsText !== undefined) {
    opts.querySeconds = parseIntegerFlag('--query-seconds', querySecondsText, 0, MAX_QUERY_SECONDS)
  }
  const timeZone = values['time-zone']
  if (timeZone !== undefined) opts.timeZone = timeZone
  // Checks the combination (user contexts vs --contexts, seed vs default) now, so a bad command line fails here.
  try {
    resolveEmulatorOptions(opts)
  } catch (err) {
    throw new Error((err as Error).message.replace(/^emulator options: /, ''))
  }
  return opts
}
