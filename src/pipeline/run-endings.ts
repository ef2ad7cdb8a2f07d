import {type RawBuilder, sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {RunStatus} from '../db/schema.js'
import {formatAge} from '../shared/duration.js'
import {formatRunCost} from '../shared/money.js'
import {runCounts, simulatedRun} from './run-counts.js'

/** How a run ended, in the figures people ask for first. */
export interface RunEnding {
  id: number
  status: RunStatus
  /** Companies delivered (the export's rows), and their contacts. */
  companies: number
  contacts: number
  costUsd: number
  /** Simulated: the cost is what the calls would have cost. */
  simulated: boolean
  /** From its creation to its end (or to now, for one waiting on a decision). */
  tookS: number
  exportPath: string | null
  notes: string | null
}

/** Runs that completed, or stopped for a decision, within `withinMs` (database clock), oldest first. */
export async function recentEndings(db: Executor, withinMs: number): Promise<RunEnding[]> {
  return endings(
    db,
    sql`(r.status = 'completed' and r.finished_at > now() - ${withinMs}::float8 * interval '1 millisecond')
       or (r.status = 'needs_decision' and r.updated_at > now() - ${withinMs}::float8 * interval '1 millisecond')`,
  )
}

/** One run's figures as they stand (for a run still going, "took" is so far). */
export async function runEnding(db: Executor, runId: number): Promise<RunEnding | undefined> {
  return (await endings(db, sql`r.id = ${runId}`))[0]
}

async function endings(db: Executor, where: RawBuilder<unknown>): Promise<RunEnding[]> {
  const {rows} = await sql<{
    id: number
    status: RunStatus
    provider: string
    cost: string
    took_s: number
    export_path: string | null
    notes: string | null
  }>`
    select r.id, r.status, r.provider, r.export_path, r.notes,
      (select coalesce(sum(l.cost_usd), 0)::text from llm_calls l where l.run_id = r.id) as cost,
      extract(epoch from coalesce(r.finished_at, case when r.status = 'running' then now() else r.updated_at end) - r.created_at)::float8 as took_s
    from runs r
    where ${where}
    order by r.id`.execute(db)
  // What it delivers, as its export holds it (one definition: run-counts.ts).
  const counts = await runCounts(
    db,
    rows.map((r) => Number(r.id)),
  )
  return rows.map((r) => {
    const c = counts.get(Number(r.id))!
    return {
      id: Number(r.id),
      status: r.status,
      companies: c.companies.delivered,
      contacts: c.contacts.delivered,
      costUsd: Number(r.cost),
      simulated: simulatedRun(r),
      tookS: r.took_s,
      exportPath: r.export_path,
      notes: r.notes,
    }
  })
}

/** "run 6 completed: 30 companies, 71 contacts, $0.41, 2m 10s". */
export function describeEnding(e: Pick<RunEnding, 'id' | 'status' | 'companies' | 'contacts' | 'costUsd' | 'simulated' | 'tookS'>): string {
  const status = e.status === 'needs_decision' ? 'needs a decision' : e.status
  return `run ${e.id} ${status}: ${e.companies} compan${e.companies === 1 ? 'y' : 'ies'}, ${e.contacts} contact${e.contacts === 1 ? '' : 's'}, ${formatRunCost(e.costUsd, e.simulated)}, ${formatAge(e.tookS)}`
}
