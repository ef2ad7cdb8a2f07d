import type {Transaction} from 'kysely'

import {sql} from '../../db/kysely.js'

import type {Database, RunRow} from '../../db/schema.js'
import type {HandlerOutcome, TaskContext, TaskRegistry} from '../../runtime/handlers.js'
import type {ClaimedTask} from '../../runtime/lease.js'
import {ReleaseError} from '../../runtime/errors.js'
import {scrub} from '../../shared/secrets.js'
import {advance, advanceAfterCompletion} from '../advance.js'
import {BudgetReachedError, type CallContext, ProviderUnusableError, type ResearchProvider} from '../provider.js'
import {failRun, getRun, stopAtBudget} from '../runs.js'
import {callContext, releaseTaskHolds} from '../spend.js'
import {type Executor, inTransaction} from '../../db/executor.js'
import type {SpendJournal} from '../spend-journal.js'
import {saveUsage, type UsageRow} from '../usage.js'
import {STAGES} from './index.js'
import type {RunPayload, Stage} from './stage.js'
import {perCompany, startStages} from './start.js'

/** The provider for a run; it may be loaded on first use (a provider's code is imported when a run needs it). */
export type ProviderFactory = (run: RunRow) => ResearchProvider | Promise<ResearchProvider>

/**
 * Registers every stage on the runtime. Each task: the run guard (the run is
 * still running and the stage has something to do), the paid call outside
 * any transaction with its usage captured, then an `apply` that runs in the
 * completion's transaction after the fence: record the usage and write the
 * stage's own rows (only while the run is running). The run row is not taken
 * there: once the completion has committed, the run is advanced in a short
 * transaction of its own (`advanceAfterCompletion`), so no completion ever
 * waits for another one's lock on its run. A worker presumed dead writes
 * nothing; usage of a call that failed is saved at once (it was paid).
 */
export function registerPipeline(registry: TaskRegistry, providerFor: ProviderFactory, options: {journal?: SpendJournal} = {}): TaskRegistry {
  // A stage task that fails for good writes nothing of its own: the run re-plans in the same transaction, or stops
  // at once: as failed with the cause when the provider cannot be used at all, for a decision when its budget is spent.
  const onFailed = async (trx: Transaction<Database>, task: {payload: unknown}, error: unknown) => {
    const runId = (task.payload as RunPayload).runId
    if (error instanceof ProviderUnusableError) await failRun(trx, runId, scrub(error.message))
    else if (error instanceof BudgetReachedError) await stopAtBudget(trx, runId, error.message)
    else await advance(trx, runId)
  }

  for (const stage of STAGES) registry.register<RunPayload>(stage.kind, (task, ctx) => runStage(stage, task, ctx, providerFor, options.journal), {onFailed})
  return registry
}

async function runStage(
  stage: Stage,
  task: ClaimedTask<RunPayload>,
  ctx: TaskContext,
  providerFor: ProviderFactory,
  journal: SpendJournal | undefined,
): Promise<HandlerOutcome> {
  const run = await getRun(ctx.db, task.payload.runId)
  if (run.status !== 'running') return {result: {skipped: run.status}}
  // Claimed before the run was paused, not started: back to the queue, unpaid, until the pause is lifted.
  if (run.paused_at !== null) throw new ReleaseError(`run ${run.id} is paused`)
  const prepared = {db: ctx.db, run, payload: task.payload, attempt: ctx.attempt, maxAttempts: task.maxAttempts}
  const input = await stage.prepare(prepared)
  if (input === null) return {result: {skipped: true}}

  const provider = await providerFor(run)
  const usage: UsageRow[] = []
  const call = callContext({
    db: ctx.db,
    runId: run.id,
    taskId: task.id,
    signal: ctx.signal,
    // Written down locally first: a record the database loses (a failover) is written again from the journal.
    record: (u) => {
      const row = {...u, runId: run.id, taskId: task.id}
      usage.push(journal ? journal.append(row) : row)
    },
  })
  // The usage saved and the budget it held released in one transaction: a call's cost is always counted once.
  // Without a budget there is nothing held: one insert, so a late result reaches the fence as soon as it can.
  const settleUsage = async (ex: Executor) => {
    await saveUsage(ex, usage)
    if (call.heldBudget()) await releaseTaskHolds(ex, task.id)
  }
  let output: unknown
  try {
    output = await stage.ask(provider, input, {...(call satisfies CallContext), prepared})
  } finally {
    // Paid for whatever becomes of the result (a failure, or a completion fenced out after a cancel or a
    // presumed death): saved now; what could not be saved now goes with the completion.
    await (call.heldBudget() ? inTransaction(ctx.db, settleUsage) : settleUsage(ctx.db)).catch(() => {})
  }

  return {
    result: stage.result(output, input),
    async apply(trx: Transaction<Database>) {
      await settleUsage(trx)
      // A run stopped at its budget still takes what was already paid for; a run that ended takes nothing.
      const current = await getRun(trx, run.id)
      if (current.status !== 'running' && current.status !== 'needs_decision') return
      await stage.write(
        {
          trx,
          run: current,
          payload: task.payload,
          provider: {name: provider.name, simulated: provider.simulated},
          discovered: (companyIds) => startStages(trx, current, 'discovered', perCompany(run.id, companyIds)),
          saveFact: (companyId, fact) => saveFact(trx, {runId: run.id, companyId, stage: stage.name, provider, ...fact}),
        },
        input,
        output,
      )
    },
    after: () => advanceAfterCompletion(ctx.db, run.id),
  }
}

/** What a stage found about a company, stored as that stage's fact (one per company and stage; written again, replaced). */
async function saveFact(
  trx: Transaction<Database>,
  f: {runId: number; companyId: number; stage: string; provider: {name: string; simulated: boolean}; value: unknown; evidence: unknown},
): Promise<void> {
  const row = {value: JSON.stringify(f.value), evidence: JSON.stringify(f.evidence ?? null), provider: f.provider.name, simulated: f.provider.simulated}
  await trx
    .insertInto('company_facts')
    .values({run_id: f.runId, company_id: f.companyId, stage: f.stage, ...row})
    .onConflict((oc) => oc.columns(['company_id', 'stage']).doUpdateSet({...row, created_at: sql`now()` as never}))
    .execute()
}
