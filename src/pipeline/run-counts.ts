import {type RawBuilder, sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'

// A run's numbers, each defined once: companies by status, what the run delivers (the companies and contacts its
// export holds), and what a lead cost. runs show, runs list, the summary, the dashboard and the monitor read them here.

export interface CompanyCounts {
  candidate: number
  qualified: number
  disqualified: number
  selected: number
}

export interface RunCounts {
  /** By status; `total` is every company found; `delivered` the companies the export holds (its leads). */
  companies: CompanyCounts & {total: number; delivered: number}
  /** `delivered`: the rows of the export's contacts; `dropped`: found for companies that left the running later. */
  contacts: {delivered: number; dropped: number}
}

/** A run's companies by status (what its advance rules decide on). */
export async function companyCounts(db: Executor, runId: number): Promise<CompanyCounts> {
  return (await companyCountsByRun(db, [runId])).get(runId)!
}

/** Each run's companies by status (runs without companies: zeros). */
export async function companyCountsByRun(db: Executor, runIds: number[]): Promise<Map<number, CompanyCounts>> {
  const out = new Map<number, CompanyCounts>(runIds.map((id) => [id, {candidate: 0, qualified: 0, disqualified: 0, selected: 0}]))
  if (runIds.length === 0) return out
  const rows = await db
    .selectFrom('companies')
    .select(['run_id', 'status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('run_id', 'in', runIds)
    .groupBy(['run_id', 'status'])
    .execute()
  for (const r of rows) out.get(Number(r.run_id))![r.status] = Number(r.n)
  return out
}

/**
 * SQL: the ids of the companies run `runId` delivers, which its export writes: the selected ones; a run that stopped
 * with none selected delivers its best qualified (by ICP score, then oldest), up to its quantity.
 */
export function deliveredCompanyIds(runId: number | RawBuilder<unknown>): RawBuilder<{id: number}> {
  // Aliases of their own: `runId` may be a column of the query this is part of.
  return sql<{id: number}>`
    select ds.id from companies ds where ds.run_id = ${runId} and ds.status = 'selected'
    union all
    (select dq.id from companies dq
     where dq.run_id = ${runId} and dq.status = 'qualified'
       and not exists (select from companies dx where dx.run_id = ${runId} and dx.status = 'selected')
     order by dq.icp_score desc, dq.id
     limit (select dr.quantity from runs dr where dr.id = ${runId}))`
}

/** Each run's counts (runs that do not exist: zeros). */
export async function runCounts(db: Executor, runIds: number[]): Promise<Map<number, RunCounts>> {
  const byStatus = await companyCountsByRun(db, runIds)
  const {rows} =
    runIds.length === 0
      ? {rows: []}
      : await sql<{run_id: number; delivered: number; contacts: number; contacts_delivered: number}>`
          select r.id::int as run_id,
            (select count(*) from (${deliveredCompanyIds(sql`r.id`)}) d)::int as delivered,
            (select count(*) from contacts k where k.run_id = r.id)::int as contacts,
            (select count(*) from contacts k where k.run_id = r.id and k.company_id in (${deliveredCompanyIds(sql`r.id`)}))::int as contacts_delivered
          from unnest(${runIds}::bigint[]) as r(id)`.execute(db)
  const delivery = new Map(rows.map((r) => [Number(r.run_id), r]))
  return new Map(
    runIds.map((id) => {
      const c = byStatus.get(id)!
      const d = delivery.get(id)
      return [
        id,
        {
          companies: {...c, total: c.candidate + c.qualified + c.disqualified + c.selected, delivered: d?.delivered ?? 0},
          contacts: {delivered: d?.contacts_delivered ?? 0, dropped: (d?.contacts ?? 0) - (d?.contacts_delivered ?? 0)},
        },
      ]
    }),
  )
}

/** Dollars per lead: the run's cost over the companies it delivers; null before it delivers any. */
export function costPerLead(costUsd: number, deliveredCompanies: number): number | null {
  return deliveredCompanies > 0 ? costUsd / deliveredCompanies : null
}

/** A simulated run's dollar figures are what its calls would have cost: nothing was billed. */
export function simulatedRun(run: {provider: string}): boolean {
  return run.provider === 'simulated'
}
