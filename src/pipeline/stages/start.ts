import type {Executor} from '../../db/executor.js'
import type {RunRow} from '../../db/schema.js'
import {enqueue} from '../../runtime/queue.js'
import {runOptions, runScope} from '../run-options.js'
import {stagesOn} from './index.js'
import type {Stage, TaskToStart, Trigger} from './stage.js'

/**
 * The one path by which stage tasks are enqueued: every stage of the run
 * with this trigger gets one task per item, keyed `run:<id>:<kind>:<key>`,
 * so starting the same thing twice (a retried completion, a re-plan) starts
 * it once. `only` narrows it to some stages (those a resumed run just opted into).
 */
export async function startStages(ex: Executor, run: RunRow, trigger: Trigger, tasks: TaskToStart[], only?: readonly Stage<any, any, any>[]): Promise<void> {
  if (tasks.length === 0) return
  const options = runOptions(run)
  for (const stage of stagesOn(run, trigger)) {
    if (only && !only.includes(stage)) continue
    await enqueue(
      ex,
      tasks.map((t) => ({
        kind: stage.kind,
        payload: t.payload,
        scope: runScope(run.id),
        idempotencyKey: `${runScope(run.id)}:${stage.kind}:${t.key}`,
        maxAttempts: stage.attemptsFor?.(options) ?? stage.maxAttempts,
        priority: stage.priority,
      })),
    )
  }
}

/** One task per company (`discovered` and `selected` stages). */
export const perCompany = (runId: number, companyIds: readonly number[]): TaskToStart[] =>
  companyIds.map((id) => ({payload: {runId, companyId: id}, key: String(id)}))

/** The tasks of a round of the `run` stages (the first at the run's creation). */
export const roundTasks = (runId: number, round: number): TaskToStart[] => [{payload: {runId, round}, key: String(round)}]

/**
 * Starts stages a run opted into late (rvx runs resume --enrich) for what the
 * run already has: `selected` ones for its selected companies, `discovered`
 * ones for its candidates, `run` ones for its current round.
 */
export async function startLateStages(ex: Executor, run: RunRow, stages: readonly Stage<any, any, any>[]): Promise<void> {
  const companies = async (status: 'selected' | 'candidate') =>
    (
      await ex
        .selectFrom('companies')
        .select('id')
        .where('run_id', '=', run.id)
        .where('status', '=', status)
        .orderBy('icp_score', 'desc')
        .orderBy('id')
        .execute()
    ).map((c) => c.id)
  await startStages(ex, run, 'selected', perCompany(run.id, await companies('selected')), stages)
  await startStages(ex, run, 'discovered', perCompany(run.id, await companies('candidate')), stages)
  await startStages(ex, run, 'run', roundTasks(run.id, run.discovery_rounds), stages)
}
