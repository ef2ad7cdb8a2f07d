import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {RunStatus} from '../db/schema.js'
import {pruneScopeTasks, pruneStandaloneTasks, type PruneResult, scopesWithTasks} from '../runtime/retention.js'
import {runScope} from './run-options.js'

/** A run in one of these states does no more work (a failed one may be resumed: then it is running again). */
export const FINISHED_RUN_STATUSES: RunStatus[] = ['completed', 'failed', 'canceled']

/**
 * Runs whose tasks are never needed again: neither can be resumed. A failed run's tasks stay (resuming it retries
 * its failed tasks and those its failure canceled: without them its candidates would never be researched).
 */
const DONE_FOR_GOOD: RunStatus[] = ['completed', 'canceled']

/** Runs in `statuses` whose finished_at is older than `olderThanMs` (database clock), oldest first. */
async function finishedRuns(ex: Executor, olderThanMs: number, statuses: RunStatus[]): Promise<Array<{id: number; finishedAt: number}>> {
  const rows = await ex
    .selectFrom('runs')
    .select(['id', 'finished_at'])
    .where('status', 'in', statuses)
    .where('finished_at', '<', sql<Date>`now() - ${olderThanMs}::float8 * interval '1 millisecond'`)
    .orderBy('id')
    .execute()
  return rows.map((r) => ({id: r.id, finishedAt: r.finished_at!.getTime()}))
}

/**
 * The monitor's retention: the task rows and events of runs completed or
 * canceled more than the retention ago, and of standalone tasks finished that
 * long ago, go; the runs' own data stays (rvx runs prune removes whole runs).
 * Runs already emptied are remembered, so a pass looks only at new ones.
 */
export class QueueRetention {
  /** Runs found without tasks, with the finished_at they had then: should one finish again later, it is looked at anew. */
  private readonly emptied = new Map<number, number>()

  constructor(private readonly retentionMs: number) {}

  /** One pass, batch by batch, until nothing is left or `deadline` (Date.now() ms) has passed. */
  async prune(ex: Executor, deadline?: number): Promise<PruneResult & {runs: number}> {
    const runs = (await finishedRuns(ex, this.retentionMs, DONE_FOR_GOOD)).filter((r) => this.emptied.get(r.id) !== r.finishedAt)
    const withTasks = await scopesWithTasks(
      ex,
      runs.map((r) => runScope(r.id)),
    )
    const pending = runs.filter((r) => withTasks.has(runScope(r.id)))
    for (const r of runs) if (!withTasks.has(runScope(r.id))) this.emptied.set(r.id, r.finishedAt)
    const ofRuns = await pruneScopeTasks(
      ex,
      pending.map((r) => runScope(r.id)),
      {deadline},
    )
    const standalone = await pruneStandaloneTasks(ex, this.retentionMs, {deadline})
    return {
      runs: pending.length,
      tasks: ofRuns.tasks + standalone.tasks,
      events: ofRuns.events + standalone.events,
      batches: ofRuns.batches + standalone.batches,
      left: ofRuns.left || standalone.left,
    }
  }
}

export interface PrunableRun {
  id: number
  status: RunStatus
  finishedAt: Date
  companies: number
  contacts: number
  llmCalls: number
}

/** Finished runs older than `olderThanMs` and what removing each takes with it. */
export async function prunableRuns(ex: Executor, olderThanMs: number): Promise<PrunableRun[]> {
  const ids = (await finishedRuns(ex, olderThanMs, FINISHED_RUN_STATUSES)).map((r) => r.id)
  if (ids.length === 0) return []
  const {rows} = await sql<{id: number; status: RunStatus; finished_at: Date; companies: number; contacts: number; llm_calls: number}>`
    select r.id, r.status, r.finished_at,
      (select count(*) from companies c where c.run_id = r.id)::int as companies,
      (select count(*) from contacts c where c.run_id = r.id)::int as contacts,
      (select count(*) from llm_calls l where l.run_id = r.id)::int as llm_calls
    from runs r where r.id = any(${ids}::bigint[])
    order by r.id`.execute(ex)
  return rows.map((r) => ({
    id: Number(r.id),
    status: r.status,
    finishedAt: r.finished_at,
    companies: r.companies,
    contacts: r.contacts,
    llmCalls: r.llm_calls,
  }))
}

/**
 * Removes a finished run whole: its tasks and events (in batches), then the
 * run, whose companies, contacts, verdicts, model calls and alerts go with it
 * (on delete cascade). False when the run is gone or no longer finished
 * (resumed meanwhile): nothing of it is removed then.
 */
export async function pruneRun(ex: Executor, runId: number): Promise<{removed: boolean; tasks: number; events: number}> {
  const finished = await ex.selectFrom('runs').select('id').where('id', '=', runId).where('status', 'in', FINISHED_RUN_STATUSES).executeTakeFirst()
  if (!finished) return {removed: false, tasks: 0, events: 0}
  const {tasks, events} = await pruneScopeTasks(ex, [runScope(runId)])
  // A resume between the two statements puts the run back to running: the delete below then leaves it (and its new tasks).
  const gone = await ex.deleteFrom('runs').where('id', '=', runId).where('status', 'in', FINISHED_RUN_STATUSES).executeTakeFirst()
  return {removed: Number(gone.numDeletedRows) > 0, tasks, events}
}
