/**
 * The pure half of every emulator request: the JSON body, the credentials in
 * it, and the fields each operation accepts. Nothing here knows Fastify or
 * SQLite; every refusal is an `EnvelopeError`.
 */
import { timingSafeEqual } from 'node:crypto'
import { type IpRange, parseIpRange } from '../shared/ip-range.js'
import { type EmulatorResource, ENVELOPES } from './envelopes.js'
import { DEFAULT_CONTEXT, type ResolvedEmulatorOptions, type ResolvedUser, tokenDigest } from './options.js'

export type EmulatorOperation = 'list' | 'create' | 'replace' | 'update' | 'delete'

export type Body = Record<string, unknown>

/** Longest `UserID`, as the gateway's default `validation.userIdPattern`. */
export const USER_ID_MAX = 64
/** Longest value of any other string field, as the gateway's default `validation.maxFieldLength`. */
export const FIELD_MAX = 256
/** Times above this are refused: they are not Unix seconds a person means. */
const TIME_MAX = Number.MAX_SAFE_INTEGER

// A UserID travels as a path segment: no whitespace, no `/`, no control characters.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
const USER_ID_PATTERN = /^[^\s/\u0000-\u001f\u007f]+$/

export const CUSTOMER_FIELDS = [
  'UserID',
  'Name',
  'Address',
  'Email',
  'PhoneNumber',
  'AltPhoneNumber',
] as const
export type CustomerField = (typeof CUSTOMER_FIELDS)[number]
export type CustomerFields = Record<CustomerField, string>

export interface MappingInput {
  /** As the client wrote it; stored and returned unchanged. */
  ipsubnet: string
  range: IpRange
  starttime: number
  endtime: number | null
  terminalid: string
}

/** Which mapping of the customer a PUT, PATCH or DELETE means. */
export interface MappingSelector {
  ipsubnet: string
  range: IpRange
}

export interface MappingChanges {
  starttime?: number
  endtime?: number | null
  terminalid?: string
}

/**
 * Reads the request body. No body (or only whitespace) is an empty object,
 * so a request without credentials gets `Invalid API token`; anything that is
 * not a JSON object is `Invalid JSON`.
 */
export function parseJsonBody(text: string | undefined): Body {
  if (text === undefined || text.trim() === '') return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw ENVELOPES.invalidJson()
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw ENVELOPES.invalidJson()
  return value as Body
}

/** The body fields holding credentials for this dialect and resource. */
export function credentialFields(dialect: 'v1' | 'v2', resource: EmulatorResource): readonly string[] {
  if (dialect === 'v1') return ['api_token', 'username']
  return ['api_token', 'username', resource === 'customers' ? 'contextname' : 'context']
}

const UNKNOWN_USER_DIGEST = tokenDigest('')

/** The user whose `username` and `api_token` the body carries; `Invalid API token` otherwise. */
export function checkToken(body: Body, opts: ResolvedEmulatorOptions): ResolvedUser {
  const username = body.username
  const token = body.api_token
  if (typeof username !== 'string' || typeof token !== 'string') throw ENVELOPES.invalidToken()
  const user = opts.users.get(username)
  // Compare digests in constant time, also for an unknown user, so timing tells nothing.
  const same = timingSafeEqual(tokenDigest(token), user?.tokenDigest ?? UNKNOWN_USER_DIGEST)
  if (user === undefined || !same) throw ENVELOPES.invalidToken()
  return user
}

/**
 * Checks the body credentials and returns the context the request works in.
 * Order as Trisul: token, then context name, then the user's right to it.
 */
export function authenticate(body: Body, opts: ResolvedEmulatorOptions, resource: EmulatorResource): string {
  const user = checkToken(body, opts)
  if (opts.dialect === 'v1') return DEFAULT_CONTEXT

  const field = resource === 'customers' ? 'contextname' : 'context'
  const context = body[field]
  if (context === undefined || context === null || context === '') throw ENVELOPES.missingField(field)
  if (typeof context !== 'string' || !opts.contexts.has(context)) throw ENVELOPES.invalidContext(context)
  if (user.contexts !== null && !user.contexts.has(context))
    throw ENVELOPES.contextForbidden(user.name, context)
  return context
}

/** Refuses the first body field that is neither a credential nor in `allowed`. */
export function rejectUnknownFields(
  body: Body,
  credentials: readonly string[],
  allowed: readonly string[],
): void {
  for (const key of Object.keys(body)) {
    if (!credentials.includes(key) && !allowed.includes(key)) throw ENVELOPES.unknownField(key)
  }
}

function has(body: Body, field: string): boolean {
  return Object.hasOwn(body, field) && body[field] !== undefined
}

function stringField(body: Body, field: string, max: number): string {
  const value = body[field]
  if (typeof value !== 'string') throw ENVELOPES.notAString(field)
  if (value.length > max) throw ENVELOPES.tooLong(field, max)
  return value
}

function requiredString(body: Body, field: string, max: number): string {
  if (!has(body, field) || body[field] === null || body[field] === '') throw ENVELOPES.missingField(field)
  return stringField(body, field, max)
}

function userIdField(body: Body, required: boolean): string | undefined {
  if (!required && !has(body, 'UserID')) return undefined
  const value = requiredString(body, 'UserID', USER_ID_MAX)
  if (!USER_ID_PATTERN.test(value)) throw ENVELOPES.invalidUserId(value)
  return value
}

/** A body UserID on a keyed operation must name the same customer as the path. */
function sameUserIdAsPath(body: Body, pathUserId: string): void {
  if (!has(body, 'UserID')) return
  if (body.UserID !== pathUserId) throw ENVELOPES.userIdMismatch(pathUserId)
}

function customerField(body: Body, field: CustomerField): string {
  if (field === 'UserID') return userIdField(body, true) as string
  if (field === 'Name') return requiredString(body, field, FIELD_MAX)
  return has(body, field) ? stringField(body, field, FIELD_MAX) : ''
}

/**
 * POST: `UserID` and `Name` required, the rest default to `""`.
 * PUT: the same, except that `UserID` defaults to the path's (a different one renames the customer).
 */
export function customerInput(body: Body, pathUserId?: string): CustomerFields {
  const input = {} as CustomerFields
  for (const field of CUSTOMER_FIELDS) {
    input[field] =
      field === 'UserID' && pathUserId !== undefined && !has(body, field)
        ? pathUserId
        : customerField(body, field)
  }
  return input
}

/** PATCH: any non-empty subset of the six fields. */
export function customerChanges(body: Body): Partial<CustomerFields> {
  const changes: Partial<CustomerFields> = {}
  for (const field of CUSTOMER_FIELDS) {
    if (has(body, field)) changes[field] = customerField(body, field)
  }
  if (Object.keys(changes).length === 0) throw ENVELOPES.nothingToUpdate()
  return changes
}

/** DELETE on customers carries no field but an optional UserID equal to the path's. */
export function customerDeleteInput(body: Body, pathUserId: string): void {
  sameUserIdAsPath(body, pathUserId)
}

/** Unix seconds, as an integer or a string of digits. */
export function parseUnixTime(value: unknown, field: string): number {
  let n: number
  if (typeof value === 'number') n = value
  else if (typeof value === 'string' && /^\d{1,16}$/.test(value)) n = Number(value)
  else throw ENVELOPES.invalidTime(field, value)
  if (!Number.isSafeInteger(n) || n < 0 || n > TIME_MAX) throw ENVELOPES.invalidTime(field, value)
  return n
}

/** `endtime`: absent, `null` or `""` mean open-ended. */
function endTime(body: Body): number | null {
  const value = body.endtime
  if (value === undefined || value === null || value === '') return null
  return parseUnixTime(value, 'endtime')
}

/**
 * `parseIpRange`, stricter where its input is ambiguous: no IPv6 zone
 * (`fe80::1%eth0`, meaningless off the host), and no leading zeros in an IPv4
 * octet or a prefix (ipaddr.js reads `010.0.0.1` as octal, 8.0.0.1; a person
 * means 10.0.0.1).
 */
export function parseSubnet(text: string): IpRange | null {
  if (text.includes('%')) return null
  const [address = '', prefix] = text.split('/')
  if (prefix !== undefined && /^0\d/.test(prefix)) return null
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address)
  if (quad?.slice(1).some((octet) => octet.length > 1 && octet.startsWith('0'))) return null
  return parseIpRange(text)
}

function selector(body: Body): MappingSelector {
  const ipsubnet = requiredString(body, 'ipsubnet', FIELD_MAX)
  const range = parseSubnet(ipsubnet)
  if (range === null) throw ENVELOPES.invalidSubnet(ipsubnet)
  return { ipsubnet, range }
}

function terminalId(body: Body): string {
  return has(body, 'terminalid') ? stringField(body, 'terminalid', FIELD_MAX) : ''
}

/** Refuses a span that ends at or before it starts. */
export function checkSpan(starttime: number, endtime: number | null): void {
  if (endtime !== null && endtime <= starttime) throw ENVELOPES.endBeforeStart()
}

/** POST mapping: `UserID`, `ipsubnet`, `starttime` required; `endtime`, `terminalid` optional. */
export function mappingCreateInput(body: Body): { userId: string; mapping: MappingInput } {
  const userId = userIdField(body, true) as string
  const { ipsubnet, range } = selector(body)
  if (!has(body, 'starttime') || body.starttime === null || body.starttime === '') {
    throw ENVELOPES.missingField('starttime')
  }
  const starttime = parseUnixTime(body.starttime, 'starttime')
  const endtime = endTime(body)
  const terminalid = terminalId(body)
  checkSpan(starttime, endtime)
  return { userId, mapping: { ipsubnet, range, starttime, endtime, terminalid } }
}

/** PUT mapping: `ipsubnet` selects; `starttime` required; absent `endtime` is null, absent `terminalid` `""`. */
export function mappingReplaceInput(
  body: Body,
  pathUserId: string,
): { selector: MappingSelector; changes: Required<MappingChanges> } {
  sameUserIdAsPath(body, pathUserId)
  const sel = selector(body)
  if (!has(body, 'starttime') || body.starttime === null || body.starttime === '') {
    throw ENVELOPES.missingField('starttime')
  }
  const starttime = parseUnixTime(body.starttime, 'starttime')
  const endtime = endTime(body)
  const terminalid = terminalId(body)
  checkSpan(starttime, endtime)
  return { selector: sel, changes: { starttime, endtime, terminalid } }
}

/** PATCH mapping: `ipsubnet` selects; any non-empty subset of `starttime`, `endtime`, `terminalid`. */
export function mappingUpdateInput(
  body: Body,
  pathUserId: string,
): { selector: MappingSelector; changes: MappingChanges } {
  sameUserIdAsPath(body, pathUserId)
  const sel = selector(body)
  const changes: MappingChanges = {}
  if (has(body, 'starttime')) changes.starttime = parseUnixTime(body.starttime, 'starttime')
  if (has(body, 'endtime')) changes.endtime = endTime(body)
  if (has(body, 'terminalid')) changes.terminalid = terminalId(body)
  if (Object.keys(changes).length === 0) throw ENVELOPES.nothingToUpdate()
  return { selector: sel, changes }
}

/** DELETE mapping: `ipsubnet` selects. */
export function mappingDeleteInput(body: Body, pathUserId: string): MappingSelector {
  sameUserIdAsPath(body, pathUserId)
  return selector(body)
}

/** The non-credential fields each operation accepts; anything else is `Unknown field`. */
export const ALLOWED_FIELDS: Readonly<
  Record<EmulatorResource, Readonly<Record<EmulatorOperation, readonly string[]>>>
> = {
  customers: {
    list: [],
    create: CUSTOMER_FIELDS,
    replace: CUSTOMER_FIELDS,
    update: CUSTOMER_FIELDS,
    delete: ['UserID'],
  },
  mappings: {
    list: [],
    create: ['UserID', 'ipsubnet', 'starttime', 'endtime', 'terminalid'],
    replace: ['UserID', 'ipsubnet', 'starttime', 'endtime', 'terminalid'],
    update: ['UserID', 'ipsubnet', 'starttime', 'endtime', 'terminalid'],
    delete: ['UserID', 'ipsubnet'],
  },
}
