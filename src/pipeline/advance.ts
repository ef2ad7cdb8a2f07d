import {type Kysely, sql, type Transaction} from '../db/kysely.js'
import {type Executor, inTransaction} from '../db/executor.js'
import type {Database, RunRow, RunStatus} from '../db/schema.js'
import {cancelTasks} from '../runtime/queue.js'
import {liveTaskCounts, retryTasks, tasksByPayload} from '../runtime/scopes.js'
import {dropsByReason, mainDropNote} from './drops.js'
import {runOptions, runScope} from './run-options.js'
import {companyCounts} from './run-counts.js'
import {lockRun} from './runs.js'
import {stageNamed, STAGES, stagesOf, stagesOn} from './stages/index.js'
import {perCompany, roundTasks, startStages} from './stages/start.js'
import type {AdvanceContext, RunFacts, StageName, Trigger} from './stages/stage.js'
import {stopForYield} from './yield-alarm.js'

/**
 * Moves a run forward from whatever its data says now: the rule of the
 * stage the run is in decides (see each file in stages/), with moves made in
 * the words of triggers (select: start the `selected` stages; discover more:
 * another round of the `run` stages), never of a stage by name. Runs inside the
 * transaction that wrote a stage's result, with the run row locked, so
 * concurrent completions never double-enqueue or overshoot. Idempotent: the
 * orchestrator and the monitor also call it as a safety net (a task that
 * failed or was quarantined writes nothing of its own).
 */
export async function advance(trx: Transaction<Database>, runId: number): Promise<RunStatus> {
  const run = await lockRun(trx, runId)
  if (run.status !== 'running' || run.stage === 'done') return run.status
  return decide(trx, await advanceContext(trx, run))
}

/** The yield alarm first (a run that cannot reach its target at its rate so far stops asking for more), then the rule of the stage the run is in. */
async function decide(trx: Transaction<Database>, ctx: AdvanceContext): Promise<RunStatus> {
  const alarm = await stopForYield(trx, ctx)
  if (alarm) return alarm
  const stage = stageNamed(ctx.run.stage)
  if (!stage.advance) throw new Error(`the run is in stage ${stage.name}, which has no advance rule`)
  return stage.advance(ctx)
}

/**
 * For callers outside a stage transaction (orchestrator, monitor, resume).
 * Completions that tried the run while this call held it left it to the
 * holder: it looks again once it has let go.
 */
export async function advanceRun(db: Executor, runId: number): Promise<RunStatus> {
  const status = await inTransaction(db, (trx) => advance(trx, runId))
  if (!db.isTransaction) await advanceAfterCompletion(db as Kysely<Database>, runId)
  return status
}

/** Runs this process is advancing right now; `again` asks the one at work for another look, `done` is when it has. */
const advancing = new Map<number, {again: boolean; done: Promise<void>}>()
/** Runs with a look scheduled because another process held the run when this one tried. */
const lookLater = new Set<number>()
/**
 * How soon a process looks at a run again after finding another holding it (a cancel, a budget hold, an advance that
 * was cut off before it could look again itself); the monitor's re-plan is the backstop.
 */
const BUSY_LOOK_MS = 300

/** How long an advance after a completion waits for the run's row (its completion is committed: it holds nothing else). */
const ADVANCE_LOCK_WAIT_MS = 1000

/**
 * Advances a run after one of its tasks completed, in a transaction of its
 * own: the completion has committed, so waiting here holds no row anyone
 * else needs, only this task's slot, and for at most ADVANCE_LOCK_WAIT_MS.
 * When another process holds the run that long (a cut-off advance, a long
 * cancel), this one leaves it to that one, which looks again once it let go,
 * and looks once more itself a moment later. One advance at a time per run
 * in a process (the others ask it for another look), so a burst of
 * completions is decided in a few advances, not one each. Loops while what
 * it decided on changed meanwhile.
 */
export async function advanceAfterCompletion(db: Kysely<Database>, runId: number): Promise<void> {
  const current = advancing.get(runId)
  if (current) {
    // Decided with this completion in view before the caller goes on (its slot takes the next task only after), but
    // never held longer than a lock wait: on a slow link a run's advance takes a few seconds, and slots must not wait.
    current.again = true
    let timer: NodeJS.Timeout | undefined
    await Promise.race([current.done, new Promise<void>((resolve) => (timer = setTimeout(resolve, ADVANCE_LOCK_WAIT_MS)))])
    clearTimeout(timer)
    return
  }

  let finished!: () => void
  const state = {again: true, done: new Promise<void>((resolve) => (finished = resolve))}
  advancing.set(runId, state)
  try {
    for (let round = 0; state.again && round < 50; round++) {
      state.again = false
      const decidedOn = await inTransaction(db, async (trx) => {
        const run = await lockRunWithin(trx, runId, ADVANCE_LOCK_WAIT_MS)
        if (run === undefined || run.status !== 'running' || run.stage === 'done') return undefined
        const ctx = await advanceContext(trx, run)
        await decide(trx, ctx)
        return signature(ctx)
      }).catch((error: unknown) => {
        if ((error as {code?: string})?.code === '55P03') return 'busy' as const
        throw error
      })
      if (decidedOn === undefined) return
      if (decidedOn === 'busy') {
        lookAgainLater(db, runId)
        return
      }

      // The run is let go: whatever committed while it was decided is visible now. Anything new: another look.
      if ((await factsSignature(db, runId)) !== decidedOn) state.again = true
    }
  } finally {
    advancing.delete(runId)
    finished()
  }
}

function lookAgainLater(db: Kysely<Database>, runId: number): void {
  if (lookLater.has(runId)) return
  lookLater.add(runId)
  const timer = setTimeout(
    () => {
      lookLater.delete(runId)
      void advanceAfterCompletion(db, runId).catch(() => {})
    },
    BUSY_LOOK_MS * (0.75 + Math.random() / 2),
  )
  timer.unref()
}

/** The run row, locked, waiting at most `ms` for it (then the statement fails with 55P03); undefined when there is none. */
async function lockRunWithin(trx: Transaction<Database>, runId: number, ms: number): Promise<RunRow | undefined> {
  await sql`select set_config('lock_timeout', ${String(ms)}, true)`.execute(trx)
  return trx.selectFrom('runs').selectAll().where('id', '=', runId).forNoKeyUpdate().executeTakeFirst()
}

/** What an advance decides on: the run's companies by status and its tasks in flight per stage. */
function signature(facts: Pick<RunFacts, 'companies' | 'pending'>): string {
  return JSON.stringify([facts.companies, facts.pending])
}

async function factsSignature(db: Executor, runId: number): Promise<string> {
  const run = await db.selectFrom('runs').select('options').where('id', '=', runId).executeTakeFirstOrThrow()
  return signature({companies: await companyCounts(db, runId), pending: await pendingByStage(db, runId, stagesOf(run))})
}

async function advanceContext(trx: Transaction<Database>, run: RunRow): Promise<AdvanceContext> {
  const pending = await pendingByStage(trx, run.id, stagesOf(run))
  const facts: RunFacts = {
    run,
    options: runOptions(run),
    companies: await companyCounts(trx, run.id),
    pending,
    pendingFor: (trigger) => stagesOn(run, trigger).reduce((n, s) => n + (pending[s.name] ?? 0), 0),
  }
  // Selected companies (alias c) that do not meet what each stage requires (contacts: enough decision makers).
  const requirements = stagesOf(run).flatMap((s) => (s.requires ? [s.requires] : []))
  const unmet = (met: (typeof requirements)[number]['met']) => sql`c.run_id = ${run.id} and c.status = 'selected' and not ${met(run)}`
  const ctx: AdvanceContext = {
    ...facts,
    async select() {
      await pick(trx, run)
      const before = stagesOf(run).filter((s) => s.trigger !== 'selected')
      await cancelTasks(
        trx,
        {scope: runScope(run.id), kinds: before.map((s) => s.kind), statuses: ['queued', 'running']},
        `run ${run.id} met its target: no further discovery or research`,
      )
      const lead = leaderOn(run, 'selected')
      await setRun(trx, run.id, {stage: lead})
      // Work on selected companies started early may all be done already: their rule decides now, on fresh counts.
      return ctx.continueWith(lead)
    },
    async selectQualified() {
      await pick(trx, run)
    },
    async discoverMore() {
      if (facts.options.discoveryExhausted || run.discovery_rounds >= facts.options.maxDiscoveryRounds) return false
      const round = run.discovery_rounds + 1
      await setRun(trx, run.id, {stage: leaderOn(run, 'run'), discovery_rounds: round})
      await startStages(trx, run, 'run', roundTasks(run.id, round))
      return true
    },
    async reopenCandidates(count) {
      await reopenCandidates(trx, run, count)
      await setRun(trx, run.id, {stage: leaderOn(run, 'discovered')})
    },
    async shortOfRequirements() {
      if (requirements.length === 0) return 0
      const {rows} = await sql<{n: number}>`
        select count(*)::int as n from companies c where ${sql.join(
          requirements.map((r) => sql`(${unmet(r.met)})`),
          sql` or `,
        )}`.execute(trx)
      return rows[0].n
    },
    async dropShortOfRequirements() {
      // Each named as a reason in disqualified_by (runs show counts drops by it).
      for (const r of requirements) {
        await sql`
          update companies c set status = 'disqualified', disqualified_by = array[${r.key(run)}]::text[],
            reasons = c.reasons || to_jsonb(array[${r.reason(run)}::text])
          where ${unmet(r.met)}`.execute(trx)
      }
    },
    setStage: (stage) => setRun(trx, run.id, {stage}),
    async complete() {
      await setRun(trx, run.id, {status: 'completed', stage: 'done', finished_at: sql`now()` as never, notes: null})
      return 'completed'
    },
    async needsDecision(notes) {
      // The main reason companies were dropped, with its count: what to widen.
      const dropped = mainDropNote(await dropsByReason(trx, run.id), (await companyCounts(trx, run.id)).disqualified)
      await setRun(trx, run.id, {status: 'needs_decision', notes: dropped ? `${notes} ${dropped}` : notes})
      return 'needs_decision'
    },
    recount: () => companyCounts(trx, run.id),
    // On fresh facts: the moves made so far (a selection, a round enqueued) changed the counts this context was built on.
    continueWith: async (stage) => stageNamed(stage).advance!(await advanceContext(trx, await lockRun(trx, run.id))),
  }
  return ctx
}

/** The stage that leads a run while the stages with this trigger work: the first of them with an advance rule. */
function leaderOn(run: RunRow, trigger: Trigger): StageName {
  const lead = stagesOn(run, trigger).find((s) => s.advance)
  if (!lead) throw new Error(`no stage with the ${trigger} trigger has an advance rule`)
  return lead.name
}

/**
 * Tops the selection up to `quantity` with the best qualified companies by
 * ICP score and starts their `selected` stages (once per company: work
 * started early is not started again).
 */
async function pick(trx: Transaction<Database>, run: RunRow): Promise<void> {
  const counts = await companyCounts(trx, run.id)
  const missing = run.quantity - counts.selected
  if (missing <= 0 || counts.qualified === 0) return
  const picked = await trx
    .updateTable('companies')
    .set({status: 'selected'})
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('companies')
        .select('id')
        .where('run_id', '=', run.id)
        .where('status', '=', 'qualified')
        .orderBy('icp_score', 'desc')
        .orderBy('id')
        .limit(missing),
    )
    .returning(['id', 'icp_score'])
    .execute()
  // The best first: their tasks are claimed first.
  picked.sort((a, b) => (b.icp_score ?? 0) - (a.icp_score ?? 0) || Number(a.id) - Number(b.id))
  await startStages(
    trx,
    run,
    'selected',
    perCompany(
      run.id,
      picked.map((c) => c.id),
    ),
  )
}

/** Puts the `discovered` stages' tasks of up to `count` unjudged candidates back in the queue (they were canceled at the target). */
async function reopenCandidates(trx: Transaction<Database>, run: RunRow, count: number): Promise<void> {
  const candidates = await trx.selectFrom('companies').select('id').where('run_id', '=', run.id).where('status', '=', 'candidate').orderBy('id').execute()
  const statuses = ['canceled', 'failed', 'quarantined'] as const
  const stopped = []
  for (const stage of stagesOn(run, 'discovered'))
    stopped.push(
      ...(await tasksByPayload(trx, {
        scope: runScope(run.id),
        kind: stage.kind,
        key: 'companyId',
        values: candidates.map((c) => c.id),
        statuses: [...statuses],
      })),
    )
  // In company order, as the candidates were found.
  const ids = stopped
    .sort((a, b) => Number(a.value) - Number(b.value))
    .slice(0, count)
    .map((t) => t.id)
  if (ids.length > 0)
    await retryTasks(trx, {scope: runScope(run.id), statuses: [...statuses], ids}, 'research reopened: a selected company had no decision makers')
}

async function setRun(trx: Transaction<Database>, runId: number, values: Record<string, unknown>): Promise<void> {
  // runs.stage has no CHECK (a new stage widens none): the registry is the check.
  if (typeof values.stage === 'string' && values.stage !== 'done') stageNamed(values.stage)
  await trx
    .updateTable('runs')
    .set({...values, updated_at: sql`now()`} as never)
    .where('id', '=', runId)
    .execute()
}

/** Tasks queued or running per stage of the run. */
async function pendingByStage(trx: Executor, runId: number, stages: typeof STAGES): Promise<Record<StageName, number>> {
  const live = await liveTaskCounts(trx, runScope(runId))
  return Object.fromEntries(stages.map((s) => [s.name, live[s.kind] ?? 0]))
}
