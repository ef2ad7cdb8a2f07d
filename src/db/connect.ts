import type {ClientBase, Pool} from 'pg'

import {connectionFailure, parseDatabaseUrl} from './connection-errors.js'
import {Kysely, PostgresDialect} from './kysely.js'
import pg from './pg.js'
import type {Database} from './schema.js'

// int8 (bigint ids, count(*)) as numbers: every id and count rvx keeps is far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number.parseInt(value, 10))

/**
 * What bounds every wait of an rvx session, on the server and in the client.
 * A partitioned or frozen peer must never hold a lock, a connection or a
 * caller for longer than these (0: no bound, for maintenance only).
 */
export interface SessionLimits {
  /** A statement that runs longer is canceled by the server (57014). */
  statementTimeoutMs: number
  /** Waiting for a row or advisory lock longer than this fails the statement (55P03). */
  lockTimeoutMs: number
  /** A session idle inside a transaction this long is ended by the server, which frees its locks (25P03). */
  idleInTransactionMs: number
  /** Keepalive probes on both ends: an idle connection to a vanished peer is noticed within about idle + 3 x interval. */
  keepAliveIdleMs: number
  keepAliveIntervalMs: number
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  statementTimeoutMs: 30_000,
  lockTimeoutMs: 5000,
  idleInTransactionMs: 5000,
  keepAliveIdleMs: 10_000,
  keepAliveIntervalMs: 5000,
}

/** Limits for migrations and other maintenance: no statement or lock bound (a migration may wait for another to finish). */
export const MAINTENANCE_SESSION_LIMITS: SessionLimits = {...DEFAULT_SESSION_LIMITS, statementTimeoutMs: 0, lockTimeoutMs: 0}

/**
 * How long the client waits for any answer before it gives the connection up
 * (the server's own statement_timeout should have answered first): a query
 * sent into a partition would otherwise wait for TCP's own retransmission
 * limit, about 15 minutes.
 */
export function clientTimeoutMs(limits: SessionLimits): number | undefined {
  return limits.statementTimeoutMs > 0 ? limits.statementTimeoutMs + 5000 : undefined
}

/**
 * The session settings rvx asks for on every connection it opens, as one
 * statement after connecting (startup parameters would be refused by a
 * pgbouncer that does not know them). The server's keepalive settings make it
 * notice a vanished worker (and release its liveness lock) within seconds;
 * tcp_user_timeout bounds unacknowledged data the same way.
 */
export async function applySessionLimits(client: Pick<ClientBase, 'query'>, limits: SessionLimits): Promise<void> {
  const keepAliveS = (ms: number) => String(Math.max(1, Math.round(ms / 1000)))
  await client.query(
    `select set_config('statement_timeout', $1, false), set_config('lock_timeout', $2, false),
            set_config('idle_in_transaction_session_timeout', $3, false), set_config('tcp_keepalives_idle', $4, false),
            set_config('tcp_keepalives_interval', $5, false), set_config('tcp_keepalives_count', '3', false),
            set_config('tcp_user_timeout', $6, false)`,
    [
      String(limits.statementTimeoutMs),
      String(limits.lockTimeoutMs),
      String(limits.idleInTransactionMs),
      keepAliveS(limits.keepAliveIdleMs),
      keepAliveS(limits.keepAliveIntervalMs),
      String(limits.keepAliveIdleMs + 3 * limits.keepAliveIntervalMs),
    ],
  )
}

/** Connection options every rvx client shares: keepalives on, and the client's own bound on an unanswered query. */
export function clientOptions(limits: SessionLimits): {keepAlive: true; keepAliveInitialDelayMillis: number; query_timeout?: number} {
  const timeout = clientTimeoutMs(limits)
  return {keepAlive: true, keepAliveInitialDelayMillis: limits.keepAliveIdleMs, ...(timeout ? {query_timeout: timeout} : {})}
}

/**
 * A pg client whose connection is closed when a query's answer does not come
 * in time: pg rejects the query but keeps it as the connection's active one,
 * so every later query on that connection would wait behind it forever. A
 * closed connection leaves the pool, and the server ends the session.
 */
export class BoundedClient extends pg.Client {
  override query(...args: unknown[]): any {
    const result = (super.query as (...a: unknown[]) => unknown)(...args)
    if (result && typeof (result as Promise<unknown>).catch === 'function') {
      ;(result as Promise<unknown>).catch((error: unknown) => {
        if ((error as Error)?.message === 'Query read timeout') (this as unknown as {connection?: {stream?: {destroy(): void}}}).connection?.stream?.destroy()
      })
    }

    return result
  }
}

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
  /** Bounds of every session of the pool (DEFAULT_SESSION_LIMITS unless given). */
  limits?: SessionLimits
  /** Keep every connection once opened (a worker's fixed budget), instead of closing idle ones after 30 s. */
  keepOpen?: boolean
}

export function createPool(url: string, options: OpenOptions = {}): Pool {
  parseDatabaseUrl(url)
  const limits = options.limits ?? DEFAULT_SESSION_LIMITS
  const max = options.max ?? 10
  const pool = new pg.Pool({
    connectionString: url,
    max,
    ...(options.keepOpen ? {min: max, idleTimeoutMillis: 0} : {idleTimeoutMillis: 30_000}),
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
    application_name: options.applicationName ?? 'rvx',
    Client: BoundedClient as unknown as typeof pg.Client,
    ...clientOptions(limits),
  })
  const onError = options.onPoolError ?? (() => {})
  pool.on('error', onError)
  pool.on('connect', (client) => {
    // pg-pool listens for errors only on idle clients; a connection that dies while checked out
    // (between a transaction's statements, say) would otherwise throw from an EventEmitter and kill the process.
    client.on('error', onError)
    // Queued ahead of the first query of whoever asked for this connection (pg runs a client's queries in order).
    // A connection that fails here fails that query too; nothing else is to be done with this rejection.
    applySessionLimits(client, limits).catch(() => {})
  })
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
      await endPool(pool)
    },
  }
}

/**
 * Ends a pool (and so the Kysely over it: its destroy() only ends the pool,
 * and only once a query has gone through it, which a command that failed
 * early never did: its connections would keep the process alive).
 */
export async function endPool(pool: Pool, ms = 5000): Promise<void> {
  if ((pool as unknown as {ending?: boolean}).ending) return
  await closeWithin(pool.end(), pool, ms)
}

/**
 * Ends a pool within `ms`: pool.end() waits for every checked-out client,
 * and one stuck on a half-open connection would never come back; after the
 * bound, every socket of the pool is destroyed.
 */
export async function closeWithin(ending: Promise<unknown>, pool: Pool, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), ms)
    timer.unref()
  })
  const outcome = await Promise.race([
    ending.then(
      () => 'ended' as const,
      () => 'ended' as const,
    ),
    late,
  ])
  clearTimeout(timer)
  if (outcome === 'late') {
    for (const client of (pool as unknown as {_clients?: Array<{connection?: {stream?: {destroy(): void}}}>})._clients ?? [])
      client.connection?.stream?.destroy()
  }
}
