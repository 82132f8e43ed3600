/**
 * The one body parser of the API routes: JSON only, and an empty body is "no body" (clients send
 * DELETE with a Content-Type and nothing else). Prototype poisoning is refused. Returns the same
 * parser for bodies read by hand (a GET's legacy body credentials, src/http/admission/; the write
 * path below Fastify, src/http/writes/), with the same rule for a blank body.
 */
import type { FastifyInstance } from 'fastify'

export function registerJsonBody(app: FastifyInstance): (text: string) => unknown {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (isBlank(body as string)) {
      done(null, undefined)
      return
    }
    parseJson(request, body as string, done)
  })
  return (text: string): unknown => {
    if (isBlank(text)) return undefined
    let out: unknown
    let error: Error | null = null
    parseJson({} as never, text, (err, value) => {
      error = err
      out = value
    })
    if (error) throw error
    return out
  }
}

/** Only whitespace: no body (clients send DELETE with a Content-Type and nothing else). */
function isBlank(text: string): boolean {
  return text.trim().length === 0
}
