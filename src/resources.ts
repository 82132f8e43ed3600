/**
 * The two upstream resources, described once. Routes, request schemas, upstream
 * calls, cache keys and listing filters are all driven by this table, so the
 * customers and mappings APIs share one code path (see shared/STYLE.md).
 */

export type ResourceName = 'customers' | 'mappings'

/** Client-facing operations; `read` is the gateway's own single-record read. */
export type Operation = 'list' | 'read' | 'create' | 'replace' | 'update' | 'delete'
export const OPERATIONS: readonly Operation[] = ['list', 'read', 'create', 'replace', 'update', 'delete']

/**
 * What a consumer's `operations` may list: the routes' operations, and `sync`
 * (POST /sync/customers, SPEC 10), which needs the writes it implies as well.
 */
export type PolicyOperation = Operation | 'sync'
/** Operations a consumer may be given per resource. */
export function policyOperations(resource: ResourceName): readonly PolicyOperation[] {
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

/** Body fields that carry upstream credentials (never logged, never echoed). */
export const CREDENTIAL_FIELDS = ['api_token', 'username', 'contextname', 'context'] as const

/** Paging parameters accepted on every listing. */
export const PAGING_PARAMS = ['limit', 'offset'] as const
