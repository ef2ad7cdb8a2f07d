import type {Executor} from '../db/executor.js'
import type {RunRow, RunStatus} from '../db/schema.js'
import {costPerLead, type RunCounts, runCounts, simulatedRun} from './run-counts.js'
import {type RunUsage, usageByRun} from './usage.js'

export const RUN_STATUSES: readonly RunStatus[] = ['running', 'needs_decision', 'completed', 'failed', 'canceled']

export type ListedRun = RunRow & {counts: RunCounts; usage: RunUsage; costPerLead: number | null; simulated: boolean}

/** Runs newest first (only those in `status`, when given), each with its counts (its leads: the companies it delivers) and what its model calls cost. */
export async function listRunsWithSpend(db: Executor, f: {status?: RunStatus; limit: number}): Promise<ListedRun[]> {
  let query = db.selectFrom('runs').selectAll().orderBy('id', 'desc').limit(f.limit)
  if (f.status) query = query.where('status', '=', f.status)
  const runs = await query.execute()
  if (runs.length === 0) return []
  const ids = runs.map((r) => r.id)
  const usage = await usageByRun(db, ids)
  const counts = await runCounts(db, ids)
  return runs.map((r) => {
    const c = counts.get(r.id)!
    const u = usage.get(r.id)!
    return {...r, counts: c, usage: u, costPerLead: costPerLead(u.costUsd, c.companies.delivered), simulated: simulatedRun(r)}
  })
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
