import type {Client} from 'pg'

import pg from '../db/pg.js'
import {RvxError} from '../shared/errors.js'
import {backoffMs, sleep} from './backoff.js'
import {type BackoffPolicy, LOCK_CLASS_WORKER, NOTIFY_CHANNEL, REVOKED_CHANNEL} from './config.js'
import type {Logger} from './logger.js'

/**
 * A worker process's own database session: it holds the worker's liveness
 * advisory lock (released by PostgreSQL the moment the process dies, which is
 * how the sweep tells a crash in seconds) and LISTENs for new tasks. It
 * reconnects by itself after the server restarts.
 */
export class LivenessSession {
  private client?: Client
  private closed = false
  private reconnecting = false

  constructor(
    private readonly url: string,
    private readonly workerId: string,
    private readonly lockKey: number,
    private readonly handlers: {onNotify: (kind: string) => void; onReconnect: () => void; onRevoked: () => void},
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy,
  ) {}

  /** First connection: fails if another live process holds this worker id. */
  async open(): Promise<void> {
    const ok = await this.connect()
    if (!ok) {
      throw new RvxError(`worker id ${this.workerId} is in use by a live worker: choose another worker id, or stop that worker first`, {
        code: 'worker_id_in_use',
      })
    }
  }

  async close(): Promise<void> {
    this.closed = true
    const client = this.client
    this.client = undefined
    if (client) await client.end().catch(() => {})
  }

  private async connect(): Promise<boolean> {
    const client = new pg.Client({
      connectionString: this.url,
      keepAlive: true,
      application_name: `rvx-worker ${this.workerId}`.slice(0, 63),
      connectionTimeoutMillis: 10_000,
    })
    client.on('error', (error) => {
      this.log.warn({err: error.message}, 'liveness session lost; reconnecting')
      this.scheduleReconnect(client)
    })
    client.on('end', () => this.scheduleReconnect(client))
    client.on('notification', (msg) => {
      if (msg.channel === NOTIFY_CHANNEL && msg.payload) this.handlers.onNotify(msg.payload)
      if (msg.channel === REVOKED_CHANNEL && msg.payload === this.workerId) this.handlers.onRevoked()
    })
    await client.connect()
    const {rows} = await client.query<{ok: boolean}>('select pg_try_advisory_lock($1, $2) as ok', [LOCK_CLASS_WORKER, this.lockKey])
    if (!rows[0].ok) {
      client.removeAllListeners('end')
      await client.end().catch(() => {})
      return false
    }

    await client.query(`listen ${NOTIFY_CHANNEL}`)
    await client.query(`listen ${REVOKED_CHANNEL}`)
    this.client = client
    return true
  }

  private scheduleReconnect(client: Client): void {
    if (this.closed || this.reconnecting || this.client !== client) return
    this.reconnecting = true
    this.client = undefined
    client.removeAllListeners('end')
    client.end().catch(() => {})
    void this.reconnectLoop()
  }

  private async reconnectLoop(): Promise<void> {
    for (let n = 1; !this.closed; n++) {
      try {
        if (await this.connect()) {
          this.reconnecting = false
          this.log.info({}, 'liveness session restored')
          this.handlers.onReconnect()
          return
        }
      } catch {
        // server still down
      }

      await sleep(backoffMs(n, this.backoff))
    }

    this.reconnecting = false
  }
}
