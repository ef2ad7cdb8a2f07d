import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {TaskStatus} from '../db/schema.js'
import {NOTIFY_CHANNEL} from './config.js'

/**
 * What a user of the runtime may ask about a scope's tasks (the pipeline's
 * scope is a run): counts, the tasks behind some payload values, a retry of
 * those that gave up, activity for the monitor. Callers pass scopes as the
 * strings they enqueued with; the tables stay the runtime's own.
 */

export type LiveStatus = 'queued' | 'running'

/** Tasks of a scope by kind and status (all statuses that occur). */
export async function taskCounts(ex: Executor, scope: string): Promise<Array<{kind: string; status: TaskStatus; count: number}>> {
  const rows = await ex
    .selectFrom('tasks')
    .select(['kind', 'status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('scope', '=', scope)
    .groupBy(['kind', 'status'])
    .execute()
  return rows.map((r) => ({kind: r.kind, status: r.status, count: Number(r.n)}))
}

/** Queued plus running tasks of a scope, by kind (kinds without any are absent). */
export async function liveTaskCounts(ex: Executor, scope: string): Promise<Record<string, number>> {
  const rows = await ex
    .selectFrom('tasks')
    .select(['kind', (eb) => eb.fn.countAll<number>().as('n')])
    .where('scope', '=', scope)
    .where('status', 'in', ['queued', 'running'])
    .groupBy('kind')
    .execute()
  return Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)]))
}

/** Of the given scopes, those with a task queued or running. */
export async function scopesWithLiveTasks(ex: Executor, scopes: string[]): Promise<Set<string>> {
  if (scopes.length === 0) return new Set()
  const rows = await ex.selectFrom('tasks').select('scope').distinct().where('scope', 'in', scopes).where('status', 'in', ['queued', 'running']).execute()
  return new Set(rows.map((r) => r.scope!))
}

export interface ScopeActivity {
  queued: number
  running: number
  /** Seconds since a task of the scope last finished (completed, failed, canceled...), database clock; null if none has. */
  sinceLastFinishS: number | null
}

/** For each scope: how much is in flight and when something last finished (the monitor's "stuck" test). */
export async function scopeActivity(ex: Executor, scopes: string[]): Promise<Map<string, ScopeActivity>> {
  const out = new Map<string, ScopeActivity>(scopes.map((s) => [s, {queued: 0, running: 0, sinceLastFinishS: null}]))
  if (scopes.length === 0) return out
  const {rows} = await sql<{scope: string; queued: number; running: number; since: number | null}>`
    select s.scope,
      (select count(*)::int from tasks t where t.scope = s.scope and t.status = 'queued') as queued,
      (select count(*)::int from tasks t where t.scope = s.scope and t.status = 'running') as running,
      extract(epoch from now() - (select max(t.finished_at) from tasks t where t.scope = s.scope))::float8 as since
    from unnest(${scopes}::text[]) as s(scope)`.execute(ex)
  for (const r of rows) out.set(r.scope, {queued: r.queued, running: r.running, sinceLastFinishS: r.since})
  return out
}

/**
 * Tasks of one kind in a scope whose payload's `key` is one of `values` (the
 * pipeline finds "the research task of company 7" this way), oldest first.
 */
export async function tasksByPayload(
  ex: Executor,
  f: {scope: string; kind: string; key: string; values: Array<string | number>; statuses: TaskStatus[]},
): Promise<Array<{id: number; value: string; status: TaskStatus}>> {
  if (f.values.length === 0) return []
  const {rows} = await sql<{id: number; value: string; status: TaskStatus}>`
    select id, payload ->> ${f.key} as value, status from tasks
    where scope = ${f.scope} and kind = ${f.kind} and status = any(${f.statuses}::text[])
      and payload ->> ${f.key} = any(${f.values.map(String)}::text[])
    order by id`.execute(ex)
  return rows
}

/**
 * Puts tasks of a scope that gave up (failed, quarantined; canceled if asked)
 * back in the queue with fresh attempt and crash counts, recorded as
 * `retried`. With `ids`, only those; with `canceledBecause`, also the tasks
 * whose latest cancellation gave one of those reasons. Returns how many went back.
 */
export async function retryTasks(
  ex: Executor,
  f: {scope: string; statuses?: TaskStatus[]; ids?: number[]; canceledBecause?: string[]},
  reason: string,
): Promise<number> {
  const statuses = f.statuses ?? ['failed', 'quarantined']
  const {rows} = await sql<{n: number}>`
    with retried as (
      update tasks set status = 'queued', attempts = 0, crash_count = 0, run_after = now(), lease_owner = null,
        lease_expires_at = null, finished_at = null, updated_at = now()
      where scope = ${f.scope} and status in ('failed', 'quarantined', 'canceled')
        and (status = any(${statuses}::text[])
          or (status = 'canceled' and (
                select e.reason from task_events e where e.task_id = tasks.id and e.event = 'canceled' order by e.id desc limit 1) = any(${f.canceledBecause ?? []}::text[])))
        and (${f.ids ?? null}::bigint[] is null or id = any(${f.ids ?? null}::bigint[]))
      returning id, kind, lease_epoch
    ), ev as (
      insert into task_events (task_id, event, lease_epoch, reason) select id, 'retried', lease_epoch, ${reason} from retried
    ), woken as (
      select pg_notify(${NOTIFY_CHANNEL}, k.kind) from (select distinct kind from retried) k
    )
    select (select count(*)::int from retried) as n, (select count(*) from woken) as _woken`.execute(ex)
  return rows[0]?.n ?? 0
}

export interface ScopeEvent {
  id: number
  at: Date
  taskId: number
  kind: string
  event: string
  workerId: string | null
  reason: string | null
}

/** The latest task events of a scope (claims left out: every task has one), newest first. */
export async function scopeEvents(ex: Executor, scope: string, limit: number): Promise<ScopeEvent[]> {
  const {rows} = await sql<{id: number; at: Date; task_id: number; kind: string; event: string; worker_id: string | null; reason: string | null}>`
    select e.id, e.at, e.task_id, t.kind, e.event, e.worker_id, e.reason
    from tasks t join task_events e on e.task_id = t.id
    where t.scope = ${scope} and e.event <> 'claimed'
    order by e.id desc
    limit ${limit}`.execute(ex)
  return rows.map((r) => ({id: Number(r.id), at: r.at, taskId: Number(r.task_id), kind: r.kind, event: r.event, workerId: r.worker_id, reason: r.reason}))
}

export interface ScopeProblem {
  id: number
  kind: string
  status: TaskStatus
  attempts: number
  crashCount: number
  lastError: string | null
}

/** Tasks of a scope that gave up (failed, quarantined) or are waiting to retry after an error, newest first. */
export async function scopeProblems(ex: Executor, scope: string, limit: number): Promise<ScopeProblem[]> {
  const rows = await ex
    .selectFrom('tasks')
    .select(['id', 'kind', 'status', 'attempts', 'crash_count', 'last_error'])
    .where('scope', '=', scope)
    .where((eb) => eb.or([eb('status', 'in', ['failed', 'quarantined']), eb.and([eb('status', '=', 'queued'), eb('last_error', 'is not', null)])]))
    .orderBy('id', 'desc')
    .limit(limit)
    .execute()
  return rows.map((r) => ({id: Number(r.id), kind: r.kind, status: r.status, attempts: r.attempts, crashCount: r.crash_count, lastError: r.last_error}))
}

/**
 * Pauses a scope: no worker claims its queued tasks until resumeScope (the
 * claim skips them); tasks already running finish. Idempotent; true when it
 * was not paused before.
 */
export async function pauseScope(ex: Executor, scope: string, reason: string): Promise<boolean> {
  const {rows} = await sql<{scope: string}>`
    insert into paused_scopes (scope, reason) values (${scope}, ${reason}) on conflict (scope) do nothing returning scope`.execute(ex)
  return rows.length > 0
}

/** Lifts a scope's pause and wakes the workers of the kinds it has queued; true when it was paused. */
export async function resumeScope(ex: Executor, scope: string): Promise<boolean> {
  const {rows} = await sql<{scope: string}>`
    with lifted as (delete from paused_scopes where scope = ${scope} returning scope), woken as (
      select pg_notify(${NOTIFY_CHANNEL}, k.kind)
      from (select distinct kind from tasks where scope = ${scope} and status = 'queued' and exists (select 1 from lifted)) k
    )
    select scope, (select count(*) from woken) as _woken from lifted`.execute(ex)
  return rows.length > 0
}

/** Of the given scopes, those paused. */
export async function pausedScopes(ex: Executor, scopes: string[]): Promise<Set<string>> {
  if (scopes.length === 0) return new Set()
  const rows = await ex.selectFrom('paused_scopes').select('scope').where('scope', 'in', scopes).execute()
  return new Set(rows.map((r) => r.scope))
}

/**
 * Worker processes that could take a scope's tasks now: live, heard from
 * within `deadAfterMs`, not limited to another scope, of some of `kinds`
 * (the process `except` names, e.g. the caller's own in-process workers, left
 * out). With the kinds they take between them.
 */
export async function workersForScope(
  ex: Executor,
  f: {scope: string; kinds: readonly string[]; deadAfterMs: number; except?: {host: string; pid: number}},
): Promise<{processes: number; kinds: Set<string>}> {
  const {rows} = await sql<{processes: number; kinds: string[] | null}>`
    with live as (
      select w.host, w.pid, w.types from workers w
      where w.status in ('starting', 'idle', 'busy')
        and w.last_heartbeat_at > now() - ${f.deadAfterMs}::float8 * interval '1 millisecond'
        and (w.scope is null or w.scope = ${f.scope})
        and w.types && ${[...f.kinds]}::text[]
        and not (w.host = ${f.except?.host ?? ''} and w.pid = ${f.except?.pid ?? -1})
    )
    select (select count(distinct (host, pid))::int from live) as processes,
      (select array_agg(distinct k) from live cross join unnest(live.types) as k where k = any(${[...f.kinds]}::text[])) as kinds`.execute(ex)
  return {processes: rows[0]?.processes ?? 0, kinds: new Set(rows[0]?.kinds ?? [])}
}
