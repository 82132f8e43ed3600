/**
 * The ten operations of the emulated API (five verbs on two resources) as one
 * table over the pure request checks and the store. The Fastify layer only
 * reads the body and the path, then calls `runOperation`.
 */
import type { Readable } from 'node:stream'
import type { EmulatorResource } from './envelopes.js'
import { listingStream } from './listing-stream.js'
import type { ResolvedEmulatorOptions } from './options.js'
import {
  ALLOWED_FIELDS,
  authenticate,
  type Body,
  credentialFields,
  customerChanges,
  customerDeleteInput,
  customerInput,
  type EmulatorOperation,
  mappingCreateInput,
  mappingDeleteInput,
  mappingReplaceInput,
  mappingUpdateInput,
  parseJsonBody,
  rejectUnknownFields,
} from './request-body.js'
import type { CustomerRecord, EmulatorStore, MappingRecord } from './store.js'

/** A record, or a listing streamed as JSON text (src/emulator/listing-stream.ts). */
type Result = CustomerRecord | MappingRecord | Readable
type Operation = (store: EmulatorStore, context: string, body: Body, userId: string) => Result

/** Method and path suffix of each operation; `{UserID}` operations take the customer from the path. */
export const ROUTES: readonly {
  op: EmulatorOperation
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  keyed: boolean
}[] = [
  { op: 'list', method: 'GET', keyed: false },
  { op: 'create', method: 'POST', keyed: false },
  { op: 'replace', method: 'PUT', keyed: true },
  { op: 'update', method: 'PATCH', keyed: true },
  { op: 'delete', method: 'DELETE', keyed: true },
]

/** Base path of each resource, as Trisul serves it. */
export const RESOURCE_PATHS: Readonly<Record<EmulatorResource, string>> = {
  customers: '/api/ipdrcustomers',
  mappings: '/api/ipdrcustomers_mapping',
}

const OPERATIONS: Readonly<Record<EmulatorResource, Readonly<Record<EmulatorOperation, Operation>>>> = {
  customers: {
    list: (store, context) => listingStream((after, limit) => store.customersAfter(context, after, limit)),
    create: (store, context, body) => store.createCustomer(context, customerInput(body)),
    replace: (store, context, body, userId) =>
      store.updateCustomer(context, userId, customerInput(body, userId)),
    update: (store, context, body, userId) => store.updateCustomer(context, userId, customerChanges(body)),
    delete: (store, context, body, userId) => {
      customerDeleteInput(body, userId)
      return store.deleteCustomer(context, userId)
    },
  },
  mappings: {
    list: (store, context) => listingStream((after, limit) => store.mappingsAfter(context, after, limit)),
    create: (store, context, body) => {
      const { userId, mapping } = mappingCreateInput(body)
      return store.createMapping(context, userId, mapping)
    },
    replace: (store, context, body, userId) => {
      const { selector, changes } = mappingReplaceInput(body, userId)
      return store.updateMapping(context, userId, selector, changes)
    },
    update: (store, context, body, userId) => {
      const { selector, changes } = mappingUpdateInput(body, userId)
      return store.updateMapping(context, userId, selector, changes)
    },
    delete: (store, context, body, userId) =>
      store.deleteMapping(context, userId, mappingDeleteInput(body, userId)),
  },
}

/**
 * Runs one request: body, credentials, context, allowed fields, then the
 * operation. Throws `EnvelopeError` for every refusal.
 */
export function runOperation(
  store: EmulatorStore,
  opts: ResolvedEmulatorOptions,
  resource: EmulatorResource,
  op: EmulatorOperation,
  rawBody: string | undefined,
  pathUserId = '',
): Result {
  const body = parseJsonBody(rawBody)
  const context = authenticate(body, opts, resource)
  rejectUnknownFields(body, credentialFields(opts.dialect, resource), ALLOWED_FIELDS[resource][op])
  return OPERATIONS[resource][op](store, context, body, pathUserId)
}
