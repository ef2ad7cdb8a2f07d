import type {Client} from 'pg'

import {applySessionLimits, BoundedClient, clientOptions, DEFAULT_SESSION_LIMITS, type SessionLimits} from '../db/connect.js'
import {Kysely, PostgresDialect} from '../db/kysely.js'
import type {Database} from '../db/schema.js'
import {RvxError} from '../shared/errors.js'
import {backoffMs, sleep} from './backoff.js'
import {type BackoffPolicy, LOCK_CLASS_WORKER, NOTIFY_CHANNEL, REVOKED_CHANNEL} from './config.js'
import type {Logger} from './logger.js'

/**
 * A worker process's own database session: it holds the worker's liveness
 * advisory lock (released by PostgreSQL the moment the process dies, which is
 * how the sweep tells a crash in seconds), LISTENs for new tasks and carries
 * the worker's heartbeats, which so never queue behind the worker's own
 * claims and completions for a connection. It reconnects by itself after the
 * server restarts.
 */
export class LivenessSession {
  private client?: Client
  private closed = false
  private reconnecting = false
  private readonly wrappers = new WeakMap<Client, {query: Client['query']; release(): void}>()
  /** Statements on this session (the heartbeat): fail at once while it reconnects, as a lost connection does. */
  readonly db: Kysely<Database> = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool: {
        connect: async () => {
          const client = this.client
          if (!client) throw Object.assign(new Error('Connection terminated: the liveness session is reconnecting'), {code: '08006'})
          let wrapper = this.wrappers.get(client)
          if (!wrapper) this.wrappers.set(client, (wrapper = {query: client.query.bind(client) as Client['query'], release() {}}))
          return wrapper as never
        },
        end: async () => {},
      },
    }),
  })

  constructor(
    private readonly url: string,
    private readonly workerId: string,
    private readonly lockKey: number,
    private readonly handlers: {onNotify: (kind: string) => void; onReconnect: () => void; onRevoked: () => void},
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy,
    private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
  ) {}

  /** Whether the session (and so the liveness lock) is held right now. */
  get connected(): boolean {
    return this.client !== undefined
  }

  /** First connection: fails if another live process holds this worker id. */
  async open(): Promise<void> {
    const ok = await this.connect()
    if (!ok) {
      throw new RvxError(`worker id ${this.workerId} is in use by a live worker: choose another worker id, or stop that worker first`, {
        code: 'worker_id_in_use',
      })
    }
  }

  /** Ends the session (within a bound: a half-open connection would never answer the goodbye). */
  async close(): Promise<void> {
    this.closed = true
    const client = this.client
    this.client = undefined
    if (!client) return
    const ended = client.end().catch(() => {})
    const timer = setTimeout(() => (client as unknown as {connection?: {stream?: {destroy(): void}}}).connection?.stream?.destroy(), 3000)
    timer.unref()
    await ended
    clearTimeout(timer)
  }

  private async connect(): Promise<boolean> {
    const client: Client = new BoundedClient({
      connectionString: this.url,
      ...clientOptions(this.limits),
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
    await applySessionLimits(client, this.limits)
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
