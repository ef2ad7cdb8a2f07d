import type {Executor} from '../db/executor.js'

/** A run's companies by status. */
export async function companyCounts(db: Executor, runId: number): Promise<{candidate: number; qualified: number; disqualified: number; selected: number}> {
  const rows = await db
    .selectFrom('companies')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('run_id', '=', runId)
    .groupBy('status')
    .execute()
  const out = {candidate: 0, qualified: 0, disqualified: 0, selected: 0}
  for (const r of rows) out[r.status] = Number(r.n)
  return out
}
