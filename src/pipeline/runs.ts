import {sql, type Transaction} from '../db/kysely.js'
import {type Executor, inTransaction} from '../db/executor.js'
import type {Database, RunRow} from '../db/schema.js'
import {cancelTasks} from '../runtime/queue.js'
import {retryTasks} from '../runtime/scopes.js'
import {RvxError, UsageError} from '../shared/errors.js'
import {formatCost} from '../shared/money.js'
import {companyCounts} from './run-counts.js'
import type {Criteria, RunSize} from './criteria.js'
import {DEFAULT_RUN_OPTIONS, type RunOptions, runOptions, runScope} from './run-options.js'
import {deliveredDomains} from './stages/discovery.js'
import {OPT_IN_STAGES, stagesOf} from './stages/index.js'
import {roundTasks, startLateStages, startStages} from './stages/start.js'
import {runUsage} from './usage.js'
import {yieldStopReason} from './yield-alarm.js'

// The run lifecycle: create, lock, accept, cancel, resume, stop at the budget, fail. What people read about runs
// (progress, the overview, what the monitor watches) is in run-views.ts.

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

    await startStages(trx, run, 'run', roundTasks(run.id, 1))
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

/** needs_decision -> completed with what it has (the decision "accept partial"). */
export async function acceptRun(db: Executor, runId: number): Promise<RunRow> {
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    if (run.status !== 'needs_decision')
      throw new RvxError(`run ${runId} is ${run.status}; only a run that needs a decision can be accepted`, {code: 'run_state'})
    await cancelRunTasks(trx, runId, `run ${runId} was accepted as it is`)
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
    await cancelRunTasks(trx, runId, `run ${runId} was canceled`)
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
export async function resumeRun(
  db: Executor,
  runId: number,
  changes: {criteria?: Criteria; quantity?: number; maxUsd?: number; stages?: string[]} = {},
): Promise<RunRow> {
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

    // Opt-in stages asked for now (--enrich) join those the run has, and start on what it already found.
    const late = OPT_IN_STAGES.filter((s) => changes.stages?.includes(s.name) && !stagesOf(run).includes(s))
    const stages = [...(runOptions(run).stages ?? []), ...late.map((s) => s.name)]
    // Resumed after its yield alarm (or any decision): the person chose to go on, so the alarm no longer judges it.
    const options = {
      ...runOptions(run),
      discoveryExhausted: false,
      maxDiscoveryRounds: run.discovery_rounds + DEFAULT_RUN_OPTIONS.maxDiscoveryRounds,
      yieldAccepted: true,
      ...(stages.length > 0 ? {stages} : {}),
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
    await startLateStages(trx, updated, late)
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
