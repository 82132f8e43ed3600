/**
 * The upstream request body: the client's validated fields plus the credentials,
 * built as an object and serialized with JSON.stringify by the client (never by
 * string concatenation), so no username or token can add or change a field.
 * Credentials are set last: a client field of the same name cannot override them
 * (they are also stripped earlier, in authenticate).
 */
import type { Dialect } from '../policy/types.js'
import type { ResourceFacts } from '../resources.js'

export interface BodyCredentials {
  readonly username: string
  readonly token: string
  readonly context: string
}

export function upstreamBody(
  facts: Pick<ResourceFacts, 'contextField'>,
  dialect: Dialect,
  auth: BodyCredentials,
  fields: Readonly<Record<string, unknown>> = {},
): Record<string, unknown> {
  const body: Record<string, unknown> = { ...fields }
  body.api_token = auth.token
  body.username = auth.username
  if (dialect === 'v2') body[facts.contextField] = auth.context
  return body
}
