import type {Client} from 'pg'

import {applySessionLimits, BoundedClient, clientOptions, DEFAULT_SESSION_LIMITS} from '../db/connect.js'
import type {Executor} from '../db/executor.js'
import {sql} from '../db/kysely.js'
import {LOCK_CLASS_MONITOR} from '../runtime/config.js'

const META_KEY = 'monitor.leader'

/**
 * The active monitor, as it last stamped itself, when it did within three of
 * its intervals (and 15 s): its name, interval, and whether it writes the
 * exports of runs that end (--export-dir). Undefined when none is active.
 */
export async function activeMonitor(db: Executor): Promise<{name: string; intervalMs: number; exports: boolean} | undefined> {
  const {rows} = await sql<{name: string; interval_ms: number; exports: boolean}>`
    select value ->> 'name' as name, coalesce((value ->> 'intervalMs')::float8, 5000) as interval_ms, coalesce((value ->> 'exports')::boolean, false) as exports
    from rvx_meta
    where key = ${META_KEY} and updated_at > now() - greatest(3 * coalesce((value ->> 'intervalMs')::float8, 5000), 15000) * interval '1 millisecond'`.execute(
    db,
  )
  return rows[0] && {name: rows[0].name, intervalMs: rows[0].interval_ms, exports: rows[0].exports}
}

export interface Leadership {
  active: boolean
  /** Set when this call took the lock from a hung leader (its name). */
  tookOverFrom?: string
  /** Set when the database could not be asked (the lock, if this process held it, went with its session). */
  lost?: unknown
}

/**
 * Which of several monitors is the active one: whoever holds a session
 * advisory lock on its own connection. PostgreSQL drops the lock the moment
 * that process dies (or its connection does), so a standby calling `hold()`
 * every interval takes over within one interval.
 *
 * A process can also hang with its session alive (SIGSTOP, a stuck query):
 * the active monitor stamps `rvx_meta` on every hold(), and a standby that
 * finds the stamp older than three of the leader's intervals (and 15 s)
 * ends the leader's session (pg_terminate_backend) and takes the lock.
 */
export class LeaderLock {
  private client?: Client
  private held = false

  constructor(
    private readonly url: string,
    private readonly name: string,
    private readonly intervalMs: number,
    /** What the active monitor does beyond the usual, stamped for others to read (see activeMonitor). */
    private readonly duties: {exports: boolean} = {exports: false},
  ) {}

  /** Whether this process is the active monitor now (after trying to become it). Never throws: a lost connection is reported as `lost`. */
  async hold(): Promise<Leadership> {
    try {
      if (!this.client) await this.connect()
      if (!this.held) await this.tryLock()

      if (this.held) {
        await this.stamp()
        return {active: true}
      }

      const hung = await this.hungLeader()
      if (!hung) return {active: false}
      await this.client!.query('select pg_terminate_backend($1)', [hung.pid])
      // The ended session lets go of the lock as soon as its backend exits.
      for (let i = 0; i < 20 && !(await this.tryLock()); i++) await new Promise((r) => setTimeout(r, 50))

      if (!this.held) return {active: false}
      await this.stamp()
      return {active: true, tookOverFrom: hung.name}
    } catch (error) {
      this.drop()
      return {active: false, lost: error}
    }
  }

  async close(): Promise<void> {
    const client = this.client
    this.drop()
    await client?.end().catch(() => {})
  }

  private async tryLock(): Promise<boolean> {
    const {rows} = await this.client!.query<{ok: boolean}>('select pg_try_advisory_lock($1, 0) as ok', [LOCK_CLASS_MONITOR])
    this.held = rows[0].ok
    return this.held
  }

  private async stamp(): Promise<void> {
    await this.client!.query(
      `insert into rvx_meta (key, value, updated_at) values ($1, $2, now())
       on conflict (key) do update set value = excluded.value, updated_at = excluded.updated_at`,
      [
        META_KEY,
        JSON.stringify({
          name: this.name,
          intervalMs: this.intervalMs,
          backendPid: (this.client as unknown as {processID?: number}).processID ?? null,
          exports: this.duties.exports,
        }),
      ],
    )
  }

  /** The lock holder's session, when the holder has not stamped for three of its intervals (and 15 s). */
  private async hungLeader(): Promise<{pid: number; name: string} | undefined> {
    const {rows} = await this.client!.query<{pid: number; name: string}>(
      `select l.pid, m.value ->> 'name' as name
       from pg_locks l
       join rvx_meta m on m.key = $2
       where l.locktype = 'advisory' and l.granted and l.classid::int = $1 and l.objid = 0 and l.objsubid = 2
         and l.database = (select oid from pg_database where datname = current_database())
         and (m.value ->> 'backendPid')::int = l.pid
         and m.updated_at < now() - greatest(3 * coalesce((m.value ->> 'intervalMs')::float8, 5000), 15000) * interval '1 millisecond'`,
      [LOCK_CLASS_MONITOR, META_KEY],
    )
    return rows[0]
  }

  private async connect(): Promise<void> {
    const client: Client = new BoundedClient({
      connectionString: this.url,
      ...clientOptions(DEFAULT_SESSION_LIMITS),
      query_timeout: 10_000,
      application_name: `rvx-monitor ${this.name}`.slice(0, 63),
      connectionTimeoutMillis: 10_000,
    })
    client.on('error', () => {
      if (this.client === client) this.drop()
    })
    await client.connect()
    await applySessionLimits(client, DEFAULT_SESSION_LIMITS)
    this.client = client
    this.held = false
  }

  private drop(): void {
    const client = this.client
    this.client = undefined
    this.held = false
    client?.end().catch(() => {})
  }
}
