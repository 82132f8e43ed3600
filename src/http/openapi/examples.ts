/**
 * Examples for the OpenAPI document, taken from Trisul's IPDR API pages
 * (docs.trisul.org, "REST API" and "IPDR Customer IP Mapping API") so an
 * integrator sees the records they already know. No credentials: the
 * gateway takes them from headers.
 */
import type { ResourceName } from '../../resources.js'
import type { WriteOperation } from '../../validation/request-schema.js'

type Json = Record<string, unknown>

/** The listing of Trisul's "Output Example". */
const CUSTOMERS: readonly Json[] = [
  {
    id: 5,
    Name: 'Trisul',
    Address: 'Chennai',
    Email: 'demo@gmail.com',
    PhoneNumber: '1234567890',
    AltPhoneNumber: '9999999999',
    UserID: 'B68t19',
  },
  {
    id: 6,
    Name: 'Trisul Network Analytics',
    Address: 'India',
    Email: 'test@gmail.com',
    PhoneNumber: '3333333333',
    AltPhoneNumber: '5555555555',
    UserID: 'Xlr8d3',
  },
]

/** A single address and a subnet, the two forms the mapping page shows; the gateway adds the customer's UserID (SPEC 17). */
const MAPPINGS: readonly Json[] = [
  {
    id: 1,
    ipdr_customer_id: 4,
    ipsubnet: '172.27.19.224',
    starttime: 0,
    endtime: 1735669799,
    terminalid: 'T1001',
    UserID: 'Ch4n07',
  },
  {
    id: 2,
    ipdr_customer_id: 4,
    ipsubnet: '192.168.1.0/24',
    starttime: 1704067200,
    endtime: null,
    terminalid: '',
    UserID: 'Ch4n07',
  },
]

/** One record, and the listing it comes from. */
export const RECORD_EXAMPLES: Readonly<Record<ResourceName, { record: Json; listing: readonly Json[] }>> = {
  customers: { record: CUSTOMERS[0] as Json, listing: CUSTOMERS },
  mappings: { record: MAPPINGS[0] as Json, listing: MAPPINGS },
}

/** Request bodies, per resource and write (credentials excluded). */
export const BODY_EXAMPLES: Readonly<Record<ResourceName, Readonly<Record<WriteOperation, Json | null>>>> = {
  customers: {
    create: {
      UserID: 'B68t19',
      Name: 'Trisul',
      Address: 'Chennai',
      Email: 'demo@gmail.com',
      PhoneNumber: '1234567890',
      AltPhoneNumber: '9999999999',
    },
    replace: {
      UserID: 'B68t19',
      Name: 'Trisul Network Analyzer',
      Address: 'India',
      Email: 'test@gmail.com',
      PhoneNumber: '3333333333',
      AltPhoneNumber: '5555555555',
    },
    update: { Email: 'test@gmail.com' },
    delete: null,
  },
  mappings: {
    create: {
      UserID: 'U1001',
      ipsubnet: '172.27.19.224',
      starttime: '0',
      endtime: '1735669799',
      terminalid: 'T1001',
    },
    replace: { ipsubnet: '172.27.19.224', starttime: '0', endtime: '1767205799', terminalid: 'T1001' },
    update: { ipsubnet: '172.27.19.224', endtime: '1767205799' },
    delete: { ipsubnet: '172.27.19.224' },
  },
}
