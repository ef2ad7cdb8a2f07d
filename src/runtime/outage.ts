import {isConnectionError, isConnectionRefusal, isTransientDatabaseError} from '../db/connection-errors.js'
import {backoffMs, sleep} from './backoff.js'
import type {BackoffPolicy} from './config.js'
import {errorMessage} from './errors.js'
import type {Logger} from './logger.js'

/**
 * A worker's view of its database being away: it says so once when the
 * database goes, once when it is back, and retries writes that must not be
 * lost (settling a task) across a restart. Times are monotonic
 * (performance.now()): a step of the wall clock changes no reckoning.
 */
export class DatabaseOutage {
  private downSince: number | null = null
  private upSince: number | null = null
  private refused = false
  private readonly onUp: Array<() => void> = []

  constructor(
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy,
    /** What this process does not do meanwhile, said with the outage. */
    private readonly meanwhile?: string,
  ) {}

  /** Something failed talking to the database (`during` says what): logged once per outage. */
  down(error: unknown, during: string): void {
    if (isConnectionRefusal(error)) this.refused = true
    if (this.downSince !== null) return
    this.downSince = performance.now()
    const what = isConnectionError(error) ? 'database unavailable; retrying' : 'database error; retrying'
    this.log.warn({err: errorMessage(error), during}, this.meanwhile ? `${what}: ${this.meanwhile}` : what)
  }

  /** A statement went through: the outage, if there was one, is over. */
  up(): void {
    if (this.downSince === null) return
    this.log.info({downMs: Math.round(performance.now() - this.downSince)}, 'database available again')
    this.downSince = null
    this.upSince = performance.now()
    for (const fn of this.onUp) fn()
  }

  /** Called each time the database is back after an outage. */
  whenBack(fn: () => void): void {
    this.onUp.push(fn)
  }

  /** Whether PostgreSQL refused a connection (too many clients) since the last call. */
  takeRefused(): boolean {
    const refused = this.refused
    this.refused = false
    return refused
  }

  /**
   * How long the database has answered without a break, as far as this
   * process knows: 0 while it is away, null when it never was (the sweep
   * then goes by the server's start time alone).
   */
  reachableForMs(): number | null {
    if (this.downSince !== null) return 0
    return this.upSince === null ? null : performance.now() - this.upSince
  }

  /**
   * Runs `fn`, retrying with backoff while it fails for want of the database
   * (no connection, a timeout or lock wait that ran out, a deadlock), until it
   * goes through or `deadlineMs` has passed.
   */
  async retry<T>(fn: () => Promise<T>, deadlineMs: number): Promise<T> {
    const start = performance.now()
    for (let n = 1; ; n++) {
      try {
        return await fn()
      } catch (error) {
        if (!isTransientDatabaseError(error) || performance.now() - start > deadlineMs) throw error
        if (isConnectionError(error)) this.down(error, 'write')
        await sleep(backoffMs(n, this.backoff))
      }
    }
  }
}
