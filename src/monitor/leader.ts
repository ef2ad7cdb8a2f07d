import pg from 'pg'

import {LOCK_CLASS_MONITOR} from '../runtime/config.js'

/**
 * Which of several monitors is the active one: whoever holds a session
 * advisory lock on its own connection. PostgreSQL drops the lock the moment
 * that process dies (or its connection does), so a standby calling `hold()`
 * every interval takes over within one interval.
 */
export class LeaderLock {
  private client?: pg.Client
  private held = false

  constructor(
    private readonly url: string,
    private readonly name: string,
  ) {}

  /** True when this process holds the lock (after trying to take it if not). Never throws: a lost connection means standby. */
  async hold(): Promise<boolean> {
    try {
      if (!this.client) await this.connect()
      if (this.held) {
        await this.client!.query('select 1')
        return true
      }

      const {rows} = await this.client!.query<{ok: boolean}>('select pg_try_advisory_lock($1, 0) as ok', [LOCK_CLASS_MONITOR])
      this.held = rows[0].ok
      return this.held
    } catch {
      this.drop()
      return false
    }
  }

  async close(): Promise<void> {
    const client = this.client
    this.drop()
    await client?.end().catch(() => {})
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      query_timeout: 10_000,
      application_name: `rvx-monitor ${this.name}`.slice(0, 63),
      connectionTimeoutMillis: 10_000,
    })
    client.on('error', () => {
      if (this.client === client) this.drop()
    })
    await client.connect()
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
