import type {Kysely, Transaction} from 'kysely'

import type {Database} from '../db/schema.js'
import type {ClaimedTask} from './lease.js'
import type {Logger} from './logger.js'

export interface TaskContext {
  /** Aborted when the lease is lost or the worker is forced to stop: stop paid work at once. */
  signal: AbortSignal
  workerId: string
  /** Which attempt this is: failed attempts so far + 1 (crashes, snoozes and in-lease retries do not count). */
  attempt: number
  /** For reads; writes that belong with the result go in the outcome's `apply` (same transaction as the completion). */
  db: Kysely<Database>
  log: Logger
}

export interface HandlerOutcome {
  /** Stored on the task row as jsonb. */
  result?: unknown
  /** Runs inside the completion transaction, after the fence: these writes commit only if the lease still holds. */
  apply?: (trx: Transaction<Database>) => Promise<void>
  /**
   * Runs after the completion committed (only then): work that follows from the result but must not lengthen the
   * completion's transaction, such as taking a shared row. Its failure is logged; the completion stands.
   */
  after?: () => Promise<void>
}

export type TaskHandler<P = any> = (task: ClaimedTask<P>, ctx: TaskContext) => Promise<HandlerOutcome | void>

export interface KindOptions {
  /** Overrides the worker's transient-retry count for this kind. */
  transientRetries?: number
  /** Runs in the transaction that fails a task for good (attempts used up, or a permanent error), with the error that ended it. */
  onFailed?: (trx: Transaction<Database>, task: ClaimedTask, error: unknown) => Promise<void>
}

/** Task kind -> handler. The runtime knows kinds only as names. */
export class TaskRegistry {
  private readonly handlers = new Map<string, {handler: TaskHandler; options: KindOptions}>()

  register<P>(kind: string, handler: TaskHandler<P>, options: KindOptions = {}): this {
    if (this.handlers.has(kind)) throw new Error(`a handler for task kind "${kind}" is already registered`)
    this.handlers.set(kind, {handler: handler as TaskHandler, options})
    return this
  }

  get(kind: string): {handler: TaskHandler; options: KindOptions} | undefined {
    return this.handlers.get(kind)
  }

  kinds(): string[] {
    return [...this.handlers.keys()]
  }
}
