// Data survives a restart on the same database file; the schema is versioned and migrated on open.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import t from 'tap'
import { buildEmulator, startEmulator } from '../../src/emulator/index.js'
import { SCHEMA_VERSION } from '../../src/emulator/schema.js'
import { cred, mcred, startTestEmulator, V2_USERS } from './harness.js'

t.test('customers and mappings survive a restart on the same --db', async (t) => {
  const dir = t.testdir()
  const db = join(dir, 'nested', 'dir', 'emulator.sqlite')
  const first = await startTestEmulator(t, { db })
  await first.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U1', Name: 'Asha' })
  await first.call('POST', '/api/ipdrcustomers', { ...cred('ipdr'), UserID: 'U2', Name: 'Bala' })
  await first.call('POST', '/api/ipdrcustomers_mapping', {
    ...mcred(),
    UserID: 'U1',
    ipsubnet: '2001:db8::/64',
    starttime: '10',
    endtime: '20',
  })
  const customers = (await first.call('GET', '/api/ipdrcustomers', cred())).json
  const mappings = (await first.call('GET', '/api/ipdrcustomers_mapping', mcred())).json
  await first.close()

  const second = await startTestEmulator(t, { db })
  t.strictSame((await second.call('GET', '/api/ipdrcustomers', cred())).json, customers)
  t.strictSame((await second.call('GET', '/api/ipdrcustomers_mapping', mcred())).json, mappings)
  t.equal((await second.call('GET', '/api/ipdrcustomers', cred('ipdr'))).json[0].UserID, 'U2')
  // the overlap rule still sees the stored mapping
  await second.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U3', Name: 'Chitra' })
  const r = await second.call('POST', '/api/ipdrcustomers_mapping', {
    ...mcred(),
    UserID: 'U3',
    ipsubnet: '2001:db8::1',
    starttime: '15',
  })
  t.strictSame(r.json, { status: 'Error', message: 'Duplicate Mapping for UserID : U3' })
  // ids continue after the highest ever used
  const created = await second.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U4', Name: 'Dev' })
  t.equal(created.json.id, 4)
  await second.close()

  const raw = new Database(db, { readonly: true })
  t.teardown(() => raw.close())
  t.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION)
  t.equal(raw.pragma('journal_mode', { simple: true }), 'wal')
})

t.test('data written in v1 is the v2 context "default"', async (t) => {
  const db = join(t.testdir(), 'emu.sqlite')
  const v1 = await startTestEmulator(t, { db, dialect: 'v1' })
  await v1.call('POST', '/api/ipdrcustomers', {
    api_token: 'test-token-not-secret',
    username: 'admin',
    UserID: 'U1',
    Name: 'A',
  })
  await v1.close()
  const v2 = await startTestEmulator(t, { db })
  t.equal((await v2.call('GET', '/api/ipdrcustomers', cred())).json[0].UserID, 'U1')
})

t.test("two emulators on one file see each other's writes", async (t) => {
  const db = join(t.testdir(), 'emu.sqlite')
  const a = await startTestEmulator(t, { db })
  const b = await startTestEmulator(t, { db })
  await a.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U1', Name: 'A' })
  const r = await b.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U1', Name: 'B' })
  t.strictSame(r.json, { status: 'Error', message: 'Duplicate UserID : U1' })
  t.equal((await b.call('GET', '/api/ipdrcustomers', cred())).json.length, 1)
})

t.test('a database from a newer emulator is refused with a clear message', async (t) => {
  const db = join(t.testdir(), 'emu.sqlite')
  const raw = new Database(db)
  raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
  raw.close()
  await t.rejects(buildEmulator({ db, dialect: 'v2', users: V2_USERS }), {
    message: /schema version 2 is newer than this emulator supports/,
  })
})

t.test('an unusable database path is an error, not a crash', async (t) => {
  const dir = t.testdir({ 'a-file': 'not a directory' })
  await t.rejects(buildEmulator({ db: join(dir, 'a-file', 'emu.sqlite'), dialect: 'v2', users: V2_USERS }))
})

t.test('a database error is a 500 envelope without details', async (t) => {
  const db = join(t.testdir(), 'emu.sqlite')
  const emu = await startTestEmulator(t, { db })
  // Another connection holds the write lock past the busy timeout (5 s): the write fails inside SQLite.
  const locker = new Database(db)
  locker.exec('BEGIN IMMEDIATE')
  t.teardown(() => {
    if (locker.inTransaction) locker.exec('ROLLBACK')
    locker.close()
  })
  const r = await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U1', Name: 'A' })
  t.equal(r.status, 500)
  t.strictSame(r.json, { status: 'Error', message: 'Internal server error' })
  locker.exec('ROLLBACK')
  // reads never waited, and once the lock is gone writes work again
  const ok = await emu.call('POST', '/api/ipdrcustomers', { ...cred(), UserID: 'U1', Name: 'A' })
  t.equal(ok.json.UserID, 'U1')
})

t.test('a port in use or bad logger options reject, and release the database', async (t) => {
  const db = join(t.testdir(), 'emu.sqlite')
  const first = await startEmulator({ db, dialect: 'v2', users: V2_USERS, port: 0, host: '127.0.0.1' })
  t.teardown(() => first.close())
  await t.rejects(
    startEmulator({ db, dialect: 'v2', users: V2_USERS, port: first.port, host: '127.0.0.1' }),
    { code: 'EADDRINUSE' },
  )
  await t.rejects(buildEmulator({ db, dialect: 'v2', users: V2_USERS, logger: { level: 'no-such-level' } }))
  // the file is still usable by the first emulator
  const second = await startTestEmulator(t, { db })
  t.same((await second.call('GET', '/api/ipdrcustomers', cred())).json, [])
})
