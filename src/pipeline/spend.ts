import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import {inTransaction} from '../db/executor.js'
import {sleep} from '../runtime/backoff.js'
import {SnoozeError} from '../runtime/errors.js'
import {type Ceilings, settleShare, type Share, takeShare} from '../runtime/pacing.js'
import {formatCost} from '../shared/money.js'
import {type Admission, BudgetReachedError, type CallContext, type CallPlan, type LlmUsage} from './provider.js'
import {lockRun} from './runs.js'

/** A call waits in place for its quota at most this long; beyond, its task snoozes (lease released, no attempt used). */
export const MAX_QUOTA_WAIT_MS = 30_000
/** A budget hold outlives a process that died mid-call only this long. */
const HOLD_MS = 10 * 60_000

/** Ceilings a person set for every quota this process paces: RVX_LLM_RPM and RVX_LLM_TPM. */
export function ceilingsFromEnv(env: NodeJS.ProcessEnv = process.env): Ceilings {
  const read = (name: string) => {
    const n = Number(env[name])
    return env[name] && Number.isFinite(n) && n > 0 ? n : null
  }

  return {rpm: read('RVX_LLM_RPM'), tpm: read('RVX_LLM_TPM')}
}

/**
 * The context a stage gives its provider for one task: usage recorded for the
 * run and task, and every paid call admitted through the run's budget and the
 * fleet's pacing.
 */
export function callContext(o: {
  db: Executor
  runId: number
  taskId: number
  signal: AbortSignal
  record(usage: LlmUsage): void
  ceilings?: Ceilings
}): CallContext & {heldBudget(): boolean} {
  let held = false
  return {
    signal: o.signal,
    record: o.record,
    /** Whether a call held part of the run's budget (then releaseTaskHolds must go with the usage). */
    heldBudget: () => held,
    async admit(plan: CallPlan): Promise<Admission> {
      const hold = await holdBudget(o.db, o.runId, o.taskId, plan.maxUsd)
      if (hold !== null) held = true
      const tokens = plan.inputTokens + plan.outputTokens
      const quota = plan.quota
      let share: Share
      try {
        share =
          quota === null
            ? {waitMs: 0}
            : await takeShare(o.db, quota, {requests: 1, tokens}, {maxWaitMs: MAX_QUOTA_WAIT_MS, configured: o.ceilings ?? ceilingsFromEnv()})
      } catch (error) {
        await releaseHold(o.db, hold)
        throw error
      }

      if ('tooLongMs' in share) {
        await releaseHold(o.db, hold)
        throw new SnoozeError(`waiting for the model's quota (${quota}): about ${Math.ceil(share.tooLongMs / 1000)} s`, share.tooLongMs)
      }

      const started = Date.now()
      if (share.waitMs > 0) await sleep(share.waitMs, o.signal)
      const waitedMs = Date.now() - started
      let settled = false
      return {
        waitedMs,
        async settle(result) {
          if (settled) return
          settled = true
          // Still held, at what it cost, until its usage is saved with releaseTaskHolds: it counts against the budget all along.
          if (hold !== null) {
            await o.db
              .updateTable('budget_holds')
              .set({usd: result.costUsd ?? sql`usd`, expires_at: sql`now() + ${HOLD_MS}::float8 * interval '1 millisecond'` as never})
              .where('id', '=', hold)
              .execute()
          }

          if (quota === null) return
          const learned = rateLimitHeaders(result.headers)
          await settleShare(o.db, quota, {
            limited: result.status === 429,
            paced: share.waitMs > 0,
            tokensTaken: tokens,
            tokensUsed: result.inputTokens === undefined ? undefined : result.inputTokens + (result.outputTokens ?? 0),
            learned: {rpm: learned.limitRequests, tpm: learned.limitTokens},
            remainingRequests: learned.remainingRequests,
          })
        },
      }
    },
  }
}

/**
 * Holds a call's cost against its run's budget, or throws BudgetReachedError
 * when what the run spent, what its calls in flight hold, and this call could
 * cost together pass it. Under the run's lock, so concurrent calls never
 * together pass the budget. Null when the run has no budget.
 */
async function holdBudget(db: Executor, runId: number, taskId: number, usd: number | null): Promise<number | null> {
  // A run without a budget (most) takes no lock: a budget is set when the run is created or resumed, never mid-call.
  const budget = await db.selectFrom('runs').select('max_usd').where('id', '=', runId).executeTakeFirst()
  if (!budget || budget.max_usd === null) return null
  return inTransaction(db, async (trx) => {
    const run = await lockRun(trx, runId)
    if (run.max_usd === null) return null
    const max = Number(run.max_usd)
    const {rows} = await sql<{spent: string; held: string}>`
      select (select coalesce(sum(cost_usd), 0) from llm_calls where run_id = ${runId})::text as spent,
             (select coalesce(sum(usd), 0) from budget_holds where run_id = ${runId} and expires_at > now())::text as held`.execute(trx)
    const spent = Number(rows[0].spent)
    const held = Number(rows[0].held)
    if (usd === null || spent + held + usd > max) {
      throw new BudgetReachedError(
        `budget reached: ${formatCost(spent)} of ${formatCost(max)} spent${held > 0 ? ` (${formatCost(held)} more in calls in flight)` : ''}`,
      )
    }

    const hold = await trx
      .insertInto('budget_holds')
      .values({run_id: runId, task_id: taskId, usd, expires_at: sql`now() + ${HOLD_MS}::float8 * interval '1 millisecond'` as never})
      .returning('id')
      .executeTakeFirstOrThrow()
    return hold.id
  })
}

async function releaseHold(db: Executor, id: number | null): Promise<void> {
  if (id !== null) await db.deleteFrom('budget_holds').where('id', '=', id).execute()
}

/** A task's usage is saved (in the same transaction): what its settled calls held now counts as spent. */
export async function releaseTaskHolds(ex: Executor, taskId: number): Promise<void> {
  await ex.deleteFrom('budget_holds').where('task_id', '=', taskId).execute()
}

/** What a provider's rate-limit headers say (OpenAI's x-ratelimit-* names): ceilings per minute and what is left. */
export function rateLimitHeaders(headers: unknown): {limitRequests: number | null; limitTokens: number | null; remainingRequests: number | null} {
  const get = (name: string): string | null => {
    if (!headers) return null
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name)
    const record = headers as Record<string, string | undefined>
    return record[name] ?? null
  }

  const num = (name: string) => {
    const n = Number(get(name))
    return get(name) !== null && Number.isFinite(n) && n >= 0 ? n : null
  }

  return {
    limitRequests: num('x-ratelimit-limit-requests'),
    limitTokens: num('x-ratelimit-limit-tokens'),
    remainingRequests: num('x-ratelimit-remaining-requests'),
  }
}
