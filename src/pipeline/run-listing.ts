import type {Executor} from '../db/executor.js'
import type {RunRow, RunStatus} from '../db/schema.js'
import {type RunUsage, usageByRun} from './usage.js'

export const RUN_STATUSES: readonly RunStatus[] = ['running', 'needs_decision', 'completed', 'failed', 'canceled']

/** Runs newest first (only those in `status`, when given), each with its selected companies (its leads) and what its model calls cost. */
export async function listRunsWithSpend(db: Executor, f: {status?: RunStatus; limit: number}): Promise<Array<RunRow & {selected: number; usage: RunUsage}>> {
  let query = db.selectFrom('runs').selectAll().orderBy('id', 'desc').limit(f.limit)
  if (f.status) query = query.where('status', '=', f.status)
  const runs = await query.execute()
  if (runs.length === 0) return []
  const ids = runs.map((r) => r.id)
  const usage = await usageByRun(db, ids)
  const selected = await db
    .selectFrom('companies')
    .select(['run_id', (eb) => eb.fn.countAll<number>().as('n')])
    .where('run_id', 'in', ids)
    .where('status', '=', 'selected')
    .groupBy('run_id')
    .execute()
  const selectedOf = new Map(selected.map((r) => [Number(r.run_id), Number(r.n)]))
  return runs.map((r) => ({...r, selected: selectedOf.get(r.id) ?? 0, usage: usage.get(r.id)!}))
}

/** A page of run ids, newest first, older than `beforeId` (a cursor), in `status` when given. */
export async function runIdsPage(db: Executor, f: {status?: RunStatus; beforeId?: number; limit: number}): Promise<Array<{id: number}>> {
  return db
    .selectFrom('runs')
    .select('id')
    .$if(f.status !== undefined, (q) => q.where('status', '=', f.status!))
    .$if(f.beforeId !== undefined, (q) => q.where('id', '<', f.beforeId!))
    .orderBy('id', 'desc')
    .limit(f.limit)
    .execute()
}
