/**
 * The two upstream resources, described once. Routes, request schemas, upstream
 * calls, cache keys and listing filters are all driven by this table, so the
 * customers and mappings APIs share one code path (see shared/STYLE.md).
 */

import { QUERY_COLUMNS } from './shared/ipdr-query.js'

export type ResourceName = 'customers' | 'mappings'

/** Client-facing operations; `read` is the gateway's own single-record read. */
export type Operation = 'list' | 'read' | 'create' | 'replace' | 'update' | 'delete'
export const OPERATIONS: readonly Operation[] = ['list', 'read', 'create', 'replace', 'update', 'delete']

/**
 * Every resource a policy, a metric label or an upstream call can name: the
 * two record resources of the table below and the IPDR Query API (`queries`,
 * SPEC 12), whose routes are jobs rather than records (QUERY_FACTS).
 */
export type ApiResourceName = ResourceName | 'queries'
export const API_RESOURCES: readonly ApiResourceName[] = ['customers', 'mappings', 'queries']

/** Operations of the IPDR Query API: `read` covers both status and result. */
export type QueryOperation = 'list' | 'create' | 'read' | 'cancel'
export const QUERY_OPERATIONS: readonly QueryOperation[] = ['list', 'create', 'read', 'cancel']

/**
 * What a consumer's `operations` may list: the routes' operations, `sync`
 * (POST /sync/customers, SPEC 10), which needs the writes it implies as well,
 * and the Query API's `cancel`.
 */
export type PolicyOperation = Operation | 'sync' | 'cancel'
/** Operations a consumer may be given per resource. */
export function policyOperations(resource: ApiResourceName): readonly PolicyOperation[] {
  if (resource === 'queries') return QUERY_OPERATIONS
  return resource === 'customers' ? [...OPERATIONS, 'sync'] : OPERATIONS
}

/** How a body field is checked (the limits and patterns come from the policy). */
export type FieldKind = 'string' | 'email' | 'phone' | 'ipOrCidr' | 'unixTime' | 'unixTimeOrNull'

export interface FieldFact {
  readonly name: string
  readonly kind: FieldKind
}

/** A query parameter accepted on the listing route. */
export interface FilterFact {
  readonly name: string
  /** `exact`: equals a field; `substring`: case-insensitive substring of `fields`; the rest are special. */
  readonly kind: 'exact' | 'substring' | 'ip' | 'at'
  /** Record fields the filter reads. */
  readonly fields: readonly string[]
}

export interface ResourceFacts {
  readonly name: ResourceName
  /** Upstream and client-facing base path. */
  readonly path: string
  /** The path parameter of PUT, PATCH, DELETE and the gateway's single read. */
  readonly keyParam: 'UserID'
  /** Name of the context field in the upstream body for the v2 dialect. */
  readonly contextField: 'contextname' | 'context'
  /** Every writable field of the record (the upstream adds `id`, and for mappings `ipdr_customer_id`). */
  readonly fields: readonly FieldFact[]
  /** Fields that create must carry. */
  readonly createRequired: readonly string[]
  /** Fields that replace must carry. */
  readonly replaceRequired: readonly string[]
  /**
   * A body field that selects which record of the customer a mapping write
   * touches (a customer may own several mappings); absent for customers.
   */
  readonly selectorField?: string
  readonly filters: readonly FilterFact[]
  /** Fields whose values are times (Unix seconds sent as strings, returned as integers). */
  readonly timeFields: readonly string[]
}

const customers: ResourceFacts = {
  name: 'customers',
  path: '/api/ipdrcustomers',
  keyParam: 'UserID',
  contextField: 'contextname',
  fields: [
    { name: 'UserID', kind: 'string' },
    { name: 'Name', kind: 'string' },
    { name: 'Address', kind: 'string' },
    { name: 'Email', kind: 'email' },
    { name: 'PhoneNumber', kind: 'phone' },
    { name: 'AltPhoneNumber', kind: 'phone' },
  ],
  createRequired: ['UserID', 'Name'],
  replaceRequired: ['UserID', 'Name', 'Address', 'Email', 'PhoneNumber', 'AltPhoneNumber'],
  filters: [
    { name: 'UserID', kind: 'exact', fields: ['UserID'] },
    { name: 'Email', kind: 'exact', fields: ['Email'] },
    { name: 'PhoneNumber', kind: 'exact', fields: ['PhoneNumber'] },
    { name: 'q', kind: 'substring', fields: ['Name', 'Address', 'Email', 'UserID'] },
  ],
  timeFields: [],
}

const mappings: ResourceFacts = {
  name: 'mappings',
  path: '/api/ipdrcustomers_mapping',
  keyParam: 'UserID',
  contextField: 'context',
  fields: [
    { name: 'UserID', kind: 'string' },
    { name: 'ipsubnet', kind: 'ipOrCidr' },
    { name: 'starttime', kind: 'unixTime' },
    { name: 'endtime', kind: 'unixTimeOrNull' },
    { name: 'terminalid', kind: 'string' },
  ],
  createRequired: ['UserID', 'ipsubnet', 'starttime'],
  replaceRequired: ['ipsubnet', 'starttime'],
  selectorField: 'ipsubnet',
  filters: [
    { name: 'ipdr_customer_id', kind: 'exact', fields: ['ipdr_customer_id'] },
    { name: 'ipsubnet', kind: 'exact', fields: ['ipsubnet'] },
    { name: 'ip', kind: 'ip', fields: ['ipsubnet'] },
    { name: 'at', kind: 'at', fields: ['starttime', 'endtime'] },
  ],
  timeFields: ['starttime', 'endtime'],
}

export const RESOURCES: readonly ResourceFacts[] = Object.freeze([customers, mappings])

export const RESOURCE_BY_NAME: Readonly<Record<ResourceName, ResourceFacts>> = Object.freeze({
  customers,
  mappings,
})

/** One route of the IPDR Query API (SPEC 12), client-facing and upstream at the same path. */
export interface QueryRouteFact {
  readonly path: string
  readonly method: 'GET' | 'POST' | 'PUT'
  readonly operation: QueryOperation
  /** Parameters beyond the credentials (query string on GET, else the JSON body). */
  readonly params: readonly string[]
  /** What the route is called in the audit trail (`null`: not audited). */
  readonly audited: 'create' | 'read' | 'cancel' | null
}

/** The third resource: Trisul's IPDR Query API, under one base path. */
export interface QueryFacts {
  readonly name: 'queries'
  readonly path: string
  /** Optional upstream (default `default`); sent on v2 as for customers. */
  readonly contextField: 'contextname'
  readonly routes: readonly QueryRouteFact[]
  /** The result's 13 columns, in Trisul's order (the `headers` parameter selects among them). */
  readonly columns: readonly string[]
}

export const QUERY_FACTS: QueryFacts = Object.freeze({
  name: 'queries',
  path: '/api/ipdr_query',
  contextField: 'contextname',
  routes: [
    { path: '/list', method: 'GET', operation: 'list', params: ['count'], audited: null },
    {
      path: '/new',
      method: 'POST',
      operation: 'create',
      params: ['ip', 'from_time', 'to_time', 'request_id'],
      audited: 'create',
    },
    { path: '/status', method: 'GET', operation: 'read', params: ['query_id', 'request_id'], audited: null },
    {
      path: '/result',
      method: 'GET',
      operation: 'read',
      params: ['query_id', 'request_id', 'headers', 'wait'],
      audited: 'read',
    },
    {
      path: '/cancel',
      method: 'PUT',
      operation: 'cancel',
      params: ['query_id', 'request_id'],
      audited: 'cancel',
    },
  ],
  columns: QUERY_COLUMNS,
} as const satisfies QueryFacts)

/** Body fields that carry upstream credentials (never logged, never echoed). */
export const CREDENTIAL_FIELDS = ['api_token', 'username', 'contextname', 'context'] as const

/** Paging parameters accepted on every listing. */
export const PAGING_PARAMS = ['limit', 'offset'] as const
