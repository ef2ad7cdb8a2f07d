import fs from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {DatabaseUnavailableError, RvxError} from '../shared/errors.js'
import {FileMigrationProvider, type Kysely, Migrator, type MigrationResult, sql} from './kysely.js'
import {connectionFailure, isConnectionError} from './connection-errors.js'

// Works from src/db (tsx) and dist/src/db (compiled): migrations/ sits two levels up in both.
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations')

export const MIGRATION_TABLE = 'rvx_migration'
export const MIGRATION_LOCK_TABLE = 'rvx_migration_lock'

export interface MigrationStatus {
  name: string
  status: 'applied' | 'pending'
  appliedAt: string | null
}

export function migrator(db: Kysely<any>): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({fs, path, migrationFolder: MIGRATIONS_DIR}),
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  })
}

/** The migrations in MIGRATIONS_DIR by name, named as kysely's FileMigrationProvider names them, without loading any of them. */
async function migrationFileNames(): Promise<string[]> {
  const isMigration = (f: string) =>
    f.endsWith('.js') || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.endsWith('.mjs') || (f.endsWith('.mts') && !f.endsWith('.d.mts'))
  return (await fs.readdir(MIGRATIONS_DIR))
    .filter(isMigration)
    .map((f) => f.slice(0, f.lastIndexOf('.')))
    .sort()
}

/**
 * Every migration this build knows is recorded as applied: one query, and no
 * migration module loaded, which is what every command that needs the schema
 * finds almost always. (kysely's Migrator introspects every table's columns
 * and imports every migration before it can say the same.)
 */
async function schemaIsCurrent(db: Kysely<any>): Promise<boolean> {
  const known = await migrationFileNames()
  let applied: Set<string>
  try {
    applied = new Set((await db.selectFrom(MIGRATION_TABLE).select('name').execute()).map((r: {name: string}) => r.name))
  } catch (error) {
    // No migration table yet: nothing applied (undefined_table).
    if ((error as {code?: string}).code === '42P01') return false
    throw error
  }

  return known.every((name) => applied.has(name))
}

export async function migrationStatus(db: Kysely<any>): Promise<MigrationStatus[]> {
  const migrations = await migrator(db).getMigrations()
  return migrations.map((m) => ({name: m.name, status: m.executedAt ? 'applied' : 'pending', appliedAt: m.executedAt?.toISOString() ?? null}))
}

/**
 * Applies every pending migration. Safe to run from several processes at
 * once: kysely's Migrator holds an advisory lock, so the second waits and
 * then finds nothing to do.
 */
export async function migrateToLatest(db: Kysely<any>, url: string): Promise<MigrationResult[]> {
  const {error, results} = await withoutStatementBounds(db, (conn) => migrator(conn).migrateToLatest())
  if (error) {
    if (isConnectionError(error)) throw connectionFailure(error, url)
    // Without a failed result, kysely stopped before the first pending migration: creating its own tables.
    const failed = results?.find((r) => r.status === 'Error')?.migrationName
    const what = failed
      ? `migration ${failed}`
      : `migration ${(await migrationStatus(db).catch(() => [])).find((m) => m.status === 'pending')?.name ?? '(none pending)'} (creating the table ${MIGRATION_TABLE} before it)`
    const reason = String((error as Error).message ?? error).split('\n')[0]
    const fix = await privilegeHint(db, error).catch(() => undefined)
    throw new RvxError(`${what} failed: ${reason}${fix ? `: ${fix}` : ''}. Nothing of it was applied.`, {cause: error, code: 'migration_failed'})
  }

  return results ?? []
}

/**
 * Runs `fn` on one connection whose statement and lock timeouts are lifted
 * for the while: a migration may rewrite a large table, and the second of two
 * processes that migrate at once waits for the first one's lock. They are
 * put back before the connection returns to its pool.
 */
async function withoutStatementBounds<T>(db: Kysely<any>, fn: (conn: Kysely<any>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    const {rows} = await sql<{statement: string; lock: string}>`
      select current_setting('statement_timeout') as statement, current_setting('lock_timeout') as lock,
             set_config('statement_timeout', '0', false), set_config('lock_timeout', '0', false)`.execute(conn)
    try {
      return await fn(conn)
    } finally {
      await sql`select set_config('statement_timeout', ${rows[0].statement}, false), set_config('lock_timeout', ${rows[0].lock}, false)`
        .execute(conn)
        .catch(() => {})
    }
  })
}

/**
 * For a privilege error (SQLSTATE 42501): what the connecting role lacks and
 * how to get it. rvx's schema belongs to whoever ran the first migrate; a
 * later one must run as that role, and a first one needs CREATE on the schema.
 */
async function privilegeHint(db: Kysely<any>, error: unknown): Promise<string | undefined> {
  if ((error as {code?: unknown})?.code !== '42501') return undefined
  const message = String((error as Error).message)
  const {rows} = await sql<{role: string; schema: string; schema_owner: string}>`
    select current_user as role, current_schema() as schema,
           -- Since PostgreSQL 15 public belongs to pg_database_owner: the database's owner.
           case when n.nspowner = 'pg_database_owner'::regrole then (select pg_get_userbyid(d.datdba) from pg_database d where d.datname = current_database())
                else pg_get_userbyid(n.nspowner) end as schema_owner
    from pg_namespace n where n.nspname = current_schema()`.execute(db)
  const {role, schema, schema_owner: schemaOwner} = rows[0]
  const owned = /must be owner of (?:table|relation|view|function|index|sequence) (\S+)/.exec(message)
  if (owned) {
    // A table, view, index or sequence (pg_class), or a function (pg_proc: rvx_worker_stats()).
    const {rows: owners} = await sql<{owner: string}>`
      select pg_get_userbyid(c.relowner) as owner from pg_class c
      where c.relname = ${owned[1]} and c.relnamespace = to_regnamespace(${schema})::oid
      union all
      select pg_get_userbyid(p.proowner) from pg_proc p
      where p.proname = ${owned[1]} and p.pronamespace = to_regnamespace(${schema})::oid`.execute(db)
    const owner = owners[0]?.owner
    return `role ${role} does not own rvx's tables${owner ? ` (${owner} does)` : ''}: run rvx migrate as ${owner ?? 'the role that created them'}`
  }

  if (/permission denied for schema/.test(message)) {
    return `role ${role} may not create tables in schema ${schema}: run rvx migrate as ${schemaOwner}, or have it grant the privilege (GRANT CREATE ON SCHEMA ${schema} TO ${role})`
  }

  return `role ${role} lacks a privilege it needs: run rvx migrate as the owner of schema ${schema} (${schemaOwner}) or of rvx's tables`
}

/** Refuses to go on against a database whose schema is missing or behind this build of rvx. */
export async function assertSchemaCurrent(db: Kysely<any>): Promise<void> {
  if (await schemaIsCurrent(db)) return
  const pending = (await migrationStatus(db)).filter((m) => m.status === 'pending')
  if (pending.length > 0) {
    throw new DatabaseUnavailableError(
      `the database schema is not up to date (${pending.length} pending migration${pending.length === 1 ? '' : 's'}): run rvx migrate`,
      {code: 'schema_outdated'},
    )
  }
}

/**
 * The embedded database is rvx's own, so its schema follows this build:
 * applies whatever is pending and returns the names applied (none when
 * current, or when another process got there first).
 */
export async function applyPending(db: Kysely<any>, url: string): Promise<string[]> {
  if (await schemaIsCurrent(db)) return []
  if (!(await migrationStatus(db)).some((m) => m.status === 'pending')) return []
  const results = await migrateToLatest(db, url)
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
}

/** The migrations this build of rvx knows, by name: the level a current schema is at. */
export async function knownMigrations(): Promise<string[]> {
  return migrationFileNames()
}
