/**
 * The emulator's Fastify app: routes from the operations table, the raw body
 * read on every method (Trisul wants credentials in the body of GET too, which
 * Fastify does not parse), and one error handler that turns everything into
 * a Trisul envelope. It never listens; server.ts does.
 */
import { Readable } from 'node:stream'
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify'
import {
  type EmulatorApi,
  type EmulatorResource,
  ENVELOPES,
  EnvelopeError,
  envelopeHttpStatus,
} from './envelopes.js'
import { RESOURCE_PATHS, ROUTES, runOperation } from './operations.js'
import {
  DEFAULT_CONTEXT,
  type EmulatorOptions,
  type ResolvedEmulatorOptions,
  resolveEmulatorOptions,
} from './options.js'
import { QUERY_PATH, QUERY_ROUTES, QueryBook } from './queries.js'
import { parseJsonBody } from './request-body.js'
import { EmulatorStore } from './store.js'

/** What Fastify sends with a serialized object; a streamed listing says the same. */
const JSON_TYPE = 'application/json; charset=utf-8'

/** Longer than any UserID we accept, so an over-long one reaches the handler and gets an envelope, not a router 404. */
const MAX_PARAM_LENGTH = 1024

function resourceOf(url: string): EmulatorApi {
  if (url.startsWith(QUERY_PATH)) return 'queries'
  return url.startsWith(RESOURCE_PATHS.mappings) ? 'mappings' : 'customers'
}

/**
 * Reads the body of a GET or HEAD request from the socket, bounded by
 * `limit` like Fastify's own parser does for the other methods.
 */
export function readRawBody(request: FastifyRequest, limit: number): Promise<string> {
  const raw = request.raw
  const declared = Number(request.headers['content-length'])
  if (declared > limit) return Promise.reject(ENVELOPES.bodyTooLarge(limit))
  if (raw.readableEnded) return Promise.resolve('')
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const cleanup = () => {
      raw.off('data', onData)
      raw.off('end', onEnd)
      raw.off('error', onError)
      raw.off('close', onError)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) {
        cleanup()
        reject(ENVELOPES.bodyTooLarge(limit))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(Buffer.concat(chunks).toString('utf8'))
    }
    // An aborted upload emits 'error'; 'close' without 'end' is the same thing said differently.
    const onError = () => {
      cleanup()
      reject(ENVELOPES.badRequest())
    }
    raw.on('data', onData)
    raw.on('end', onEnd)
    raw.on('error', onError)
    raw.on('close', onError)
  })
}

function sendEnvelope(reply: FastifyReply, resource: EmulatorApi, err: EnvelopeError): FastifyReply {
  return reply.code(envelopeHttpStatus(resource, err)).send(err.toEnvelope())
}

/** Maps Fastify's own client errors (body too large, bad media type, bad URL) to envelopes. */
function envelopeFor(err: FastifyError, bodyLimit: number): EnvelopeError | null {
  if (err instanceof EnvelopeError) return err
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return ENVELOPES.bodyTooLarge(bodyLimit)
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return ENVELOPES.invalidContentType()
    default:
      break
  }
  const status = err.statusCode ?? 500
  return status >= 400 && status < 500 ? ENVELOPES.badRequest() : null
}

function registerRoutes(app: FastifyInstance, store: EmulatorStore, opts: ResolvedEmulatorOptions): void {
  for (const resource of Object.keys(RESOURCE_PATHS) as EmulatorResource[]) {
    const base = RESOURCE_PATHS[resource]
    for (const route of ROUTES) {
      app.route<{ Params: { UserID?: string } }>({
        method: route.method,
        url: route.keyed ? `${base}/:UserID` : base,
        handler: async (request, reply) => {
          const body = typeof request.body === 'string' ? request.body : undefined
          const result = runOperation(store, opts, resource, route.op, body, request.params.UserID ?? '')
          // A listing is JSON text already, streamed; a record goes out through Fastify's serializer.
          if (result instanceof Readable) return reply.code(200).type(JSON_TYPE).send(result)
          return reply.code(200).send(result)
        },
      })
    }
  }
}

/**
 * Builds the emulator (routes, hooks, the database opened and migrated, the
 * seed applied). It never listens; the database is closed when the app closes.
 * Rejects with an `Error` naming the problem on invalid options or an
 * unusable database file.
 */
export async function buildEmulator(options: EmulatorOptions): Promise<FastifyInstance> {
  const opts = resolveEmulatorOptions(options)
  const store = new EmulatorStore(opts.db)
  let app: FastifyInstance
  try {
    app = Fastify({
      logger: opts.logger,
      bodyLimit: opts.bodyLimit,
      routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
      // Errors before routing (an undecodable URL) get an envelope too.
      frameworkErrors: (_err, request, reply) => {
        sendEnvelope(reply, resourceOf(request.url), ENVELOPES.badRequest())
      },
    })
    app.addHook('onClose', async () => store.close())

    // Trisul reads JSON whatever the Content-Type (curl -d sends a form type): take every body as text.
    app.removeAllContentTypeParsers()
    app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body))

    app.addHook('preValidation', async (request, reply) => {
      if (request.method !== 'GET' && request.method !== 'HEAD') return
      try {
        request.body = await readRawBody(request, opts.bodyLimit)
      } catch (err) {
        // The client may still be sending: do not keep reading the rest of the body on this connection.
        reply.header('connection', 'close')
        throw err
      }
    })

    app.setErrorHandler((err: FastifyError, request, reply) => {
      const envelope = envelopeFor(err, opts.bodyLimit)
      if (envelope !== null) return sendEnvelope(reply, resourceOf(request.url), envelope)
      // Unexpected (a full disk, a bug): log what it was, answer without details.
      request.log.error({ code: err.code, message: err.message }, 'emulator: internal error')
      return reply.code(500).send(ENVELOPES.internal().toEnvelope())
    })

    app.setNotFoundHandler((_request, reply) => reply.code(404).send(ENVELOPES.routeNotFound().toEnvelope()))

    registerRoutes(app, store, opts)
    const queries = new QueryBook(store, opts)
    for (const route of QUERY_ROUTES) {
      app.route({
        method: route.method,
        url: `${QUERY_PATH}${route.path}`,
        handler: async (request, reply) => {
          const body = parseJsonBody(typeof request.body === 'string' ? request.body : undefined)
          return reply.code(200).send(queries.run(route.op, body))
        },
      })
    }

    if (opts.users.size === 0) {
      app.log.warn(
        'emulator: no users configured; every request gets "Invalid API token" (add --user NAME:TOKEN)',
      )
    }
    if (opts.seed > 0) {
      const started = process.hrtime.bigint()
      const added = store.seed(DEFAULT_CONTEXT, opts.seed)
      if (opts.seedMappings) store.seedMappings(DEFAULT_CONTEXT, opts.seed)
      const ms = Number(process.hrtime.bigint() - started) / 1e6
      app.log.info({ seed: opts.seed, added, ms: Math.round(ms) }, 'emulator: seeded customers')
    }
    await app.ready()
  } catch (err) {
    store.close()
    throw err
  }
  return app
}
