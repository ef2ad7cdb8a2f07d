import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {RunStatus, TaskStatus} from '../db/schema.js'
import {scopesWithLiveTasks, taskCounts} from '../runtime/scopes.js'
import {type DropCount, dropsByReason} from './drops.js'
import {companyCountsByRun, costPerLead, type RunCounts, runCounts, simulatedRun} from './run-counts.js'
import type {Criteria} from './criteria.js'
import {runOptions, runScope} from './run-options.js'
import {getRun} from './runs.js'
import {STAGES, stagesOf} from './stages/index.js'
import type {ProgressFacts, StageName} from './stages/stage.js'
import {runUsage, type RunUsage} from './usage.js'
import {criteriaOf} from './verification.js'

// The read models of runs: progress for runs show and the summary, the overview for runs list and the dashboard,
// and what the monitor and the fleet view watch. Nothing here writes.

/** The figures every view of a run shows the same way (see run-counts.ts). */
export interface RunFigures {
  companies: RunCounts['companies']
  /** Contacts delivered: the rows of the export's contacts. */
  contacts: number
  /** Contacts found for companies that left the running later (not delivered). */
  contactsDropped: number
  /** Cost over the companies delivered; null before the first. */
  costPerLead: number | null
  /** Simulated: the dollar figures are what the calls would have cost, nothing was billed. */
  simulated: boolean
}

/** A run's figures from its counts and cost. */
function figures(run: {provider: string}, counts: RunCounts, costUsd: number): RunFigures {
  return {
    companies: counts.companies,
    contacts: counts.contacts.delivered,
    contactsDropped: counts.contacts.dropped,
    costPerLead: costPerLead(costUsd, counts.companies.delivered),
    simulated: simulatedRun(run),
  }
}

/** A run in full: what progress lines (ProgressFacts), runs show and the summary are made of. */
export interface RunProgress extends RunFigures {
  id: number
  quantity: number
  status: RunStatus
  stage: string
  criteria: unknown
  provider: string
  notes: string | null
  createdAt: Date
  finishedAt: Date | null
  /** When it was paused (rvx runs pause), while it is; null when not paused. */
  pausedAt: Date | null
  /** Where its export was last written, if it was. */
  exportPath: string | null
  /** Per criterion (and the site check): selected companies it matched or left unknown, and candidates it kept out. */
  verdicts: Record<string, {selectedMatch: number; selectedUnknown: number; disqualified: number}>
  /** Companies that left the running, by reason (a company kept out by two criteria counts under both). */
  drops: DropCount[]
  /** Tasks by kind and status (every stage the run has, and any other kind it has tasks of). */
  tasks: Record<string, Record<TaskStatus, number>>
  usage: RunUsage
  /** The run's budget in US dollars (null: none). */
  maxUsd: number | null
  /** Domains kept out (delivered by earlier runs, or --exclude) when the run was created, and candidates dropped for it since. */
  suppression: {delivered: number; excluded: number; dropped: number}
}

/** Counts for `runs show`, progress lines and the summary. */
export async function runProgress(db: Executor, runId: number): Promise<RunProgress> {
  const run = await getRun(db, runId)
  const counts = (await runCounts(db, [runId])).get(runId)!
  const usage = await runUsage(db, runId)
  const tasks: RunProgress['tasks'] = {}
  const none = (): Record<TaskStatus, number> => ({queued: 0, running: 0, completed: 0, failed: 0, quarantined: 0, canceled: 0})
  for (const stage of stagesOf(run)) tasks[stage.kind] = none()
  for (const r of await taskCounts(db, runScope(runId))) (tasks[r.kind] ??= none())[r.status] += r.count

  return {
    id: run.id,
    status: run.status,
    stage: run.stage,
    quantity: run.quantity,
    criteria: run.criteria,
    provider: run.provider,
    notes: run.notes,
    createdAt: run.created_at,
    finishedAt: run.finished_at,
    pausedAt: run.paused_at,
    exportPath: run.export_path,
    ...figures(run, counts, usage.costUsd),
    verdicts: await verdictSummary(db, runId, [...criteriaOf(run.criteria as Criteria), 'site', 'portfolio']),
    drops: await dropsByReason(db, runId),
    tasks,
    usage,
    maxUsd: run.max_usd === null ? null : Number(run.max_usd),
    suppression: {...{delivered: 0, excluded: 0}, ...runOptions(run).keptOut, dropped: run.suppressed},
  }
}

async function verdictSummary(db: Executor, runId: number, keys: string[]): Promise<RunProgress['verdicts']> {
  const {rows} = await sql<{key: string; selected_match: number; selected_unknown: number; disqualified: number}>`
    select k.key,
      count(*) filter (where c.status = 'selected' and c.verdicts -> k.key ->> 'verdict' = 'match')::int as selected_match,
      count(*) filter (where c.status = 'selected' and c.verdicts -> k.key ->> 'verdict' = 'unknown')::int as selected_unknown,
      count(*) filter (where c.status = 'disqualified' and k.key = any(c.disqualified_by))::int as disqualified
    from unnest(${keys}::text[]) as k(key) left join companies c on c.run_id = ${runId}
    group by k.key`.execute(db)
  const byKey = new Map(rows.map((r) => [r.key, {selectedMatch: r.selected_match, selectedUnknown: r.selected_unknown, disqualified: r.disqualified}]))
  return Object.fromEntries(keys.map((k) => [k, byKey.get(k) ?? {selectedMatch: 0, selectedUnknown: 0, disqualified: 0}]))
}

/**
 * Runs marked running with no task queued or running: nothing will advance
 * them unless someone does (a stage task ended failed or quarantined).
 */
export async function runsWithNothingInFlight(db: Executor): Promise<number[]> {
  const running = (await db.selectFrom('runs').select('id').where('status', '=', 'running').orderBy('id').execute()).map((r) => r.id)
  const busy = await scopesWithLiveTasks(db, running.map(runScope))
  return running.filter((id) => !busy.has(runScope(id)))
}

export interface WatchedRun {
  id: number
  status: RunStatus
  stage: string
  quantity: number
  notes: string | null
  notifyEmail: string | null
  selected: number
  /** Seconds since the run row last changed (database clock). */
  sinceUpdateS: number
}

/**
 * Runs the monitor watches: live ones, those waiting on a person, those that
 * failed within `failedWithinMs`, and recently completed ones that asked to be mailed.
 */
export async function runsToWatch(db: Executor, failedWithinMs: number): Promise<WatchedRun[]> {
  const {rows} = await sql<{
    id: number
    status: RunStatus
    stage: string
    quantity: number
    notes: string | null
    notify_email: string | null
    since_update_s: number
  }>`
    select r.id, r.status, r.stage, r.quantity, r.notes, r.options ->> 'notifyEmail' as notify_email,
      extract(epoch from now() - r.updated_at)::float8 as since_update_s
    from runs r
    where r.status in ('running', 'needs_decision')
       or (r.status = 'failed' and r.finished_at > now() - ${failedWithinMs}::float8 * interval '1 millisecond')
       or (r.status = 'completed' and r.options ? 'notifyEmail' and r.finished_at > now() - interval '7 days')
    order by r.id`.execute(db)
  const counts = await companyCountsByRun(
    db,
    rows.map((r) => r.id),
  )
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    stage: r.stage,
    quantity: r.quantity,
    notes: r.notes,
    notifyEmail: r.notify_email,
    selected: counts.get(r.id)!.selected,
    sinceUpdateS: r.since_update_s,
  }))
}

/** How many runs are in each status. */
export async function runCountsByStatus(db: Executor): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('runs')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute()
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]))
}

export interface RunInProgress {
  id: number
  stage: string
  quantity: number
  /** How far each stage has come. */
  percent: Record<StageName, number>
}

/** Runs still running, with how far each stage has come (for the fleet view). */
export async function runsInProgress(db: Executor): Promise<RunInProgress[]> {
  return (await runsOverview(db, {status: 'running', limit: 1000})).reverse().map((r) => ({id: r.id, stage: r.stage, quantity: r.quantity, percent: r.percent}))
}

export interface RunSummary extends RunFigures {
  id: number
  status: RunStatus
  stage: string
  criteria: unknown
  quantity: number
  provider: string
  notes: string | null
  createdAt: Date
  finishedAt: Date | null
  /** Paused (rvx runs pause): no worker takes its tasks. */
  paused: boolean
  /** Seconds since it was created (database clock). */
  ageS: number
  /** Seconds it has been (or was) at work: until it finished, else until now. */
  elapsedS: number
  costUsd: number
  /** How far each stage has come. */
  percent: Record<StageName, number>
}

/**
 * Runs with their counts, cost and how far each stage has come, newest first
 * (`status` or `id` narrow it): a handful of index reads per run.
 */
export async function runsOverview(db: Executor, f: {status?: RunStatus; id?: number; limit: number; offset?: number}): Promise<RunSummary[]> {
  const {rows} = await sql<{
    id: number
    status: RunStatus
    stage: string
    criteria: unknown
    quantity: number
    provider: string
    notes: string | null
    created_at: Date
    finished_at: Date | null
    paused: boolean
    age_s: number
    elapsed_s: number
    oversample: number
    options: unknown
    done: Record<StageName, number>
    cost: string
  }>`
    select r.id, r.status, r.stage, r.criteria, r.quantity, r.provider, r.notes, r.created_at, r.finished_at, r.paused_at is not null as paused,
      extract(epoch from now() - r.created_at)::float8 as age_s,
      extract(epoch from coalesce(r.finished_at, now()) - r.created_at)::float8 as elapsed_s,
      coalesce((r.options ->> 'oversample')::float8, 2) as oversample, r.options,
      jsonb_build_object(${selectedDone()}) as done,
      (select coalesce(sum(l.cost_usd), 0)::text from llm_calls l where l.run_id = r.id) as cost
    from runs r
    where (${f.status ?? null}::text is null or r.status = ${f.status ?? null}) and (${f.id ?? null}::bigint is null or r.id = ${f.id ?? null})
    order by r.id desc
    limit ${f.limit} offset ${f.offset ?? 0}`.execute(db)
  const counts = await runCounts(
    db,
    rows.map((r) => Number(r.id)),
  )
  return rows.map((r) => {
    const c = counts.get(Number(r.id))!
    const costUsd = Number(r.cost)
    return {
      id: Number(r.id),
      status: r.status,
      stage: r.stage,
      criteria: r.criteria,
      quantity: r.quantity,
      provider: r.provider,
      notes: r.notes,
      createdAt: r.created_at,
      finishedAt: r.finished_at,
      paused: r.paused,
      ageS: r.age_s,
      elapsedS: r.elapsed_s,
      ...figures(r, c, costUsd),
      costUsd,
      percent: stagePercents(r, c.companies, r.done),
    }
  })
}

/**
 * SQL (run alias `r`): per `selected` stage, the selected companies it is done with (its `selectedDone`, or by default
 * a fact it stored about them), as jsonb_build_object's arguments.
 */
function selectedDone() {
  return sql.join(
    STAGES.filter((s) => s.trigger === 'selected').map((s) => {
      const done = s.selectedDone?.() ?? sql`exists (select from company_facts f where f.company_id = s.id and f.stage = ${s.name})`
      return sql`${s.name}::text, (select count(*)::int from companies s where s.run_id = r.id and s.status = 'selected' and ${done})`
    }),
  )
}

/**
 * How far each of the run's stages has come, as each declares it (`percent`);
 * a stage the run has moved past is done, and so is every stage of a
 * completed run.
 */
function stagePercents(
  r: {status: RunStatus; stage: string; quantity: number; oversample: number; options: unknown},
  c: ProgressFacts['companies'],
  done: Record<StageName, number>,
): Record<StageName, number> {
  const stages = stagesOf(r)
  const at = r.stage === 'done' ? stages.length : stages.findIndex((s) => s.name === r.stage)
  return Object.fromEntries(
    stages.map((s, i) => [s.name, r.status === 'completed' ? 100 : s.percent({run: r, companies: c, done: done[s.name] ?? 0, past: i < at})]),
  )
}
