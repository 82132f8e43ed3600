/**
 * Opens the emulator's SQLite database and brings its schema up to date.
 * The schema version lives in `PRAGMA user_version`; each migration runs in
 * one transaction, so a crash mid-migration leaves the previous version.
 */
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

/**
 * Migration N (index N-1) takes the schema from version N-1 to N. Never edit a
 * shipped migration: append a new one, so old files upgrade in place.
 */
const MIGRATIONS: readonly string[] = [
  `
  -- Customers are scoped by context; UserID is unique within one context.
  -- AUTOINCREMENT: ids of deleted customers are never handed out again.
  CREATE TABLE customers (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    context          TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    name             TEXT NOT NULL,
    address          TEXT NOT NULL DEFAULT '',
    email            TEXT NOT NULL DEFAULT '',
    phone_number     TEXT NOT NULL DEFAULT '',
    alt_phone_number TEXT NOT NULL DEFAULT '',
    UNIQUE (context, user_id)
  );
  CREATE INDEX customers_by_context ON customers (context, id);

  -- ipsubnet is kept as the client wrote it; the numeric range beside it
  -- (fixed-width hex, which sorts like the number) makes the overlap rule an
  -- indexed query. context repeats the owner's so that index can lead with it.
  CREATE TABLE mappings (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    context     TEXT NOT NULL,
    ipsubnet    TEXT NOT NULL,
    ip_version  INTEGER NOT NULL CHECK (ip_version IN (4, 6)),
    range_start TEXT NOT NULL CHECK (length(range_start) = 32),
    range_end   TEXT NOT NULL CHECK (length(range_end) = 32),
    prefix      INTEGER NOT NULL,
    starttime   INTEGER NOT NULL CHECK (starttime >= 0),
    endtime     INTEGER CHECK (endtime IS NULL OR endtime > starttime),
    terminalid  TEXT NOT NULL DEFAULT '',
    -- A customer holds one mapping per address or subnet: PUT, PATCH and
    -- DELETE select it by ipsubnet.
    UNIQUE (customer_id, ip_version, range_start, prefix)
  );
  CREATE INDEX mappings_by_range ON mappings (context, ip_version, range_start);
  CREATE INDEX mappings_by_context ON mappings (context, id);
  `,
]

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Opens (creating when needed) the database at `path`, or an in-memory one
 * for `':memory:'`, in WAL mode with foreign keys on, and migrates it.
 * Throws when the file was written by a newer emulator.
 */
export function openDatabase(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  try {
    // WAL: readers never block the writer, and a crash cannot corrupt the file.
    db.pragma('journal_mode = WAL')
    // NORMAL is durable in WAL mode except for the last commits before a power loss; fine for an emulator.
    db.pragma('synchronous = NORMAL')
    db.pragma('foreign_keys = ON')
    // Up to 128 MiB of page cache (SQLite's default is 2 MiB): the UserID index of a million seeded
    // customers stays in memory while they are inserted in random UserID order. Used only as filled.
    db.pragma('cache_size = -131072')
    // Another process (a second emulator on the same file) may hold the write lock briefly.
    db.pragma('busy_timeout = 5000')
    migrate(db)
  } catch (err) {
    db.close()
    throw err
  }
  return db
}

function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > SCHEMA_VERSION) {
    throw new Error(
      `emulator database: schema version ${current} is newer than this emulator supports (${SCHEMA_VERSION})`,
    )
  }
  for (let v = current; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] as string)
      db.pragma(`user_version = ${v + 1}`)
    }).immediate()
  }
}
