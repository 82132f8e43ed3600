/**
 * Log redaction (shared/SPEC.md 6): tokens, gateway keys, Authorization and body
 * credentials never reach a log line. Fastify's request serializer logs no
 * headers or bodies; these paths are the second line of defence for anything
 * logged by hand.
 */
export const LOG_REDACT_PATHS: string[] = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-trisul-username"]',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'api_token',
  'token',
  'key',
  'body.api_token',
  'body.username',
  '*.api_token',
  '*.token',
  '*.authorization',
]
