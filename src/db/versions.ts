import {type DatabaseHandle, openDatabase} from './connect.js'
import {describeTarget} from './connection-errors.js'
import {EmbeddedServer} from './embedded.js'
import {sql} from './kysely.js'
import {knownMigrations, migrationStatus} from './migrator.js'
import type {Env} from '../shared/config.js'

/** What `rvx version` says about the database: which one, the server's version, how far its schema is migrated. */
export interface DatabaseVersions {
  postgres: {
    database: 'embedded' | 'external'
    /** user@host:port/database, never the password. */
    target: string | null
    reachable: boolean
    version: string | null
    /** Why there is no version, in words for a person; null when reachable. */
    note: string | null
  }
  schema: {applied: number | null; latest: number}
}

/**
 * Asks the database (never starting the embedded server: a version query must
 * not leave a server behind) and reports what it can. A database that cannot
 * be reached is an answer, not an error.
 */
export async function databaseVersions(options: {url?: string; connectTimeoutMs?: number; env: Env}): Promise<DatabaseVersions> {
  const latest = (await knownMigrations()).length
  const database = options.url ? 'external' : 'embedded'
  let url = options.url
  if (!url) {
    const server = new EmbeddedServer({env: options.env})
    const running = (await server.runningPid()) !== null
    url = running ? ((await server.url()) ?? undefined) : undefined
    if (!url) {
      const note = 'the embedded server is not running (rvx db start starts it; so does any command that needs it)'
      return {postgres: {database, target: null, reachable: false, version: null, note}, schema: {applied: null, latest}}
    }
  }

  const target = describeTarget(url)
  let handle: DatabaseHandle
  try {
    handle = await openDatabase(url, {max: 1, connectTimeoutMs: options.connectTimeoutMs ?? 5000, applicationName: 'rvx version'})
  } catch (error) {
    return {postgres: {database, target, reachable: false, version: null, note: (error as Error).message}, schema: {applied: null, latest}}
  }

  try {
    const {rows} = await sql<{version: string}>`select current_setting('server_version') as version`.execute(handle.db)
    const applied = (await migrationStatus(handle.db)).filter((m) => m.status === 'applied').length
    return {postgres: {database, target, reachable: true, version: rows[0].version, note: null}, schema: {applied, latest}}
  } finally {
    await handle.close()
  }
}
