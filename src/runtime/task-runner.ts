import type {Kysely} from 'kysely'

import {isDatabaseWait, isTransientDatabaseError} from '../db/connection-errors.js'
import type {Database} from '../db/schema.js'
import {backoffMs, serverDelayMs, sleep} from './backoff.js'
import type {CompletionBatcher} from './completion-batcher.js'
import type {RuntimeConfig} from './config.js'
import {classifyError, type ErrorClass, errorMessage} from './errors.js'
import type {HandlerOutcome, TaskContext, TaskRegistry} from './handlers.js'
import type {InFlight} from './inflight.js'
import {completeTask, failTask, releaseTask, snoozeTask} from './lease.js'
import type {Logger} from './logger.js'

export interface TaskRunnerDeps {
  db: Kysely<Database>
  workerId: string
  registry: TaskRegistry
  config: RuntimeConfig
  log: Logger
  completions: CompletionBatcher
  /** Runs a settling write, retrying it across a database restart. */
  retryDb<T>(fn: () => Promise<T>): Promise<T>
  /** A settling write failed in a way that may have left its task leased here without a record of it. */
  settleLost(): void
  /** The handler is done and only a batched completion is left: its slot may take the next task. */
  handlerDone(entry: InFlight): void
  /** What the worker counts as tasks settle. */
  tally: {completed(kind: string, handlerMs: number): void; failed(kind: string): void; retried(): void; snoozed(): void}
  /** A settlement the fence refused: finds out why (canceled, or fenced out), counts it, and logs it (`warn` when fenced out). */
  lost(entry: InFlight, warn: () => void): Promise<void>
}

/** A handler's failures so far, in this lease (made on the first). */
interface Retrying {
  transientTries: number
  databaseWaits: number
  /** Database waits are retried until then (from the task's start, the worker's outage allowance). */
  waitForDatabaseUntil: number
}

/** What a handler is given: a small object per task, its signal made only if the handler reads it. */
class Context implements TaskContext {
  constructor(
    private readonly entry: InFlight,
    readonly workerId: string,
    readonly attempt: number,
    readonly db: Kysely<Database>,
    readonly log: Logger,
  ) {}

  get signal(): AbortSignal {
    return this.entry.signal
  }
}

/**
 * Executes one claimed task under its lease: runs its handler (transient
 * errors retried inside the lease), then completes it (with the handler's
 * writes, fenced), snoozes it (rate limits: no attempt used), or fails the
 * attempt (backoff, then the terminal failed state). A task whose lease was
 * lost meanwhile writes nothing.
 */
export class TaskRunner {
  constructor(private readonly d: TaskRunnerDeps) {}

  async run(entry: InFlight): Promise<void> {
    const {d} = this
    const {task} = entry
    const {handler} = d.registry.get(task.kind)!
    const runStarted = performance.now()
    let retrying: Retrying | undefined
    let outcome: HandlerOutcome | void
    let handlerMs = 0
    for (;;) {
      try {
        const started = performance.now()
        outcome = await handler(task, new Context(entry, d.workerId, task.attempts + 1, d.db, d.log))
        handlerMs = performance.now() - started
        break
      } catch (error) {
        retrying ??= {transientTries: 0, databaseWaits: 0, waitForDatabaseUntil: runStarted + d.config.outageRetryMs}
        if (!(await this.tryAgain(entry, error, retrying))) return
      }
    }

    // A lost lease's finished handler goes to the fence all the same (it rejects it, on the record); a forced stop's does not.
    if (entry.detached && !entry.lost) return
    if (!outcome?.apply) d.handlerDone(entry)
    let done: boolean
    try {
      done = outcome?.apply
        ? await d.retryDb(() => completeTask(d.db, entry.lease, {result: outcome.result, apply: outcome.apply}))
        : await d.completions.complete({taskId: task.id, epoch: task.epoch, result: outcome ? outcome.result : undefined})
    } catch (error) {
      // Still no database after the outage allowance: the task may be settled or not; the next heartbeat finds out.
      if (isTransientDatabaseError(error)) {
        d.settleLost()
        throw error
      }

      // The result could not be written (a value the database refuses, a broken constraint): that is this attempt
      // failing, exactly like a handler that throws, so a poison result ends after its attempts instead of looping.
      await this.settleFailure(entry, new Error(`its result could not be saved: ${errorMessage(error)}`), {type: 'error'})
      return
    }

    if (done) {
      d.tally.completed(task.kind, handlerMs)
      d.log.debug({task: task.id, kind: task.kind, ms: Date.now() - entry.startedAt}, 'task completed')
      if (outcome?.after) {
        await outcome
          .after()
          .catch((error: unknown) =>
            d.log.warn(
              {task: task.id, kind: task.kind, err: errorMessage(error)},
              'follow-up of a completed task failed; the next completion or the monitor does it',
            ),
          )
      }
    } else {
      await d.lost(entry, () =>
        d.log.warn(
          {task: task.id, kind: task.kind, epoch: task.epoch},
          'completion fenced out: the lease moved on (this worker was presumed dead, or the lease ran out)',
        ),
      )
    }
  }

  /** A handler threw: true to run it again (within the lease), false when the task is settled or no longer this worker's. */
  private async tryAgain(entry: InFlight, error: unknown, retrying: Retrying): Promise<boolean> {
    const {d} = this
    const {task} = entry
    if (entry.detached) return false
    // The database was away, out of connections or too slow for the handler's reads: an infrastructure wait, like
    // an outage, never one of the task's attempts (a fleet short of connections must not burn its tasks).
    if (isDatabaseWait(error) && !entry.signal.aborted && performance.now() < retrying.waitForDatabaseUntil) {
      const delay = backoffMs(Math.min(++retrying.databaseWaits, 8), d.config.reconnectBackoff)
      d.log.debug({task: task.id, kind: task.kind, err: errorMessage(error), retryInMs: delay}, 'database unavailable to a handler; trying again in lease')
      await sleep(delay, entry.signal).catch(() => {})
      return !entry.detached
    }

    const kind = classifyError(error)
    const retries = d.registry.get(task.kind)?.options.transientRetries ?? d.config.transientRetries
    if (kind.type === 'transient' && retrying.transientTries < retries && !entry.signal.aborted) {
      const delay = backoffMs(++retrying.transientTries, d.config.transientBackoff)
      d.log.warn({task: task.id, kind: task.kind, err: errorMessage(error), retryInMs: delay}, 'transient error; retrying in lease')
      d.tally.retried()
      await sleep(delay, entry.signal)
      return !entry.detached
    }

    await this.settleFailure(entry, error, kind)
    return false
  }

  private async settleFailure(entry: InFlight, error: unknown, kind: ErrorClass): Promise<void> {
    const {d} = this
    const {task} = entry
    let message = errorMessage(error)
    let permanent = kind.type === 'permanent'
    if (kind.type === 'release') {
      const ok = await d
        .retryDb(() => releaseTask(d.db, entry.lease, message))
        .catch((failure: unknown) => {
          d.settleLost()
          throw failure
        })
      if (!ok) return d.lost(entry, () => d.log.warn({task: task.id, kind: task.kind, epoch: task.epoch}, 'release fenced out: the lease moved on'))
      d.log.debug({task: task.id, kind: task.kind, reason: message}, 'task released unstarted (no attempt used)')
      return
    }

    if (kind.type === 'snooze') {
      if (task.snoozes < d.config.snooze.maxSnoozes) {
        const delayMs = serverDelayMs(kind.retryAfterMs, task.snoozes + 1, d.config.snooze)
        const ok = await d
          .retryDb(() => snoozeTask(d.db, entry.lease, delayMs, message))
          .catch((failure: unknown) => {
            d.settleLost()
            throw failure
          })
        if (!ok) return d.lost(entry, () => d.log.warn({task: task.id, kind: task.kind, epoch: task.epoch}, 'snooze fenced out: the lease moved on'))
        d.tally.snoozed()
        d.log.warn({task: task.id, kind: task.kind, snoozeMs: delayMs, askedMs: kind.retryAfterMs}, 'rate limited; task snoozed (no attempt used)')
        return
      }

      // Rate limited over and over: retrying forever only burns the quota; a person decides.
      permanent = true
      message = `rate limited ${task.snoozes + 1} times (last: ${message}): the rate limit is too tight for this fleet; lower its concurrency or raise the quota, then retry the task`
    }

    const retryInMs = backoffMs(task.attempts + 1, d.config.attemptBackoff)
    const onFailed = d.registry.get(task.kind)?.options.onFailed
    let outcome
    try {
      outcome = await d.retryDb(() =>
        failTask(d.db, entry.lease, message, {permanent, retryInMs, onTerminal: onFailed ? (trx) => onFailed(trx, task, error) : undefined}),
      )
    } catch (failure) {
      d.settleLost()
      throw failure
    }
    if (outcome === 'fenced_out') {
      await d.lost(entry, () => d.log.warn({task: task.id, kind: task.kind, epoch: task.epoch, err: message}, 'failed attempt fenced out: the lease moved on'))
      return
    }

    d.tally.failed(task.kind)
    d.log.warn(
      {task: task.id, kind: task.kind, err: message, outcome, retryInMs: outcome === 'retry_scheduled' ? retryInMs : undefined},
      outcome === 'failed' ? 'task failed' : 'attempt failed; retry scheduled',
    )
  }
}
