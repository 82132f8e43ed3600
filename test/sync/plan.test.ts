/**
 * planSync (src/sync/plan.ts), pure: customers created, updated with only the
 * changed fields, unchanged, absent or deleted; duplicates and invalid records;
 * mappings created, updated, ended, deleted or left as history; the phases.
 */
import fc from 'fast-check'
import t from 'tap'
import {
  type CurrentState,
  type CustomerWanted,
  type MappingWanted,
  planSync,
  type SyncInput,
} from '../../src/sync/plan.js'

function current(
  customers: Record<string, unknown>[],
  mappings: Record<string, unknown>[] = [],
): CurrentState {
  return {
    customer: (id) => customers.find((c) => c.UserID === id),
    userIds: () => customers.map((c) => c.UserID as string),
    mappingsOf: (cid) => mappings.filter((m) => m.ipdr_customer_id === cid),
  }
}

const want = (
  UserID: string,
  fields: Record<string, string>,
  mappings?: MappingWanted[],
): CustomerWanted => ({
  kind: 'customer',
  UserID,
  fields,
  ...(mappings ? { mappings } : {}),
  source: `record ${UserID}`,
})

const NOW = 1_800_000_000

t.test('customers: create, update with the changed fields only, unchanged, absent', async (t) => {
  const now = current([
    { id: 1, UserID: 'A', Name: 'Ann', Address: 'X', Email: '' },
    { id: 2, UserID: 'B', Name: 'Bob', Address: 'Y', Email: '' },
    { id: 3, UserID: 'C', Name: 'Cy', Address: 'Z', Email: '' },
  ])
  const plan = planSync(
    now,
    [
      want('A', { Name: 'Ann' }),
      want('B', { Name: 'Bob', Address: 'Y2', Email: '' }),
      want('D', { Name: 'Dee' }),
    ],
    { delete: false, now: NOW },
  )
  t.same(plan.counts, { create: 1, update: 1, delete: 1, unchanged: 1, invalid: 0 })
  t.same(plan.absent, ['C'])
  t.same(
    plan.writes.map((w) => [w.resource, w.operation, w.UserID, w.fields]),
    [
      ['customers', 'update', 'B', { Address: 'Y2' }],
      ['customers', 'create', 'D', { UserID: 'D', Name: 'Dee' }],
    ],
  )
  t.same(
    plan.writes[0]?.before,
    { id: 2, UserID: 'B', Name: 'Bob', Address: 'Y', Email: '' },
    'the update knows what it replaces',
  )
  const deleting = planSync(now, [want('A', { Name: 'Ann' })], { delete: true, now: NOW })
  t.same(deleting.counts, { create: 0, update: 0, delete: 2, unchanged: 1, invalid: 0 })
  t.same(
    deleting.writes.map((w) => `${w.operation} ${w.UserID}`),
    ['delete B', 'delete C'],
  )
  t.same(deleting.absent, [])
})

t.test('duplicates make every copy invalid; an invalid record is never absent', async (t) => {
  const now = current([
    { id: 1, UserID: 'A', Name: 'Ann' },
    { id: 2, UserID: 'B', Name: 'Bob' },
  ])
  const inputs: SyncInput[] = [
    want('X', { Name: 'one' }),
    want('X', { Name: 'two' }),
    { kind: 'invalid', UserID: 'B', source: 'record 3', message: 'Email is not valid' },
    want('A', { Name: 'Ann' }),
  ]
  const plan = planSync(now, inputs, { delete: true, now: NOW })
  t.same(plan.counts, { create: 0, update: 0, delete: 0, unchanged: 1, invalid: 3 })
  t.same(plan.writes, [], 'nothing sent for X, B is not deleted')
  t.same(plan.invalid.map((i) => i.source).sort(), ['record 3', 'record X', 'record X'])
})

t.test('mappings: created, updated, ended when open, deleted before they start, history kept', async (t) => {
  const now = current(
    [{ id: 7, UserID: 'M', Name: 'Em' }],
    [
      { id: 1, ipdr_customer_id: 7, ipsubnet: '10.0.0.1', starttime: 100, endtime: null, terminalid: 't' },
      { id: 2, ipdr_customer_id: 7, ipsubnet: '10.0.0.2', starttime: 100, endtime: null, terminalid: 't' },
      { id: 3, ipdr_customer_id: 7, ipsubnet: '10.0.0.3', starttime: 100, endtime: 200, terminalid: 't' },
      {
        id: 4,
        ipdr_customer_id: 7,
        ipsubnet: '10.0.0.4',
        starttime: NOW + 50,
        endtime: null,
        terminalid: 't',
      },
      { id: 5, ipdr_customer_id: 7, ipsubnet: '10.0.0.5', starttime: 100, endtime: null, terminalid: 't' },
    ],
  )
  const plan = planSync(
    now,
    [
      want('M', { Name: 'Em' }, [
        { ipsubnet: '10.0.0.1', starttime: 100, endtime: null, terminalid: 't' },
        { ipsubnet: '10.0.0.5', starttime: 100, endtime: 900, terminalid: 'u' },
        { ipsubnet: '10.9.0.0/24', starttime: 0, endtime: null, terminalid: '' },
      ]),
      want('N', { Name: 'New' }, [{ ipsubnet: '10.8.0.1', starttime: 5, endtime: 10, terminalid: 'z' }]),
    ],
    { delete: false, now: NOW },
  )
  t.same(plan.mappings, { create: 2, update: 1, end: 1, delete: 1, unchanged: 1 })
  t.same(
    plan.writes.map((w) => `${w.resource} ${w.operation} ${w.UserID} ${JSON.stringify(w.fields)}`),
    [
      'customers create N {"UserID":"N","Name":"New"}',
      `mappings update M {"ipsubnet":"10.0.0.5","endtime":"900","terminalid":"u"}`,
      `mappings update M {"ipsubnet":"10.0.0.2","endtime":"${NOW}"}`,
      'mappings delete M {"ipsubnet":"10.0.0.4"}',
      'mappings create M {"UserID":"M","ipsubnet":"10.9.0.0/24","starttime":"0","terminalid":""}',
      'mappings create N {"UserID":"N","ipsubnet":"10.8.0.1","starttime":"5","endtime":"10","terminalid":"z"}',
    ],
    'customers first, then freed addresses, then new mappings; 10.0.0.3 is history',
  )
})

t.test(
  'property: applying a plan to the current state gives the wanted state, and re-planning gives nothing',
  async (t) => {
    const record = fc.record({ Name: fc.constantFrom('a', 'b'), Address: fc.constantFrom('x', 'y', '') })
    const ids: fc.Arbitrary<string[]> = fc.uniqueArray(fc.constantFrom('A', 'B', 'C', 'D', 'E', 'F'), {
      maxLength: 6,
    })
    fc.assert(
      fc.property(
        ids,
        ids,
        fc.array(record, { minLength: 6, maxLength: 6 }),
        fc.array(record, { minLength: 6, maxLength: 6 }),
        fc.boolean(),
        (have, wanted, haveFields, wantFields, del) => {
          const store = new Map(have.map((id, i) => [id, { id: i + 1, UserID: id, ...haveFields[i] }]))
          const desired = wanted.map((id, i) => want(id, wantFields[i] as Record<string, string>))
          const state = () => current([...store.values()])
          const plan = planSync(state(), desired, { delete: del, now: NOW })
          for (const w of plan.writes) {
            if (w.operation === 'delete') store.delete(w.UserID)
            else
              store.set(w.UserID, {
                ...(store.get(w.UserID) ?? { id: 99, UserID: w.UserID }),
                ...(w.fields as object),
              })
          }
          for (const d of desired) {
            const got = store.get(d.UserID)
            if (!got || Object.entries(d.fields).some(([k, v]) => (got as Record<string, unknown>)[k] !== v))
              return false
          }
          if (del && store.size !== desired.length) return false
          return planSync(state(), desired, { delete: del, now: NOW }).writes.length === 0
        },
      ),
      { numRuns: 300 },
    )
    t.pass('holds for 300 random current and wanted lists')
  },
)
