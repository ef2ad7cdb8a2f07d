import {sql, type Transaction} from '../db/kysely.js'
import type {Database, RunStatus} from '../db/schema.js'
import {cancelTasks} from '../runtime/queue.js'
import {formatCost, formatRunCost} from '../shared/money.js'
import {simulatedRun} from './run-counts.js'
import {runScope} from './run-options.js'
import {stageNamed} from './stages/index.js'
import type {AdvanceContext, RunFacts} from './stages/stage.js'
import {runUsage} from './usage.js'

/** Companies researched before a run's yield is judged (run option yieldCheckAfter; 0 turns the alarm off). */
export const YIELD_CHECK_AFTER = 30

/**
 * How far below: the alarm sounds when the rate so far projects less than this share of what the run still wants (a
 * run a little short goes on; the stage's rules then ask for more rounds or a decision as usual).
 */
export const YIELD_SHORT_SHARE = 0.5

/** Why the yield alarm canceled a run's queued tasks: resumeRun puts them back. */
export const yieldStopReason = (runId: number) => `run ${runId} stopped at its yield alarm`

export interface YieldAlarm {
  researched: number
  qualified: number
  costUsd: number
  /** Qualified companies the rate so far projects from the candidates left and the discovery rounds left. */
  projected: number
  wanted: number
  /** What tripped it. */
  cause: 'supply' | 'budget'
}

/**
 * Whether a run's research so far says it will not reach its target: once it
 * has researched `checkAfter` companies, when its qualification rate applied
 * to what discovery can still supply (candidates not yet researched, and as
 * many per remaining round as its rounds so far found on average) projects
 * less than half the qualified companies it still wants (YIELD_SHORT_SHARE), or when its dollars per
 * qualified company so far, times its quantity, pass its budget. Null when
 * neither holds, when it cannot be told yet, or when there is nothing more
 * to ask for anyway (the stage's rule ends such a run).
 */
export function judgeYield(facts: RunFacts, costUsd: number, checkAfter: number, sample: YieldSample = researchedOf(facts.companies)): YieldAlarm | null {
  const {run, companies: c, options} = facts
  const {researched, qualified} = sample
  const wanted = run.quantity - (c.qualified + c.selected)
  if (checkAfter <= 0 || researched < checkAfter || wanted <= 0) return null
  const rate = qualified / researched
  const total = c.candidate + researchedOf(c).researched
  const roundsLeft = options.discoveryExhausted ? 0 : Math.max(0, options.maxDiscoveryRounds - run.discovery_rounds)
  // Nothing more to ask for (no research or discovery in flight, no round left): the stage's rule ends the run as usual.
  if (facts.pendingFor('run') + facts.pendingFor('discovered') === 0 && roundsLeft === 0) return null
  const supply = c.candidate + roundsLeft * (total / Math.max(1, run.discovery_rounds))
  const projected = Math.floor(rate * supply)
  const figures = {researched, qualified, costUsd, projected, wanted}
  if (projected < wanted * YIELD_SHORT_SHARE) return {...figures, cause: 'supply'}
  const maxUsd = run.max_usd === null ? null : Number(run.max_usd)
  if (maxUsd !== null && qualified > 0 && (costUsd / qualified) * run.quantity > maxUsd) return {...figures, cause: 'budget'}
  return null
}

/**
 * The companies a run's yield is judged on: those researched and judged, by default all of them. The run's alarm
 * judges only those this run paid to research: companies judged from the research cache are those earlier runs
 * researched and did not deliver (delivered ones are kept out), a sample biased toward the rejected, and free.
 */
export interface YieldSample {
  researched: number
  qualified: number
}

function researchedOf(c: RunFacts['companies']): YieldSample {
  return {researched: c.qualified + c.disqualified + c.selected, qualified: c.qualified + c.selected}
}

/** Companies of the run researched by a call it paid for (not judged from the research cache), and how many qualified. */
async function paidSample(trx: Transaction<Database>, runId: number): Promise<YieldSample> {
  const row = await trx
    .selectFrom('companies')
    .select([
      sql<number>`count(*) filter (where status in ('qualified', 'selected', 'disqualified'))::int`.as('researched'),
      sql<number>`count(*) filter (where status in ('qualified', 'selected'))::int`.as('qualified'),
    ])
    .where('run_id', '=', runId)
    .where('from_cache', '=', false)
    .executeTakeFirstOrThrow()
  return {researched: row.researched, qualified: row.qualified}
}

/** "0 of 120 researched qualified; $1.48 spent": the alarm's figures. */
export function describeYield(a: YieldAlarm, simulated: boolean): string {
  return `${a.qualified} of ${a.researched} researched qualified; ${formatRunCost(a.costUsd, simulated)} spent`
}

/**
 * The yield alarm, before a stage's rule decides (run row locked): a run in
 * discovery or research that trips it stops asking for more (its queued
 * tasks are canceled, those running finish) and ends needs_decision with the
 * figures. A run resumed after it (yieldAccepted) goes on unjudged.
 */
export async function stopForYield(trx: Transaction<Database>, ctx: AdvanceContext): Promise<RunStatus | null> {
  const {run, options} = ctx
  // Judged while the run is still finding and judging companies (not once it works on those it selected).
  if (options.yieldAccepted || stageNamed(run.stage).trigger === 'selected') return null
  const checkAfter = options.yieldCheckAfter ?? YIELD_CHECK_AFTER
  if (checkAfter <= 0 || researchedOf(ctx.companies).researched < checkAfter) return null
  const sample = await paidSample(trx, run.id)
  if (sample.researched < checkAfter) return null
  const costUsd = (await runUsage(trx, run.id)).costUsd
  const alarm = judgeYield(ctx, costUsd, checkAfter, sample)
  if (!alarm) return null
  await cancelTasks(trx, {scope: runScope(run.id), statuses: ['queued']}, yieldStopReason(run.id))
  const why =
    alarm.cause === 'supply'
      ? `at that rate what discovery can still find gives about ${alarm.projected} more, far short of the ${alarm.wanted} still wanted`
      : `at ${formatCost(costUsd / alarm.qualified)} per qualified company, ${run.quantity} would pass the ${formatCost(Number(run.max_usd))} budget`
  return ctx.needsDecision(
    `Yield alarm: ${describeYield(alarm, simulatedRun(run))}; ${why}. Widen the criteria (rvx runs resume ${run.id} --criteria ...), or resume to continue anyway (rvx runs resume ${run.id}); or accept what there is (rvx runs accept ${run.id}), or cancel.`,
  )
}
