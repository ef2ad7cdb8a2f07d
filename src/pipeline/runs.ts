import {sql, type Transaction} from '../db/kysely.js'
import {type Executor, inTransaction} from '../db/executor.js'
import type {Database, RunRow, RunStatus, TaskStatus} from '../db/schema.js'
import {cancelTasks} from '../runtime/queue.js'
import {retryTasks, scopesWithLiveTasks, taskCounts} from '../runtime/scopes.js'
import {RvxError, UsageError} from '../shared/errors.js'
import {formatCost} from '../shared/money.js'
import type {Criteria, RunSize} from './criteria.js'
import {criteriaOf} from './verification.js'
import {type DropCount, dropsByReason} from './drops.js'
import {DEFAULT_RUN_OPTIONS, type RunOptions, runOptions, runScope} from './run-options.js'
import {UNUSABLE_EMAIL_STATUSES} from './stages/contacts.js'
import {deliveredDomains, enqueueDiscoveryRound} from './stages/discovery.js'
import {STAGE_KINDS} from './stages/index.js'
import type {ProgressFacts, StageName} from './stages/stage.js'
import {runUsage, type RunUsage} from './usage.js'
import {yieldStopReason} from './yield-alarm.js'

/** Creates the run and its first discovery task in one transaction. */
export async function createRun(
  db: Executor,
  input: {criteria: Criteria; size: RunSize; provider: string; options?: Partial<RunOptions>; maxUsd?: number; excludeDomains?: string[]},
): Promise<RunRow> {
  const exclude = [...new Set(input.excludeDomains ?? [])]
  const delivered = input.options?.includeDelivered ? 0 : (await deliveredDomains(db)).length
  const options = {...DEFAULT_RUN_OPTIONS, ...input.options, keptOut: {delivered, excluded: exclude.length}}
  return inTransaction(db, async (trx) => {
    const run = await trx
      .insertInto('runs')
      .values({
        criteria: JSON.stringify(input.criteria),
        quantity: input.size.quantity,
        contacts_min: input.size.contactsMin,
        contacts_max: input.size.contactsMax,
        provider: input.provider,
        options: JSON.stringify(options),
        discovery_rounds: 1,
        max_usd: input.maxUsd ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow()
    for (let i = 0; i < exclude.length; i += 5000) {
      await trx
        .insertInto('run_exclusions')
        .values(exclude.slice(i, i + 5000).map((domain) => ({run_id: run.id, domain})))
        .onConflict((oc) => oc.doNothing())
        .execute()
    }

    await enqueueDiscoveryRound(trx, run.id, 1)
    return run
  })
}

export async function getRun(db: Executor, runId: number): Promise<RunRow> {
  const run = await db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirst()
  if (!run) throw new RvxError(`run ${runId} does not exist: rvx runs list shows the runs there are`, {code: 'run_not_found'})
  return run
}

/**
 * Locks the run row: advance logic and stage writes of one run never
 * interleave. Take it first in a transaction, before any insert that
 * references the run: NO KEY UPDATE leaves foreign-key checks (KEY SHARE)
 * of other transactions unblocked, and taking it first means no two
 * transactions each hold a share lock and wait to upgrade it.
 */
export async function lockRun(trx: Transaction<Database>, runId: number): Promise<RunRow> {
  const run = await trx.selectFrom('runs').selectAll().where('id', '=', runId).forNoKeyUpdate().executeTakeFirst()
  if (!run) throw new RvxError(`run ${runId} does not exist`, {code: 'run_not_found'})
  return run
}

/** SQL: a contact (table alias `k`) that counts toward contacts_min: the usable-contact rule of the contacts stage (`counts`). */
export function usableContact(alias: string) {
  const status = sql.ref(`${alias}.email_status`)
  return sql`(${status} is null or ${status} not in (${sql.join(UNUSABLE_EMAIL_STATUSES)}))`
}

export interface RunProgress extends ProgressFacts {
  id: number
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
  /** Tasks by kind and status. */
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
  const counts = await companyCounts(db, runId)
  const c = {...counts, total: counts.candidate + counts.qualified + counts.disqualified + counts.selected}

  const contacts = await db
    .selectFrom('contacts')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('run_id', '=', runId)
    .executeTakeFirstOrThrow()
  const tasks: RunProgress['tasks'] = {}
  const none = (): Record<TaskStatus, number> => ({queued: 0, running: 0, completed: 0, failed: 0, quarantined: 0, canceled: 0})
  for (const kind of STAGE_KINDS) tasks[kind] = none()
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
    companies: c,
    contacts: Number(contacts.n),
    verdicts: await verdictSummary(db, runId, [...criteriaOf(run.criteria as Criteria), 'site', 'portfolio']),
    drops: await dropsByReason(db, runId),
    tasks,
    usage: await runUsage(db, runId),
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

/** needs_decision -> completed with what it has (the decision "accept partial"). */
export async function acceptRun(db: Executor, runId: number): Promise<RunRow> {
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    if (run.status !== 'needs_decision')
      throw new RvxError(`run ${runId} is ${run.status}; only a run that needs a decision can be accepted`, {code: 'run_state'})
    await cancelRunTasks(trx, runId, 'run accepted as it is')
    return trx
      .updateTable('runs')
      .set({
        status: 'completed',
        stage: 'done',
        finished_at: sql`now()` as never,
        updated_at: sql`now()` as never,
        notes: sql`coalesce(notes, '') || ' Accepted as it is.'` as never,
      })
      .where('id', '=', runId)
      .returningAll()
      .executeTakeFirstOrThrow()
  })
}

/** Stops a run for good: its unfinished tasks are canceled (running ones lose their lease). */
export async function cancelRun(db: Executor, runId: number): Promise<RunRow> {
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    if (run.status === 'completed' || run.status === 'canceled') throw new RvxError(`run ${runId} is already ${run.status}`, {code: 'run_state'})
    await cancelRunTasks(trx, runId, 'run canceled')
    return trx
      .updateTable('runs')
      .set({status: 'canceled', finished_at: sql`now()` as never, updated_at: sql`now()` as never})
      .where('id', '=', runId)
      .returningAll()
      .executeTakeFirstOrThrow()
  })
}

/**
 * Makes a run that stopped short (or was interrupted) go on: status back to
 * running, with new criteria or quantity if given; discovery may search again.
 */
export async function resumeRun(db: Executor, runId: number, changes: {criteria?: Criteria; quantity?: number; maxUsd?: number} = {}): Promise<RunRow> {
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    if (run.status === 'completed' || run.status === 'canceled')
      throw new RvxError(`run ${runId} is ${run.status} and cannot be resumed: start a new run`, {code: 'run_state'})
    // Selected companies are not unselected: a smaller target would complete the run with more than it asks for.
    if (changes.quantity !== undefined) {
      const {selected} = await companyCounts(trx, runId)
      if (changes.quantity < selected) {
        throw new UsageError(
          `${changes.quantity} is below the ${selected} companies run ${runId} has already selected: ask for ${selected} or more, or take the run as it is with rvx runs accept ${runId}`,
          {field: 'quantity'},
        )
      }
    }

    if (changes.maxUsd !== undefined) {
      const {costUsd} = await runUsage(trx, runId)
      if (changes.maxUsd <= costUsd) {
        throw new UsageError(
          `${formatCost(changes.maxUsd)} is not above the ${formatCost(costUsd)} run ${runId} has already spent: give a higher budget, or take the run as it is with rvx runs accept ${runId}`,
          {field: 'max-usd'},
        )
      }
    }

    // Resumed after its yield alarm (or any decision): the person chose to go on, so the alarm no longer judges it.
    const options = {
      ...runOptions(run),
      discoveryExhausted: false,
      maxDiscoveryRounds: run.discovery_rounds + DEFAULT_RUN_OPTIONS.maxDiscoveryRounds,
      yieldAccepted: true,
    }
    const updated = await trx
      .updateTable('runs')
      .set({
        status: 'running',
        notes: null,
        finished_at: null,
        // What was exported so far is out of date once the run goes on: its end gets an export of its own.
        export_path: null,
        options: JSON.stringify(options),
        ...(changes.criteria ? {criteria: JSON.stringify(changes.criteria)} : {}),
        ...(changes.quantity !== undefined ? {quantity: changes.quantity} : {}),
        ...(changes.maxUsd !== undefined ? {max_usd: changes.maxUsd} : {}),
        updated_at: sql`now()` as never,
      })
      .where('id', '=', runId)
      .returningAll()
      .executeTakeFirstOrThrow()
    // Tasks that failed or were quarantined get another chance (recorded as retried), and so do those a failure of the run stopped.
    await retryTasks(
      trx,
      {scope: runScope(runId), canceledBecause: [runFailedReason(runId), budgetReason(runId), yieldStopReason(runId)]},
      `run ${runId} resumed`,
    )
    return updated
  })
}

const runFailedReason = (runId: number) => `run ${runId} failed`
const budgetReason = (runId: number) => `run ${runId} reached its budget`

/**
 * Stops a running run at its budget: it asks for a decision (raise the budget
 * with runs resume --max-usd, accept what there is, or cancel); its queued
 * tasks are canceled, the ones already running finish (they are paid for), and
 * resumeRun puts the canceled ones back. Call inside a transaction.
 */
export async function stopAtBudget(trx: Transaction<Database>, runId: number, why: string): Promise<void> {
  const run = await lockRun(trx, runId)
  if (run.status !== 'running') return
  await cancelTasks(trx, {scope: runScope(runId), statuses: ['queued']}, budgetReason(runId))
  await trx
    .updateTable('runs')
    .set({
      status: 'needs_decision',
      notes: `${why}. Raise the budget and go on (rvx runs resume ${runId} --max-usd N), accept what there is (rvx runs accept ${runId}), or cancel.`,
      updated_at: sql`now()` as never,
    })
    .where('id', '=', runId)
    .execute()
}

/**
 * Stops a running run at once as failed, with `cause` for people (runs show,
 * the orchestrate summary, the monitor's alert): its other tasks are
 * canceled (running ones lose their lease), so nothing more is paid for.
 * `resumeRun` after the fix puts those tasks back. Call inside a transaction.
 */
export async function failRun(trx: Transaction<Database>, runId: number, cause: string): Promise<void> {
  const run = await lockRun(trx, runId)
  if (run.status !== 'running') return
  await cancelRunTasks(trx, runId, runFailedReason(runId))
  await trx
    .updateTable('runs')
    .set({
      status: 'failed',
      notes: `${cause}. Fix that, then rvx runs resume ${runId} continues the run.`,
      finished_at: sql`now()` as never,
      updated_at: sql`now()` as never,
    })
    .where('id', '=', runId)
    .execute()
}

async function cancelRunTasks(trx: Transaction<Database>, runId: number, reason: string): Promise<void> {
  await cancelTasks(trx, {scope: runScope(runId), statuses: ['queued', 'running']}, reason)
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
    selected: number
    since_update_s: number
  }>`
    select r.id, r.status, r.stage, r.quantity, r.notes, r.options ->> 'notifyEmail' as notify_email,
      (select count(*)::int from companies c where c.run_id = r.id and c.status = 'selected') as selected,
      extract(epoch from now() - r.updated_at)::float8 as since_update_s
    from runs r
    where r.status in ('running', 'needs_decision')
       or (r.status = 'failed' and r.finished_at > now() - ${failedWithinMs}::float8 * interval '1 millisecond')
       or (r.status = 'completed' and r.options ? 'notifyEmail' and r.finished_at > now() - interval '7 days')
    order by r.id`.execute(db)
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    stage: r.stage,
    quantity: r.quantity,
    notes: r.notes,
    notifyEmail: r.notify_email,
    selected: r.selected,
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

export interface RunSummary {
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
  companies: ProgressFacts['companies']
  contacts: number
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
    candidate: number
    qualified: number
    disqualified: number
    selected: number
    contacts: number
    done: number
    cost: string
  }>`
    select r.id, r.status, r.stage, r.criteria, r.quantity, r.provider, r.notes, r.created_at, r.finished_at, r.paused_at is not null as paused,
      extract(epoch from now() - r.created_at)::float8 as age_s,
      extract(epoch from coalesce(r.finished_at, now()) - r.created_at)::float8 as elapsed_s,
      coalesce((r.options ->> 'oversample')::float8, 2) as oversample,
      c.candidate, c.qualified, c.disqualified, c.selected,
      (select count(*)::int from contacts k where k.run_id = r.id) as contacts,
      (select count(*)::int from companies s where s.run_id = r.id and s.status = 'selected'
         and (select count(*) from contacts k where k.company_id = s.id and ${usableContact('k')}) >= r.contacts_min) as done,
      (select coalesce(sum(l.cost_usd), 0)::text from llm_calls l where l.run_id = r.id) as cost
    from runs r
    cross join lateral (
      select count(*) filter (where status = 'candidate')::int as candidate, count(*) filter (where status = 'qualified')::int as qualified,
             count(*) filter (where status = 'disqualified')::int as disqualified, count(*) filter (where status = 'selected')::int as selected
      from companies where run_id = r.id) c
    where (${f.status ?? null}::text is null or r.status = ${f.status ?? null}) and (${f.id ?? null}::bigint is null or r.id = ${f.id ?? null})
    order by r.id desc
    limit ${f.limit} offset ${f.offset ?? 0}`.execute(db)
  return rows.map((r) => {
    const companies = {candidate: r.candidate, qualified: r.qualified, disqualified: r.disqualified, selected: r.selected, total: 0}
    companies.total = r.candidate + r.qualified + r.disqualified + r.selected
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
      companies,
      contacts: r.contacts,
      costUsd: Number(r.cost),
      percent: stagePercents(r, companies, r.done),
    }
  })
}

/**
 * How far each stage has come: discovery against the oversampled target,
 * research against what was found, contacts against the quantity; a stage
 * the run has moved past is done, and so is every stage of a completed run.
 */
function stagePercents(
  r: {status: RunStatus; stage: string; quantity: number; oversample: number},
  c: ProgressFacts['companies'],
  withContacts: number,
): Record<StageName, number> {
  const pct = (a: number, b: number) => (b <= 0 ? 0 : Math.min(100, Math.round((a / b) * 100)))
  if (r.status === 'completed') return {discovery: 100, research: 100, contacts: 100}
  return {
    discovery: r.stage === 'discovery' ? pct(c.total, Math.ceil(r.quantity * r.oversample)) : 100,
    research: r.stage === 'discovery' || r.stage === 'research' ? pct(c.total - c.candidate, c.total) : 100,
    contacts: pct(withContacts, r.quantity),
  }
}
