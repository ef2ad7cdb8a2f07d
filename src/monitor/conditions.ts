import {type Kysely, sql} from 'kysely'

import type {AlertSeverity, Database} from '../db/schema.js'
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

export type ConditionKind = 'worker_dead' | 'task_failed' | 'task_quarantined' | 'run_stuck' | 'run_needs_decision' | 'run_completed_notice' | 'run_needs_decision_notice'

export interface ConditionOptions {
  /** A running run with no task finished for this long is stuck. */
  stuckAfterMs: number
  /** Dead workers and failed tasks older than this are history, not news. */
  lookbackMs: number
}

/** Every condition that holds now; a handful of small queries (failed tasks by their partial index, live runs, dead workers). */
export async function currentConditions(db: Kysely<Database>, o: ConditionOptions): Promise<Condition[]> {
  const [dead, failed, runs] = await Promise.all([deadWorkers(db, o), failedTasks(db, o), runConditions(db, o)])
  return [...dead, ...failed, ...runs]
}

async function deadWorkers(db: Kysely<Database>, o: ConditionOptions): Promise<Condition[]> {
  const {rows} = await sql<{id: string; types: string[]; host: string; pid: number; silent_s: number}>`
    select id, types, host, pid, extract(epoch from stopped_at - last_heartbeat_at)::float8 as silent_s
    from workers
    where status = 'dead' and stopped_at > now() - ${o.lookbackMs}::float8 * interval '1 millisecond'`.execute(db)
  return rows.map((w) => ({
    key: `worker:${w.id}:dead`,
    kind: 'worker_dead',
    severity: 'warning',
    subject: `worker ${w.id} (${w.types.join(', ')}) on ${w.host} died; its tasks were put back for other workers`,
    details: {workerId: w.id, types: w.types, host: w.host, pid: w.pid, silentS: Math.round(w.silent_s * 10) / 10},
  }))
}

async function failedTasks(db: Kysely<Database>, o: ConditionOptions): Promise<Condition[]> {
  // Tasks in a terminal failure now that got there recently (the small failed/quarantined index).
  const {rows} = await sql<{id: number; kind: string; status: 'failed' | 'quarantined'; scope: string | null; last_error: string | null; attempts: number; crash_count: number}>`
    select t.id, t.kind, t.status, t.scope, t.last_error, t.attempts, t.crash_count
    from tasks t
    where t.status in ('failed', 'quarantined') and t.finished_at > now() - ${o.lookbackMs}::float8 * interval '1 millisecond'
    order by t.id`.execute(db)
  return rows.map((t) => {
    const where = t.scope ? ` in ${t.scope.replace(':', ' ')}` : ''
    const why = t.last_error ? `: ${t.last_error.length > 200 ? t.last_error.slice(0, 197) + '...' : t.last_error}` : ''
    return t.status === 'quarantined'
      ? {
          key: `task:${t.id}:quarantined`,
          kind: 'task_quarantined',
          severity: 'critical',
          subject: `task ${t.id} (${t.kind}${where}) quarantined after ${t.crash_count} crashes; rvx runs resume retries it`,
          details: {taskId: t.id, kind: t.kind, scope: t.scope, crashes: t.crash_count, error: t.last_error},
        }
      : {
          key: `task:${t.id}:failed`,
          kind: 'task_failed',
          severity: 'warning',
          subject: `task ${t.id} (${t.kind}${where}) failed after ${t.attempts} attempt${t.attempts === 1 ? '' : 's'}${why}`,
          details: {taskId: t.id, kind: t.kind, scope: t.scope, attempts: t.attempts, error: t.last_error},
        }
  })
}

interface RunFacts {
  id: number
  status: string
  stage: string
  quantity: number
  notes: string | null
  notify_email: string | null
  selected: number
  idle_s: number | null
  queued: number
  running: number
  live_workers: number
}

async function runConditions(db: Kysely<Database>, o: ConditionOptions): Promise<Condition[]> {
  // Live runs and runs waiting on a person; finished runs only when someone asked to be mailed.
  const {rows} = await sql<RunFacts>`
    select r.id, r.status, r.stage, r.quantity, r.notes, r.options ->> 'notifyEmail' as notify_email,
      (select count(*)::int from companies c where c.run_id = r.id and c.status = 'selected') as selected,
      case when r.status = 'running' then extract(epoch from now() - greatest(r.updated_at,
        (select max(t.finished_at) from tasks t where t.scope = 'run:' || r.id)))::float8 end as idle_s,
      case when r.status = 'running' then (select count(*)::int from tasks t where t.scope = 'run:' || r.id and t.status = 'queued') else 0 end as queued,
      case when r.status = 'running' then (select count(*)::int from tasks t where t.scope = 'run:' || r.id and t.status = 'running') else 0 end as running,
      (select count(*)::int from workers w where w.status in ('idle', 'busy', 'starting')) as live_workers
    from runs r
    where r.status in ('running', 'needs_decision')
       or (r.status = 'completed' and r.options ? 'notifyEmail' and r.finished_at > now() - interval '7 days')`.execute(db)
  const out: Condition[] = []
  for (const r of rows) {
    if (r.status === 'running' && r.idle_s !== null && r.idle_s * 1000 >= o.stuckAfterMs) {
      const hint = r.live_workers === 0 ? '; no live workers: start some with rvx worker all' : r.queued + r.running === 0 ? '; nothing queued' : ''
      out.push({
        key: `run:${r.id}:stuck`,
        kind: 'run_stuck',
        severity: 'warning',
        subject: `run ${r.id} has made no progress for ${formatAge(r.idle_s)} (stage ${r.stage}, ${r.queued} queued, ${r.running} running${hint})`,
        details: {runId: r.id, stage: r.stage, idleS: Math.round(r.idle_s), queued: r.queued, running: r.running, liveWorkers: r.live_workers},
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

    if (r.notify_email && (r.status === 'completed' || r.status === 'needs_decision')) out.push(runNotice(r.id, r.status, r.notify_email, r.selected))
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
    subject: status === 'completed' ? `rvx run ${runId} completed${selected === undefined ? '' : `: ${selected} companies`}` : `rvx run ${runId} needs your decision`,
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
  db: Kysely<Database>,
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
