import fs from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {DatabaseUnavailableError, RvxError} from '../shared/errors.js'
import {FileMigrationProvider, type Kysely, Migrator, type MigrationResult} from './kysely.js'
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
  const {error, results} = await migrator(db).migrateToLatest()
  if (error) {
    if (isConnectionError(error)) throw connectionFailure(error, url)
    const failed = results?.find((r) => r.status === 'Error')
    throw new RvxError(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${(error as Error).message ?? error}. Nothing of it was applied.`, {
      cause: error,
      code: 'migration_failed',
    })
  }

  return results ?? []
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
