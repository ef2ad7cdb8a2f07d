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
  private upSince: number | null = null

  constructor(
    private readonly log: Logger,
    private readonly backoff: BackoffPolicy,
    /** What this process does not do meanwhile, said with the outage. */
    private readonly meanwhile?: string,
  ) {}

  /** Something failed talking to the database (`during` says what): logged once per outage. */
  down(error: unknown, during: string): void {
    if (this.downSince !== null) return
    this.downSince = Date.now()
    const what = isConnectionError(error) ? 'database unavailable; retrying' : 'database error; retrying'
    this.log.warn({err: errorMessage(error), during}, this.meanwhile ? `${what}: ${this.meanwhile}` : what)
  }

  /** A statement went through: the outage, if there was one, is over. */
  up(): void {
    if (this.downSince === null) return
    this.log.info({downMs: Date.now() - this.downSince}, 'database available again')
    this.downSince = null
    this.upSince = Date.now()
  }

  /**
   * How long the database has answered without a break, as far as this
   * process knows: 0 while it is away, null when it never was (the sweep
   * then goes by the server's start time alone).
   */
  reachableForMs(): number | null {
    if (this.downSince !== null) return 0
    return this.upSince === null ? null : Date.now() - this.upSince
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
