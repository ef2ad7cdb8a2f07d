import {isConnectionError} from '../db/connection-errors.js'
import {backoffMs, sleep} from './backoff.js'
import type {BackoffPolicy} from './config.js'
import {errorMessage} from './errors.js'
import type {Logger} from './logger.js'

/**
 * A worker's view of its database being away: it says so once when the
 * database goes, once when it is back, and retries writes that must not be
 * lost (settling a task) across a restart.
 */
export class DatabaseOutage {
  private downSince: number | null = null

  constructor(
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy,
  ) {}

  /** Something failed talking to the database (`during` says what): logged once per outage. */
  down(error: unknown, during: string): void {
    if (this.downSince !== null) return
    this.downSince = Date.now()
    this.log.warn({err: errorMessage(error), during}, isConnectionError(error) ? 'database unavailable; retrying' : 'database error; retrying')
  }

  /** A statement went through: the outage, if there was one, is over. */
  up(): void {
    if (this.downSince === null) return
    this.log.info({downMs: Date.now() - this.downSince}, 'database available again')
    this.downSince = null
  }

  /** Runs `fn`, retrying connection errors with backoff until it goes through or `deadlineMs` has passed. */
  async retry<T>(fn: () => Promise<T>, deadlineMs: number): Promise<T> {
    const start = Date.now()
    for (let n = 1; ; n++) {
      try {
        return await fn()
      } catch (error) {
        if (!isConnectionError(error) || Date.now() - start > deadlineMs) throw error
        this.down(error, 'write')
        await sleep(backoffMs(n, this.backoff))
      }
    }
  }
}
