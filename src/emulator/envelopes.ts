/**
 * Every error envelope the emulator answers with, defined once (after
 * fastify's lib/errors.js). The documented ones copy Trisul's wording to the
 * letter (shared/SPEC.md sections 2 and 7); the undocumented ones follow the
 * same `Thing : value` style and are listed in docs/emulator.md.
 */

export type EmulatorResource = 'customers' | 'mappings'
/** Which API answered: the envelope's HTTP status depends on it. */
export type EmulatorApi = EmulatorResource | 'queries'

/** Trisul writes `ERROR` only for a bad token; every other envelope says `Error`. */
export type EnvelopeStatus = 'ERROR' | 'Error'

export interface Envelope {
  status: EnvelopeStatus
  message: string
  /** The Query API adds the query's status and window to some envelopes. */
  [field: string]: unknown
}

/** Values echoed in messages are cut here so a huge input never comes back whole. */
const ECHO_MAX = 64

/** Makes a client-supplied value safe to echo: bounded and free of control characters. */
export function echo(value: unknown): string {
  let text: string
  if (typeof value === 'string') text = value
  else if (value === undefined) text = ''
  else text = String(JSON.stringify(value))
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping control characters is the point
  text = text.replace(/[\u0000-\u001f\u007f]/g, '?')
  return text.length > ECHO_MAX ? `${text.slice(0, ECHO_MAX)}...` : text
}

/**
 * An answer that is not a record: thrown by the pure cores, turned into an
 * envelope by the Fastify error handler. `contextForbidden` marks the one
 * mapping-API envelope Trisul sends with HTTP 200 instead of 422.
 */
// The emulator's own (a separate program): Trisul's envelopes, not the gateway's errors.
export class EnvelopeError extends Error {
  readonly status: EnvelopeStatus
  readonly contextForbidden: boolean
  /** The Query API's HTTP status for this envelope (Trisul sends real statuses there); null elsewhere. */
  readonly queryHttpStatus: number | null
  /** Fields the Query API adds to some envelopes (the query's status and window). */
  readonly extra: Readonly<Record<string, unknown>>

  constructor(
    message: string,
    status: EnvelopeStatus = 'Error',
    contextForbidden = false,
    query: { httpStatus?: number; extra?: Record<string, unknown> } = {},
  ) {
    super(message)
    this.name = 'EnvelopeError'
    this.status = status
    this.contextForbidden = contextForbidden
    this.queryHttpStatus = query.httpStatus ?? null
    this.extra = query.extra ?? {}
  }

  toEnvelope(): Envelope {
    return { status: this.status, message: this.message, ...this.extra }
  }
}

/**
 * The HTTP status of an envelope: always 200 on the customers API; on the
 * mapping API 422, except "not allowed to access the context" (200), as
 * Trisul documents it.
 */
export function envelopeHttpStatus(resource: EmulatorApi, err: EnvelopeError): number {
  if (resource === 'queries') return err.queryHttpStatus ?? 200
  if (resource === 'customers' || err.contextForbidden) return 200
  return 422
}

/** The envelope constructors; one per situation, documented in docs/emulator.md. */
export const ENVELOPES = {
  // Documented by Trisul.
  invalidToken: () => new EnvelopeError('Invalid API token', 'ERROR'),
  invalidContext: (name: unknown) => new EnvelopeError(`Invalid Context name - ${echo(name)}`),
  contextForbidden: (user: string, context: string) =>
    new EnvelopeError(
      `The user (${echo(user)}) is not allowed to access the context ${echo(context)}`,
      'Error',
      true,
    ),
  customerNotFound: () => new EnvelopeError('IPDR Customer not found'),
  duplicateMapping: (userId: string) => new EnvelopeError(`Duplicate Mapping for UserID : ${echo(userId)}`),
  // Fixed by shared/SPEC.md section 7.
  duplicateUserId: (userId: string) => new EnvelopeError(`Duplicate UserID : ${echo(userId)}`),
  missingField: (field: string) => new EnvelopeError(`Missing field : ${field}`),
  invalidJson: () => new EnvelopeError('Invalid JSON'),
  // Chosen by the emulator (docs/emulator.md, "Undocumented envelopes").
  unknownField: (field: string) => new EnvelopeError(`Unknown field : ${echo(field)}`),
  notAString: (field: string) => new EnvelopeError(`Invalid field : ${field} must be a string`),
  tooLong: (field: string, max: number) =>
    new EnvelopeError(`Invalid field : ${field} is longer than ${max} characters`),
  invalidUserId: (value: unknown) => new EnvelopeError(`Invalid UserID : ${echo(value)}`),
  invalidSubnet: (value: unknown) => new EnvelopeError(`Invalid ipsubnet : ${echo(value)}`),
  invalidTime: (field: string, value: unknown) =>
    new EnvelopeError(`Invalid ${field} : ${echo(value)} (expected Unix seconds)`),
  endBeforeStart: () => new EnvelopeError('Invalid endtime : endtime must be greater than starttime'),
  userIdMismatch: (pathUserId: string) =>
    new EnvelopeError(`Invalid UserID : the body UserID differs from the path UserID ${echo(pathUserId)}`),
  nothingToUpdate: () => new EnvelopeError('Nothing to update'),
  mappingNotFound: (subnet: string) => new EnvelopeError(`Mapping not found for ipsubnet : ${echo(subnet)}`),
  bodyTooLarge: (limit: number) => new EnvelopeError(`Request body too large (limit ${limit} bytes)`),
  invalidContentType: () => new EnvelopeError('Invalid Content-Type'),
  badRequest: () => new EnvelopeError('Bad request'),
  routeNotFound: () => new EnvelopeError('Route not found'),
  // The Query API's own (docs/ipdr/api-ipdr-query.md), with the HTTP status the emulator gives each.
  queryContextNotFound: (name: unknown) =>
    new EnvelopeError(`Context ${echo(name)} not found`, 'ERROR', false, { httpStatus: 200 }),
  // (sic): Trisul's wording, typos included.
  queryContextForbidden: (context: string) =>
    new EnvelopeError(`You and not allowed to acess the context ${echo(context)}`, 'Error', true, {
      httpStatus: 200,
    }),
  queryIdRequired: () => new EnvelopeError('Query ID is required', 'Error', false, { httpStatus: 400 }),
  queryNotFound: () => new EnvelopeError('Query ID not found', 'Error', false, { httpStatus: 404 }),
  // request_id (Trisul docs, 2026-05): a client's own id for a query; a second create with it is refused.
  queryDuplicateRequestId: (id: unknown) =>
    new EnvelopeError(`Duplicate request_id : ${echo(id)}`, 'Error', false, { httpStatus: 409 }),
  queryInvalidRequestId: () => new EnvelopeError('Invalid request_id', 'Error', false, { httpStatus: 400 }),
  queryNotYours: () =>
    new EnvelopeError('You are not authorized to access this query', 'Error', false, { httpStatus: 403 }),
  queryNotCompleted: (extra: Record<string, unknown>) =>
    new EnvelopeError('Query is not completed', 'Error', false, { httpStatus: 409, extra }),
  queryNotCancelable: (extra: Record<string, unknown>) =>
    new EnvelopeError('Query is not in NEW or INPROGRESS state', 'Error', false, { httpStatus: 409, extra }),
  queryIpRequired: () => new EnvelopeError('IP address is required', 'Error', false, { httpStatus: 400 }),
  queryInvalidIp: () => new EnvelopeError('Invalid IP address', 'Error', false, { httpStatus: 400 }),
  queryFromRequired: () => new EnvelopeError('From time is required', 'Error', false, { httpStatus: 400 }),
  queryInvalidFrom: () =>
    new EnvelopeError('Invalid from time. Please use the format DD-MM-YYYY HH:MM:SS', 'Error', false, {
      httpStatus: 400,
    }),
  queryToRequired: () => new EnvelopeError('To time is required', 'Error', false, { httpStatus: 400 }),
  // (sic): two spaces around "to", as Trisul writes it.
  queryInvalidTo: () =>
    new EnvelopeError('Invalid  to  time. Please use the format DD-MM-YYYY HH:MM:SS', 'Error', false, {
      httpStatus: 400,
    }),
  queryHeadersNotArray: () =>
    new EnvelopeError('Headers should be an array', 'Error', false, { httpStatus: 400 }),
  queryInvalidHeaders: (names: readonly string[]) =>
    new EnvelopeError(`Invalid headers: ${names.map(echo).join(', ')}`, 'Error', false, { httpStatus: 400 }),
  queryInvalidCount: (value: unknown) =>
    new EnvelopeError(`Invalid count : ${echo(value)}`, 'Error', false, { httpStatus: 400 }),
  internal: () => new EnvelopeError('Internal server error'),
} as const
