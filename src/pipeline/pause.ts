import {sql} from '../db/kysely.js'
import {type Executor, inTransaction} from '../db/executor.js'
import type {RunRow} from '../db/schema.js'
import {pauseScope, resumeScope} from '../runtime/scopes.js'
import {RvxError} from '../shared/errors.js'
import {runScope} from './run-options.js'
import {lockRun, resumeRun} from './runs.js'

/**
 * Pauses a run fleet-wide: no worker claims its tasks (the runtime skips a
 * paused scope), tasks already running finish and their results count, and
 * a task claimed just before (waiting for a slot) goes back unpaid (the
 * stage's guard sees paused_at). `continueRun` lifts it. Idempotent.
 */
export async function pauseRun(db: Executor, runId: number): Promise<RunRow> {
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    if (run.status !== 'running' && run.status !== 'needs_decision')
      throw new RvxError(`run ${runId} is ${run.status}: only a run still going (or waiting for a decision) can be paused`, {code: 'run_state'})
    await pauseScope(trx, runScope(runId), `run ${runId} paused`)
    return trx
      .updateTable('runs')
      .set({paused_at: sql`coalesce(paused_at, now())` as never, updated_at: sql`now()` as never})
      .where('id', '=', runId)
      .returningAll()
      .executeTakeFirstOrThrow()
  })
}

/** Lifts a run's pause (its workers claim its tasks again); false when it was not paused. */
export async function unpauseRun(db: Executor, runId: number): Promise<boolean> {
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    const lifted = await resumeScope(trx, runScope(runId))
    if (run.paused_at === null && !lifted) return false
    await trx
      .updateTable('runs')
      .set({paused_at: null, updated_at: sql`now()` as never})
      .where('id', '=', runId)
      .execute()
    return true
  })
}

/**
 * What `rvx runs resume` does: lifts a pause, and resumes a run that stopped
 * (needs a decision, failed, interrupted) or is given changes, as resumeRun
 * does. A paused run that is still running only has its pause lifted (its
 * discovery rounds and tasks are left as they are).
 */
export async function continueRun(db: Executor, runId: number, changes: Parameters<typeof resumeRun>[2] = {}): Promise<{unpaused: boolean}> {
  const unpaused = await unpauseRun(db, runId)
  const changing = Object.values(changes).some((v) => v !== undefined && !(Array.isArray(v) && v.length === 0))
  const run = await db.selectFrom('runs').select('status').where('id', '=', runId).executeTakeFirstOrThrow()
  if (!unpaused || run.status !== 'running' || changing) await resumeRun(db, runId, changes)
  return {unpaused}
}

/** A run's status as people see it: `paused` while a run still going is paused. */
export function shownStatus(status: string, paused: boolean): string {
  return paused && (status === 'running' || status === 'needs_decision') ? 'paused' : status
}
