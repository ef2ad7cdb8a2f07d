import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {AlertSeverity} from '../db/schema.js'
import {runOfScope, runScope} from '../pipeline/run-options.js'
import {describeEnding, recentEndings} from '../pipeline/run-endings.js'
import {runsToWatch} from '../pipeline/run-views.js'
import {stageWord} from '../pipeline/stage-words.js'
import {pausedScopes, scopeActivity} from '../runtime/scopes.js'
import {lastSweepAgeS, liveWorkerCount, recentDeaths, recentTerminalFailures, refusedWorkers, stalledWorkers} from '../runtime/stats.js'
import {formatAge} from '../shared/duration.js'

/**
 * Something true about the fleet right now that a person should hear about.
 * `key` names the condition (not the moment): it is alerted once while it
 * holds and again only after it has cleared and come back.
 */
export interface Condition {
  key: string
  kind: ConditionKind
  severity: AlertSeverity
  subject: string
  details: Record<string, unknown>
  runId?: number | null
  /** For run notifications: the one address this goes to (instead of the alert channels). */
  recipient?: string | null
}

export type ConditionKind =
  | 'worker_dead'
  | 'worker_stalled'
  | 'sweep_blocked'
  | 'db_connections_refused'
  | 'task_failed'
  | 'task_quarantined'
  | 'run_stuck'
  | 'run_needs_decision'
  | 'run_failed'
  | 'run_completed'
  | 'run_completed_notice'
  | 'run_needs_decision_notice'

export interface ConditionOptions {
  /** A running run with no task finished for this long is stuck. */
  stuckAfterMs: number
  /** Dead workers and failed tasks older than this are history, not news. */
  lookbackMs: number
  /** A live worker silent for longer than this (and a half: the sweep's time to act) is stalled; a fleet not swept as long has a blocked sweep. */
  deadAfterMs: number
  /** How long the caller has reached the database without a break (null: since the server started); see sweep(). */
  reachableForMs?: number | null
}

/** PostgreSQL refusing a worker a connection is news for this long after the last refusal. */
const REFUSALS_NEWS_MS = 5 * 60_000

/** Every condition that holds now; a handful of small queries (failed tasks by their partial index, live runs, dead workers). */
export async function currentConditions(db: Executor, o: ConditionOptions): Promise<Condition[]> {
  const [dead, fleet, failed, runs, completed] = await Promise.all([
    deadWorkers(db, o),
    fleetConditions(db, o),
    failedTasks(db, o),
    runConditions(db, o),
    completedRuns(db, o),
  ])
  return [...dead, ...fleet, ...failed, ...runs, ...completed]
}

/** A run that completed (within the lookback): news once, to the alert channels (its own --notify-email has its notice). */
async function completedRuns(db: Executor, o: ConditionOptions): Promise<Condition[]> {
  return (await recentEndings(db, o.lookbackMs))
    .filter((e) => e.status === 'completed')
    .map((e) => ({
      key: `run:${e.id}:completed`,
      kind: 'run_completed',
      severity: 'info',
      subject: `${describeEnding(e)}${e.exportPath ? `; export in ${e.exportPath}` : `; rvx runs export ${e.id} writes its CSVs`}`,
      details: {runId: e.id, companies: e.companies, contacts: e.contacts, costUsd: e.costUsd, tookS: Math.round(e.tookS), exportPath: e.exportPath},
      runId: e.id,
    }))
}

async function deadWorkers(db: Executor, o: ConditionOptions): Promise<Condition[]> {
  // One condition per death (its number in the key): a worker declared dead that registers again before the next
  // tick is still news, and so is its next death.
  return (await recentDeaths(db, o.lookbackMs)).map((w) => ({
    key: `worker:${w.id}:dead:${w.deaths}`,
    kind: 'worker_dead',
    severity: 'warning',
    subject: `worker ${w.id} (${w.types.map(stageWord).join(', ')}) on ${w.host} died; its tasks were put back for other workers${w.back ? '. It has registered again since (a partition that healed, or a restart)' : ''}`,
    details: {workerId: w.id, types: w.types, host: w.host, pid: w.pid, silentS: w.silentS, deaths: w.deaths, back: w.back},
  }))
}

/** Workers counted live but silent, a sweep nobody manages to run, a database that refuses connections. */
async function fleetConditions(db: Executor, o: ConditionOptions): Promise<Condition[]> {
  const afterMs = 1.5 * o.deadAfterMs
  const [stalled, sweptAgoS, refused] = await Promise.all([
    stalledWorkers(db, afterMs, o.reachableForMs ?? null),
    lastSweepAgeS(db, o.reachableForMs ?? null),
    refusedWorkers(db, REFUSALS_NEWS_MS),
  ])
  const out: Condition[] = stalled.map((w) => ({
    key: `worker:${w.id}:stalled`,
    kind: 'worker_stalled',
    severity: 'warning',
    subject: `worker ${w.id} (${w.types.map(stageWord).join(', ')}) on ${w.host} has not heartbeaten for ${formatAge(w.silentS)} and has not been declared dead: its tasks wait on it`,
    details: {workerId: w.id, types: w.types, host: w.host, silentS: w.silentS},
  }))
  if (sweptAgoS !== null && sweptAgoS * 1000 > afterMs) {
    out.push({
      key: 'fleet:sweep_blocked',
      kind: 'sweep_blocked',
      severity: 'critical',
      subject: `no sweep has run for ${formatAge(sweptAgoS)}: dead workers are not being found (is a sweeper stuck holding its lock?)`,
      details: {sweptAgoS: Math.round(sweptAgoS)},
    })
  }

  if (refused.length > 0) {
    out.push({
      key: 'fleet:db_connections_refused',
      kind: 'db_connections_refused',
      severity: 'critical',
      subject: `PostgreSQL refused connections to ${refused.length} worker${refused.length === 1 ? '' : 's'} (too many clients): raise max_connections, or run fewer workers or fewer connections each (--db-connections)`,
      details: {workers: refused},
    })
  }

  return out
}

async function failedTasks(db: Executor, o: ConditionOptions): Promise<Condition[]> {
  return (await recentTerminalFailures(db, o.lookbackMs)).map((t) => {
    const runId = runOfScope(t.scope)
    const where = runId !== null ? ` in run ${runId}` : t.scope ? ` in ${t.scope}` : ''
    const why = t.lastError ? `: ${t.lastError.length > 200 ? t.lastError.slice(0, 197) + '...' : t.lastError}` : ''
    return t.status === 'quarantined'
      ? {
          key: `task:${t.id}:quarantined`,
          kind: 'task_quarantined',
          severity: 'critical',
          subject: `task ${t.id} (${stageWord(t.kind)}${where}) quarantined after ${t.crashCount} crashes; rvx runs resume retries it`,
          details: {taskId: t.id, kind: t.kind, scope: t.scope, crashes: t.crashCount, error: t.lastError},
        }
      : {
          key: `task:${t.id}:failed`,
          kind: 'task_failed',
          severity: 'warning',
          subject: `task ${t.id} (${stageWord(t.kind)}${where}) failed after ${t.attempts} attempt${t.attempts === 1 ? '' : 's'}${why}`,
          details: {taskId: t.id, kind: t.kind, scope: t.scope, attempts: t.attempts, error: t.lastError},
        }
  })
}

async function runConditions(db: Executor, o: ConditionOptions): Promise<Condition[]> {
  const runs = await runsToWatch(db, o.lookbackMs)
  const running = runs.filter((r) => r.status === 'running')
  const [activity, liveWorkers, paused] = await Promise.all([
    scopeActivity(
      db,
      running.map((r) => runScope(r.id)),
    ),
    liveWorkerCount(db),
    pausedScopes(
      db,
      running.map((r) => runScope(r.id)),
    ),
  ])
  const out: Condition[] = []
  for (const r of runs) {
    const a = activity.get(runScope(r.id))
    // A paused run waits on purpose (rvx runs pause): not stuck.
    if (r.status === 'running' && a && !paused.has(runScope(r.id))) {
      const idleS = Math.min(r.sinceUpdateS, a.sinceLastFinishS ?? Number.POSITIVE_INFINITY)
      if (idleS * 1000 >= o.stuckAfterMs) {
        const hint = liveWorkers === 0 ? '; no live workers: start some with rvx worker all' : a.queued + a.running === 0 ? '; nothing queued' : ''
        out.push({
          key: `run:${r.id}:stuck`,
          kind: 'run_stuck',
          severity: 'warning',
          subject: `run ${r.id} has made no progress for ${formatAge(idleS)} (stage ${r.stage}, ${a.queued} queued, ${a.running} running${hint})`,
          details: {runId: r.id, stage: r.stage, idleS: Math.round(idleS), queued: a.queued, running: a.running, liveWorkers},
          runId: r.id,
        })
      }
    }

    if (r.status === 'failed') {
      out.push({
        key: `run:${r.id}:failed`,
        kind: 'run_failed',
        severity: 'critical',
        subject: `run ${r.id} failed: ${r.notes ?? 'a failure no retry can fix'}`,
        details: {runId: r.id, selected: r.selected, quantity: r.quantity, notes: r.notes},
        runId: r.id,
      })
    }

    if (r.status === 'needs_decision') {
      out.push({
        key: `run:${r.id}:needs_decision`,
        kind: 'run_needs_decision',
        severity: 'warning',
        subject: `run ${r.id} needs a decision: ${r.notes ?? `${r.selected} of ${r.quantity} companies found. Accept what there is (rvx runs accept ${r.id}), widen the criteria and resume, or cancel.`}`,
        details: {runId: r.id, selected: r.selected, quantity: r.quantity, notes: r.notes},
        runId: r.id,
      })
    }

    if (r.notifyEmail && (r.status === 'completed' || r.status === 'needs_decision')) out.push(runNotice(r.id, r.status, r.notifyEmail, r.selected))
  }

  return out
}

/**
 * The mail a run asked for with --notify-email, as a condition: keyed by run
 * and status, so whoever records it first (orchestrate or a monitor) is the
 * one that sends it.
 */
export function runNotice(runId: number, status: 'completed' | 'needs_decision', recipient: string, selected?: number): Condition {
  return {
    key: `run:${runId}:notice:${status}`,
    kind: status === 'completed' ? 'run_completed_notice' : 'run_needs_decision_notice',
    severity: 'info',
    subject:
      status === 'completed' ? `rvx run ${runId} completed${selected === undefined ? '' : `: ${selected} companies`}` : `rvx run ${runId} needs your decision`,
    details: {runId},
    runId,
    recipient,
  }
}

/**
 * Opens an alert for each condition that has none open (the unique index
 * makes this once-only however many monitors race) and returns the opened
 * ones. With `resolveMissing`, the conditions are all that hold: open alerts
 * not among them are resolved, unless opened after `asOf` (when the
 * conditions were read; another process may have opened them since). With
 * `deliverNow`, alerts (not notices) are marked delivered at once: nobody
 * configured a channel, the log is it.
 */
export async function recordConditions(
  db: Executor,
  conditions: Condition[],
  o: {deliverNow: boolean; resolveMissing?: {asOf: Date}},
): Promise<Array<Condition & {id: number}>> {
  const opened = await sql<{id: number; key: string}>`
    insert into alerts (key, kind, severity, subject, details, run_id, recipient, delivered_at)
    select x.key, x.kind, x.severity, x.subject, x.details, x."runId", x.recipient,
           case when ${o.deliverNow} and x.recipient is null then now() end
    from jsonb_to_recordset(${JSON.stringify(conditions)}::jsonb)
      as x(key text, kind text, severity text, subject text, details jsonb, "runId" bigint, recipient text)
    where x."runId" is null or exists (select 1 from runs r where r.id = x."runId")
    on conflict (key) where resolved_at is null do nothing
    returning id, key`.execute(db)
  if (o.resolveMissing) {
    await sql`
      update alerts set resolved_at = now()
      where resolved_at is null and not (key = any(${conditions.map((c) => c.key)}::text[])) and created_at < ${o.resolveMissing.asOf}`.execute(db)
  }

  const byKey = new Map(conditions.map((c) => [c.key, c]))
  return opened.rows.map((r) => ({...byKey.get(r.key)!, id: r.id}))
}

export interface OpenAlert {
  id: number
  kind: string
  severity: AlertSeverity
  subject: string
  runId: number | null
  createdAt: Date
  /** Seconds since it opened (database clock). */
  ageS: number
  delivered: boolean
}

/** Alerts whose condition still holds (notices to one recipient left out), most severe then newest first. */
export async function openAlerts(db: Executor, limit: number): Promise<OpenAlert[]> {
  const {rows} = await sql<{
    id: number
    kind: string
    severity: AlertSeverity
    subject: string
    run_id: number | null
    created_at: Date
    age_s: number
    delivered: boolean
  }>`
    select id, kind, severity, subject, run_id, created_at, extract(epoch from now() - created_at)::float8 as age_s, delivered_at is not null as delivered
    from alerts
    where resolved_at is null and recipient is null
    order by case severity when 'critical' then 0 when 'warning' then 1 else 2 end, id desc
    limit ${limit}`.execute(db)
  return rows.map((a) => ({
    id: Number(a.id),
    kind: a.kind,
    severity: a.severity,
    subject: a.subject,
    runId: a.run_id === null ? null : Number(a.run_id),
    createdAt: a.created_at,
    ageS: a.age_s,
    delivered: a.delivered,
  }))
}
