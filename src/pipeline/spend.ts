import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import {inTransaction} from '../db/executor.js'
import {sleep} from '../runtime/backoff.js'
import {SnoozeError} from '../runtime/errors.js'
import {type Ceilings, pausedMs, returnShare, settleShare, takeShare} from '../runtime/pacing.js'
import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'
import {formatCost} from '../shared/money.js'
import {type Admission, BudgetReachedError, type CallContext, type CallPlan, type LlmUsage} from './provider.js'
import {lockRun} from './runs.js'

/**
 * A call waits in place for its share of the quota at most this long (its lease renewed, its conversation's paid turns
 * kept); beyond, its task snoozes (lease released, no attempt used) and starts over later. Two
 * workers' default 64 slots each line up about two minutes of calls on a quota of ~140 calls a minute: they wait, not
 * churn (a 30 s ceiling snoozed 1,241 times in a quantity-100 run and re-paid the turns of every snoozed conversation).
 */
export const MAX_QUOTA_WAIT_MS = 180_000
/** A 429's Retry-After pauses the fleet's quota at most this long (a provider's hostile or mistaken header bounded). */
const MAX_PAUSE_MS = 60_000
/** A caller with a reserved place waits out at most this many pauses that began while it waited (each at most MAX_PAUSE_MS). */
const MAX_PAUSES_WAITED = 5
/** How far ahead a call's place in line is reserved (see lineUp). */
export const RESERVE_AHEAD_MS = 10_000
/** How long a call may wait for its quota in place, and how far ahead its place is reserved. */
interface Line {
  maxWaitMs: number
  reserveAheadMs: number
}
/** A budget hold outlives a process that died mid-call only this long. */
const HOLD_MS = 10 * 60_000

/** The ceilings of this process's environment, as read at its start (checkEnvironment); none until then. */
let ceilingsInForce: Ceilings = {rpm: null, tpm: null}

/**
 * Ceilings a person set for every quota this process paces: RVX_LLM_RPM and
 * RVX_LLM_TPM (unset or empty: none). A value that is not a positive number is
 * refused naming its variable, not taken as no ceiling. They are in force for
 * this process from then on.
 */
export function ceilingsFromEnv(env: Env): Ceilings {
  const read = (name: string) => {
    const text = env[name]?.trim()
    if (!text) return null
    const n = Number(text)
    if (!(Number.isFinite(n) && n > 0 && n <= 1e12))
      throw new UsageError(`must be a number above 0 (per minute; got "${env[name]}"): fix it, or unset it to let rvx learn the limit`, {field: name})
    return n
  }

  ceilingsInForce = {rpm: read('RVX_LLM_RPM'), tpm: read('RVX_LLM_TPM')}
  return ceilingsInForce
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
  /** Where each call's usage goes (settling a call records it). */
  record(usage: LlmUsage): void
  ceilings?: Ceilings
  /** MAX_QUOTA_WAIT_MS and RESERVE_AHEAD_MS, unless given. */
  line?: Line
}): CallContext & {heldBudget(): boolean} {
  let held = false
  return {
    signal: o.signal,
    /** Whether a call held part of the run's budget (then releaseTaskHolds must go with the usage). */
    heldBudget: () => held,
    async admit(plan: CallPlan): Promise<Admission> {
      const hold = await holdBudget(o.db, o.runId, o.taskId, plan.maxUsd)
      if (hold !== null) held = true
      const tokens = plan.inputTokens + plan.outputTokens
      const quota = plan.quota
      let waitedMs = 0
      // What the token bucket gave: nothing while no token limit is known (then nothing is given back later either).
      let tokensTaken = 0
      try {
        if (quota !== null) ({waited: waitedMs, tokens: tokensTaken} = await lineUp(o, quota, {requests: 1, tokens}))
      } catch (error) {
        await releaseHold(o.db, hold)
        throw error
      }

      // The pace held it back: then the fleet's rate may grow.
      const paced = waitedMs > 0
      let settled = false
      return {
        waitedMs,
        async settle({usage, rate}) {
          if (settled) return
          settled = true
          // Paid: recorded before anything here can fail (the rest writes to the database).
          o.record({...usage, waitedMs})
          // Still held, at what it cost, until its usage is saved with releaseTaskHolds: it counts against the budget all along.
          if (hold !== null) {
            await o.db
              .updateTable('budget_holds')
              .set({usd: usage.costUsd, expires_at: sql`now() + ${HOLD_MS}::float8 * interval '1 millisecond'` as never})
              .where('id', '=', hold)
              .execute()
          }

          if (quota === null) return
          const limited = rate.status === 429
          const answered = rate.status >= 200 && rate.status < 300
          await settleShare(o.db, quota, {
            limited,
            paced,
            tokensTaken,
            tokensUsed: answered ? usage.inputTokens + usage.outputTokens : undefined,
            learned: {rpm: rate.limitRequests, tpm: rate.limitTokens},
            remainingRequests: rate.remainingRequests,
            retryAfterMs: limited ? Math.min(MAX_PAUSE_MS, rate.retryAfterMs ?? 0) : undefined,
            limitedBy: limited ? (rate.limitedBy ?? undefined) : undefined,
          })
        },
      }
    },
  }
}

/**
 * Waits for a call's share of the fleet's quota; resolves with how long the pace held it back (ms) and the tokens it
 * took. A place in line is reserved at most RESERVE_AHEAD_MS ahead, so what the fleet has promised is never far ahead
 * of what the provider last said (a fleet lined up two minutes deep meets a cut or a stated limit two minutes late:
 * 429s, then idle quota). A caller with no place that near waits in place without one (its lease renewed, its
 * conversation kept) and asks again, behind the callers of its process that came first (first come, first served: one
 * that waited long is not overtaken by newcomers until it gives up); one that has waited MAX_QUOTA_WAIT_MS snoozes its
 * task. A caller stopped in line gives its place back.
 */
async function lineUp(
  o: {db: Executor; signal: AbortSignal; ceilings?: Ceilings; line?: Line},
  quota: string,
  need: {requests: number; tokens: number},
): Promise<{waited: number; tokens: number}> {
  const configured = o.ceilings ?? ceilingsInForce
  const {maxWaitMs, reserveAheadMs} = o.line ?? {maxWaitMs: MAX_QUOTA_WAIT_MS, reserveAheadMs: RESERVE_AHEAD_MS}
  let waited = 0
  const wait = async (ms: number) => {
    const from = Date.now()
    await sleep(ms, o.signal)
    waited += Date.now() - from
  }

  let line = localLines.get(quota)
  if (!line) localLines.set(quota, (line = new LocalLine()))
  const share = await line.turn(
    o.signal,
    (ms) => (waited += ms),
    async () => {
      for (;;) {
        const share = await takeShare(o.db, quota, need, {maxWaitMs: reserveAheadMs, configured})
        if ('waitMs' in share) return share
        if (waited + share.tooLongMs > maxWaitMs)
          throw new SnoozeError(`waiting for the model's quota (${quota}): about ${Math.ceil((waited + share.tooLongMs) / 1000)} s`, share.tooLongMs)
        // Ask again about when a place comes within reach (other processes' callers ask at their own moments).
        await wait(Math.max(250, share.tooLongMs - reserveAheadMs) + Math.random() * (reserveAheadMs / 4))
        o.signal.throwIfAborted()
      }
    },
  )
  // A place is reserved: the next caller of this process may ask for its own while this one waits for its moment.
  if (share.waitMs > 0) {
    await wait(share.waitMs)
    // A 429 that paused the fleet after this place was reserved pushed the whole line back, this place too (before,
    // the callers lined up sent at their moments, into the pause, and met the same wall: a third of the calls 429s).
    let seen = share.pausedMs
    for (let i = 0; i < MAX_PAUSES_WAITED && !o.signal.aborted; i++) {
      const now = await pausedMs(o.db, quota)
      if (now <= seen) break
      await wait(Math.min(MAX_PAUSE_MS, now - seen)).catch(() => {})
      seen = now
    }
  }

  // A place reserved before the fleet knew its token limit took no tokens: if the limit is known now, the call takes its
  // tokens before it goes (before, the calls lined up when the first 429 taught the limit all went at their moments, and
  // met the wall the 429 had just found).
  let tokens = share.tokens
  if (share.waitMs > 0 && tokens === 0 && need.tokens > 0 && !o.signal.aborted) {
    const late = await takeShare(o.db, quota, {requests: 0, tokens: need.tokens}, {maxWaitMs: MAX_PAUSE_MS, configured})
    if ('waitMs' in late && late.tokens > 0) {
      tokens = late.tokens
      if (late.waitMs > 0) await wait(late.waitMs).catch(() => {})
    }
  }

  if (o.signal.aborted) {
    await returnShare(o.db, quota, {requests: need.requests, tokens})
    o.signal.throwIfAborted()
  }

  return {waited, tokens}
}

/** This process's callers of one quota, in the order they came: one asks for a place at a time. */
export class LocalLine {
  private tail: Promise<void> = Promise.resolve()
  private waiting = 0

  /** Runs fn when the callers before this one are done with theirs (or at once, stopped, when signal aborts). */
  async turn<T>(signal: AbortSignal, waitedMs: (ms: number) => void, fn: () => Promise<T>): Promise<T> {
    const before = this.tail
    let done!: () => void
    this.tail = new Promise<void>((resolve) => (done = resolve))
    const ahead = this.waiting++
    try {
      if (ahead > 0) {
        const from = Date.now()
        // The listener goes when the wait ends: a task's signal outlives many calls (Node warns past 10 listeners).
        await new Promise<void>((resolve) => {
          const stop = () => resolve()
          signal.addEventListener('abort', stop, {once: true})
          void before.then(() => {
            signal.removeEventListener('abort', stop)
            resolve()
          })
        })
        waitedMs(Date.now() - from)
      }

      signal.throwIfAborted()
      return await fn()
    } finally {
      this.waiting--
      // The order holds when this caller left early: its turn ends when the one before it is done.
      void before.then(done)
    }
  }
}

const localLines = new Map<string, LocalLine>()

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
