import type {Pool} from 'pg'

import {connectionFailure, parseDatabaseUrl} from './connection-errors.js'
import {Kysely, PostgresDialect} from './kysely.js'
import pg from './pg.js'
import type {Database} from './schema.js'

// int8 (bigint ids, count(*)) as numbers: every id and count rvx keeps is far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10))

export interface DatabaseHandle {
  db: Kysely<Database>
  pool: Pool
  url: string
  close(): Promise<void>
}

export interface OpenOptions {
  max?: number
  applicationName?: string
  connectTimeoutMs?: number
  /** Called for errors on idle clients (e.g. the server restarted); without a listener pg would crash the process. */
  onPoolError?: (error: Error) => void
}

export function createPool(url: string, options: OpenOptions = {}): Pool {
  parseDatabaseUrl(url)
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'rvx',
  })
  const onError = options.onPoolError ?? (() => {})
  pool.on('error', onError)
  // pg-pool listens for errors only on idle clients; a connection that dies while checked out
  // (between a transaction's statements, say) would otherwise throw from an EventEmitter and kill the process.
  pool.on('connect', (client) => client.on('error', onError))
  return pool
}

/** Opens a pool and proves it works with one round trip, turning connection failures into one-line errors (exit 3). */
export async function openDatabase(url: string, options: OpenOptions = {}): Promise<DatabaseHandle> {
  const pool = createPool(url, options)
  try {
    const client = await pool.connect()
    client.release()
  } catch (error) {
    await pool.end().catch(() => {})
    throw connectionFailure(error, url)
  }

  const db = new Kysely<Database>({dialect: new PostgresDialect({pool})})
  let closed = false
  return {
    db,
    pool,
    url,
    async close() {
      if (closed) return
      closed = true
      await db.destroy()
    },
  }
}
