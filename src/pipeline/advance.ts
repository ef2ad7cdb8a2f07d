import {sql, type Transaction} from 'kysely'

import {type Executor, inTransaction} from '../db/executor.js'
import type {Database, RunRow, RunStatus} from '../db/schema.js'
import {cancelTasks, enqueue} from '../runtime/queue.js'
import {liveTaskCounts, retryTasks, tasksByPayload} from '../runtime/scopes.js'
import {companyCounts, enqueueDiscovery, KIND, lockRun, runOptions, runScope} from './runs.js'

/**
 * Moves a run forward from whatever its data says now. Runs inside the
 * transaction that wrote a stage's result, with the run row locked, so
 * concurrent completions never double-enqueue or overshoot. Idempotent: the
 * orchestrator and the monitor also call it as a safety net (a task that
 * failed or was quarantined writes nothing of its own).
 */
export async function advance(trx: Transaction<Database>, runId: number): Promise<RunStatus> {
  const run = await lockRun(trx, runId)
  if (run.status !== 'running') return run.status
  const counts = await companyCounts(trx, runId)
  const pending = await pendingTasks(trx, runId)
  const qualified = counts.qualified + counts.selected

  if (run.stage === 'discovery' || run.stage === 'research') {
    if (qualified >= run.quantity) {
      await select(trx, run)
      return 'running'
    }

    if (pending[KIND.leadList] > 0 || pending[KIND.company] > 0) {
      if (run.stage === 'discovery' && pending[KIND.leadList] === 0) await setRun(trx, runId, {stage: 'research'})
      return 'running'
    }

    // Nothing in flight and not enough qualified: discover more, or ask for a decision.
    const options = runOptions(run)
    if (options.discoveryExhausted || run.discovery_rounds >= options.maxDiscoveryRounds) {
      // Short of the target: still find decision makers for what qualified, then ask.
      if (counts.qualified > 0) {
        await select(trx, run)
        return 'running'
      }

      const why = options.discoveryExhausted ? 'discovery found no new companies' : `${run.discovery_rounds} discovery rounds done`
      return needsDecision(trx, run, `${why}: ${qualified} of ${run.quantity} qualified companies. Accept what there is (rvx runs accept ${runId}), widen the criteria and resume, or cancel.`)
    }

    const round = run.discovery_rounds + 1
    await setRun(trx, runId, {stage: 'discovery', discovery_rounds: round})
    await enqueueDiscovery(trx, runId, round)
    return 'running'
  }

  if (run.stage === 'contacts') {
    if (pending[KIND.contact] > 0) return 'running'
    // Selected companies whose contact search ended with too few people give their place to the next best.
    await sql`
      update companies c set status = 'disqualified',
        reasons = c.reasons || to_jsonb(array['fewer than ' || ${run.contacts_min}::text || ' decision makers found'])
      where c.run_id = ${runId} and c.status = 'selected'
        and (select count(*) from contacts k where k.company_id = c.id) < ${run.contacts_min}
    `.execute(trx)
    const after = await companyCounts(trx, runId)
    if (after.selected >= run.quantity) {
      await setRun(trx, runId, {status: 'completed', stage: 'done', finished_at: sql`now()` as never, notes: null})
      return 'completed'
    }

    if (after.qualified > 0) {
      await select(trx, run)
      return 'running'
    }

    // A selected company dropped out and no qualified one waits: research more of the candidates
    // whose research was stopped at the target, or discover more.
    const missing = run.quantity - after.selected
    if (after.candidate > 0) {
      await reopenResearch(trx, run, Math.ceil(missing * runOptions(run).oversample))
      await setRun(trx, runId, {stage: 'research'})
      return 'running'
    }

    const options = runOptions(run)
    if (!options.discoveryExhausted && run.discovery_rounds < options.maxDiscoveryRounds) {
      const round = run.discovery_rounds + 1
      await setRun(trx, runId, {stage: 'discovery', discovery_rounds: round})
      await enqueueDiscovery(trx, runId, round)
      return 'running'
    }

    return needsDecision(trx, run, `only ${after.selected} of ${run.quantity} companies qualified and have at least ${run.contacts_min} decision makers, and no candidates are left. Accept what there is (rvx runs accept ${runId}), widen the criteria and resume (rvx runs resume ${runId} --criteria ...), or cancel.`)
  }

  return run.status
}

/** Convenience for callers outside a stage transaction (orchestrator, monitor, resume). */
export async function advanceRun(db: Executor, runId: number): Promise<RunStatus> {
  return inTransaction(db, (trx) => advance(trx, runId))
}

/**
 * Tops the selection up to `quantity` with the best qualified companies by
 * ICP score, enqueues their contact search, and stops all further discovery
 * and research of this run: no paid work past the target.
 */
async function select(trx: Transaction<Database>, run: RunRow): Promise<void> {
  const counts = await companyCounts(trx, run.id)
  const missing = run.quantity - counts.selected
  const picked = missing > 0
    ? await trx
        .updateTable('companies')
        .set({status: 'selected'})
        .where('id', 'in', (eb) =>
          eb.selectFrom('companies').select('id').where('run_id', '=', run.id).where('status', '=', 'qualified').orderBy('icp_score', 'desc').orderBy('id').limit(missing),
        )
        .returning(['id'])
        .execute()
    : []
  await cancelTasks(trx, {scope: runScope(run.id), kinds: [KIND.leadList, KIND.company], statuses: ['queued', 'running']}, 'run reached its target: no further discovery or research')
  const options = runOptions(run)
  if (picked.length > 0) {
    await enqueue(
      trx,
      picked.map((c) => ({kind: KIND.contact, payload: {runId: run.id, companyId: c.id}, scope: runScope(run.id), idempotencyKey: `run:${run.id}:contact:${c.id}`, maxAttempts: options.contactAttempts})),
    )
  }

  await setRun(trx, run.id, {stage: 'contacts'})
}

/** Puts the research of up to `count` unresearched candidates back in the queue (it was canceled at the target). */
async function reopenResearch(trx: Transaction<Database>, run: RunRow, count: number): Promise<void> {
  const candidates = await trx.selectFrom('companies').select('id').where('run_id', '=', run.id).where('status', '=', 'candidate').orderBy('id').execute()
  const stopped = await tasksByPayload(trx, {scope: runScope(run.id), kind: KIND.company, key: 'companyId', values: candidates.map((c) => c.id), statuses: ['canceled', 'failed', 'quarantined']})
  // In company order, as the candidates were found.
  const ids = stopped.sort((a, b) => Number(a.value) - Number(b.value)).slice(0, count).map((t) => t.id)
  if (ids.length > 0) await retryTasks(trx, {scope: runScope(run.id), statuses: ['canceled', 'failed', 'quarantined'], ids}, 'research reopened: a selected company had no decision makers')
}

async function needsDecision(trx: Transaction<Database>, run: RunRow, notes: string): Promise<RunStatus> {
  await setRun(trx, run.id, {status: 'needs_decision', notes})
  return 'needs_decision'
}

async function setRun(trx: Transaction<Database>, runId: number, values: Record<string, unknown>): Promise<void> {
  await trx
    .updateTable('runs')
    .set({...values, updated_at: sql`now()`} as never)
    .where('id', '=', runId)
    .execute()
}

async function pendingTasks(trx: Transaction<Database>, runId: number): Promise<Record<string, number>> {
  return {[KIND.leadList]: 0, [KIND.company]: 0, [KIND.contact]: 0, ...(await liveTaskCounts(trx, runScope(runId)))}
}
