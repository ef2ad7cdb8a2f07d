import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import {DEFAULT_CONFIG} from './config.js'
import {SWEEP_STAMP_KEY} from './sweep.js'

export interface WorkerTypeStats {
  type: string
  total: number
  starting: number
  idle: number
  busy: number
  draining: number
  stopped: number
  dead: number
  tasksDone: number
  tasksFailed: number
  doneLast5m: number
  failedLast5m: number
}

/**
 * Fleet by worker type (the same numbers psql users get from rvx_worker_stats()): busy and idle as of
 * now (from the tasks each worker runs), lifetime and 5-minute counts of that type's own tasks.
 */
export async function workerStats(db: Executor): Promise<WorkerTypeStats[]> {
  const {rows} = await sql<Record<string, string | number>>`select * from rvx_worker_stats()`.execute(db)
  return rows.map((r) => ({
    type: String(r.type),
    total: Number(r.total),
    starting: Number(r.starting),
    idle: Number(r.idle),
    busy: Number(r.busy),
    draining: Number(r.draining),
    stopped: Number(r.stopped),
    dead: Number(r.dead),
    tasksDone: Number(r.tasks_done),
    tasksFailed: Number(r.tasks_failed),
    doneLast5m: Number(r.done_last_5m),
    failedLast5m: Number(r.failed_last_5m),
  }))
}

/** Worker processes by status, each counted once whatever its types (busy: running a task now). */
export interface WorkerCounts {
  starting: number
  idle: number
  busy: number
  draining: number
  dead: number
}

/** Worker processes that have not stopped, by status (busy or idle as of now, as rvx_worker_stats() says). */
export async function workerCounts(db: Executor): Promise<WorkerCounts> {
  const {rows} = await sql<{status: string; n: number}>`
    with running as (select distinct t.lease_owner as id from tasks t where t.status = 'running')
    select case when w.status in ('idle', 'busy') then case when r.id is null then 'idle' else 'busy' end else w.status end as status,
           count(*)::int as n
    from workers w left join running r on r.id = w.id
    where w.status <> 'stopped'
    group by 1`.execute(db)
  const out: WorkerCounts = {starting: 0, idle: 0, busy: 0, draining: 0, dead: 0}
  for (const r of rows) if (r.status in out) out[r.status as keyof WorkerCounts] = r.n
  return out
}

export interface QueueStats {
  kind: string
  queued: number
  running: number
  /** Ended failed (attempts used up, or a permanent error) and not retried since. */
  failed: number
  quarantined: number
  /** Queued and runnable now: the oldest one's wait, in seconds. */
  oldestQueuedAgeS: number | null
  /** Queued after a failed attempt or a snooze, waiting for their run_after. */
  retriesWaiting: number
}

/**
 * The queue by kind: live tasks (queued, running) and the ones that need a
 * person (failed, quarantined). Each part reads its own small partial index,
 * never the finished history, so this stays fast however many tasks have
 * completed (completions are counted as events: done in the last 5 minutes
 * per worker type, rvx_task_events_total in the monitor's metrics).
 */
export async function queueStats(db: Executor): Promise<QueueStats[]> {
  const {rows} = await sql<Record<string, string | number | null>>`
    with live as (
      select kind,
        count(*) filter (where status = 'queued') as queued,
        count(*) filter (where status = 'running') as running,
        extract(epoch from now() - min(run_after) filter (where status = 'queued' and run_after <= now())) as oldest,
        count(*) filter (where status = 'queued' and run_after > now() and (attempts > 0 or updated_at > created_at)) as retries_waiting
      from tasks where status in ('queued', 'running')
      group by kind
    ), problems as (
      select kind, count(*) filter (where status = 'failed') as failed, count(*) filter (where status = 'quarantined') as quarantined
      from tasks where status in ('failed', 'quarantined')
      group by kind
    )
    select coalesce(l.kind, p.kind) as kind, coalesce(l.queued, 0) as queued, coalesce(l.running, 0) as running,
           coalesce(p.failed, 0) as failed, coalesce(p.quarantined, 0) as quarantined, l.oldest, coalesce(l.retries_waiting, 0) as retries_waiting
    from live l full join problems p on p.kind = l.kind
    order by 1
  `.execute(db)
  return rows.map((r) => ({
    kind: String(r.kind),
    queued: Number(r.queued),
    running: Number(r.running),
    failed: Number(r.failed),
    quarantined: Number(r.quarantined),
    oldestQueuedAgeS: r.oldest === null ? null : Math.round(Number(r.oldest) * 10) / 10,
    retriesWaiting: Number(r.retries_waiting),
  }))
}

export interface WorkerView {
  /** How long its last heartbeat took to come back (ms; null before its second one). */
  heartbeatLatencyMs: number | null
  /** Times it was declared dead. */
  deaths: number
  id: string
  type: string
  types: string[]
  pool: string
  host: string
  pid: number
  status: string
  capabilities: string[]
  concurrency: number
  startedAt: Date
  lastHeartbeatAt: Date
  heartbeatAgeS: number
  resourceMetrics: Record<string, unknown>
  tasksDone: number
  tasksFailed: number
  currentTasks: Array<{id: number; kind: string; elapsedS: number}>
}

/** Workers with what they are running now (database clock for ages). Stopped ones only with `all`. */
export async function listWorkers(db: Executor, options: {all?: boolean; deadAfterMs?: number} = {}): Promise<WorkerView[]> {
  const stalledAfterS = (options.deadAfterMs ?? DEFAULT_CONFIG.deadAfterMs) / 1000
  // Running tasks are read once (live-task index) and grouped by owner, not looked up per worker.
  const {rows} = await sql<Record<string, any>>`
    with current as (
      select t.lease_owner,
             json_agg(json_build_object('id', t.id, 'kind', t.kind, 'elapsedS', round(extract(epoch from now() - t.started_at)::numeric, 1)) order by t.id) as tasks
      from tasks t where t.status = 'running'
      group by t.lease_owner
    )
    select w.*, extract(epoch from now() - w.last_heartbeat_at)::float8 as age, coalesce(c.tasks, '[]'::json) as current
    from workers w left join current c on c.lease_owner = w.id
    where ${options.all ?? false} or w.status <> 'stopped'
    order by w.types, w.id
  `.execute(db)
  return rows.map((r) => ({
    id: r.id,
    type: (r.types as string[]).join(','),
    types: r.types,
    pool: r.pool,
    host: r.host,
    pid: r.pid,
    // Busy or idle as of now (the status its heartbeat wrote may be an interval old), as rvx_worker_stats() counts them;
    // stalled: counted live, but silent for longer than dead-after and not (yet) declared dead by a sweep.
    status:
      ['starting', 'idle', 'busy', 'draining'].includes(r.status) && Number(r.age) > stalledAfterS
        ? 'stalled'
        : r.status === 'idle' || r.status === 'busy'
          ? (r.current as unknown[]).length > 0
            ? 'busy'
            : 'idle'
          : r.status,
    capabilities: r.capabilities,
    concurrency: r.concurrency,
    startedAt: r.started_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    heartbeatAgeS: Math.round(Number(r.age) * 10) / 10,
    heartbeatLatencyMs: r.heartbeat_latency_ms ?? null,
    deaths: Number(r.deaths ?? 0),
    resourceMetrics: r.resource_metrics,
    tasksDone: Number(r.tasks_done),
    tasksFailed: Number(r.tasks_failed),
    currentTasks: (r.current as Array<{id: number; kind: string; elapsedS: number}>).map((c) => ({
      id: Number(c.id),
      kind: c.kind,
      elapsedS: Number(c.elapsedS),
    })),
  }))
}

/** Removes stopped and dead workers whose last heartbeat is older than `olderThanMs`. */
export async function pruneWorkers(db: Executor, olderThanMs: number): Promise<string[]> {
  const {rows} = await sql<{id: string}>`
    delete from workers
    where status in ('stopped', 'dead') and last_heartbeat_at < now() - ${olderThanMs}::float8 * interval '1 millisecond'
    returning id`.execute(db)
  return rows.map((r) => r.id)
}

export interface WorkerDeath {
  id: string
  types: string[]
  host: string
  pid: number
  /** Its deaths so far: each one is news once. */
  deaths: number
  lastDeathAt: Date
  /** Dead still, or alive again (registered since: a partition that healed, a restart under the same id). */
  back: boolean
  /** How long it had been silent when it was declared dead (null once it is back). */
  silentS: number | null
}

/** Workers declared dead within the last `withinMs`, whether or not they came back since (the monitor's "a worker died"). */
export async function recentDeaths(ex: Executor, withinMs: number): Promise<WorkerDeath[]> {
  const {rows} = await sql<{
    id: string
    types: string[]
    host: string
    pid: number
    deaths: number
    last_death_at: Date
    status: string
    silent_s: number | null
  }>`
    select id, types, host, pid, deaths, last_death_at, status,
           case when status = 'dead' then extract(epoch from stopped_at - last_heartbeat_at)::float8 end as silent_s
    from workers
    where last_death_at > now() - ${withinMs}::float8 * interval '1 millisecond'`.execute(ex)
  return rows.map((w) => ({
    id: w.id,
    types: w.types,
    host: w.host,
    pid: w.pid,
    deaths: w.deaths,
    lastDeathAt: w.last_death_at,
    back: w.status !== 'dead',
    silentS: w.silent_s === null ? null : Math.round(w.silent_s * 10) / 10,
  }))
}

/**
 * Workers that count as live but have been silent for `afterMs`, and no sweep
 * has declared dead. Silence counts as the sweep counts it: only since the
 * server started and since the caller itself reached it (`reachableForMs`), so
 * an outage stalls nobody.
 */
export async function stalledWorkers(
  ex: Executor,
  afterMs: number,
  reachableForMs: number | null = null,
): Promise<Array<{id: string; types: string[]; host: string; silentS: number}>> {
  const {rows} = await sql<{id: string; types: string[]; host: string; silent_s: number}>`
    with heard as (
      select greatest(pg_postmaster_start_time(), now() - ${reachableForMs}::float8 * interval '1 millisecond') as since
    )
    select id, types, host, extract(epoch from now() - last_heartbeat_at)::float8 as silent_s
    from workers
    where status in ('starting', 'idle', 'busy', 'draining')
      and greatest(last_heartbeat_at, (select since from heard)) < now() - ${afterMs}::float8 * interval '1 millisecond'`.execute(ex)
  return rows.map((w) => ({id: w.id, types: w.types, host: w.host, silentS: Math.round(w.silent_s)}))
}

/** Live workers PostgreSQL refused a connection (too many clients) within `withinMs`. */
export async function refusedWorkers(ex: Executor, withinMs: number): Promise<string[]> {
  const {rows} = await sql<{id: string}>`
    select id from workers
    where status in ('starting', 'idle', 'busy', 'draining') and db_refused_at > now() - ${withinMs}::float8 * interval '1 millisecond'
    order by id`.execute(ex)
  return rows.map((r) => r.id)
}

/** Live workers' last heartbeat round trip (ms; null before their second heartbeat). */
export async function heartbeatLatencies(ex: Executor): Promise<Array<{id: string; latencyMs: number | null}>> {
  const rows = await ex.selectFrom('workers').select(['id', 'heartbeat_latency_ms']).where('status', 'in', ['starting', 'idle', 'busy', 'draining']).execute()
  return rows.map((r) => ({id: r.id, latencyMs: r.heartbeat_latency_ms}))
}

/** Seconds since a sweep last ran (any sweeper), or null when none ever did; counted like silence (see stalledWorkers). */
export async function lastSweepAgeS(ex: Executor, reachableForMs: number | null = null): Promise<number | null> {
  const {rows} = await sql<{age_s: number}>`
    select extract(epoch from now() - greatest(updated_at, pg_postmaster_start_time(),
                                               now() - ${reachableForMs}::float8 * interval '1 millisecond'))::float8 as age_s
    from rvx_meta where key = ${SWEEP_STAMP_KEY}`.execute(ex)
  return rows[0]?.age_s ?? null
}

/** Workers alive and able to take work (starting, idle or busy). */
export async function liveWorkerCount(ex: Executor): Promise<number> {
  const row = await ex
    .selectFrom('workers')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', 'in', ['starting', 'idle', 'busy'])
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

export interface TerminalFailure {
  id: number
  kind: string
  status: 'failed' | 'quarantined'
  scope: string | null
  lastError: string | null
  attempts: number
  crashCount: number
}

/** Tasks that ended failed or quarantined within the last `withinMs` and are still so (their small partial index). */
export async function recentTerminalFailures(ex: Executor, withinMs: number): Promise<TerminalFailure[]> {
  const {rows} = await sql<{
    id: number
    kind: string
    status: 'failed' | 'quarantined'
    scope: string | null
    last_error: string | null
    attempts: number
    crash_count: number
  }>`
    select t.id, t.kind, t.status, t.scope, t.last_error, t.attempts, t.crash_count
    from tasks t
    where t.status in ('failed', 'quarantined') and t.finished_at > now() - ${withinMs}::float8 * interval '1 millisecond'
    order by t.id`.execute(ex)
  return rows.map((t) => ({id: t.id, kind: t.kind, status: t.status, scope: t.scope, lastError: t.last_error, attempts: t.attempts, crashCount: t.crash_count}))
}

export interface TaskEventView {
  /** Unique per event: task id and event id. */
  key: string
  at: Date
  kind: string
  event: string
  /** For completions: seconds from claim to completion. */
  durationS: number | null
}

/** Task events (other than claims) recorded since `since`, with their task's kind. */
export async function taskEventsSince(ex: Executor, since: Date): Promise<TaskEventView[]> {
  const {rows} = await sql<{key: string; at: Date; kind: string; event: string; duration_s: number | null}>`
    select e.task_id || ':' || e.id as key, e.at, t.kind, e.event,
           case when e.event = 'completed' then extract(epoch from e.at - t.started_at)::float8 end as duration_s
    from task_events e join tasks t on t.id = e.task_id
    where e.at > ${since} and e.event <> 'claimed'`.execute(ex)
  return rows.map((r) => ({key: r.key, at: r.at, kind: r.kind, event: r.event, durationS: r.duration_s}))
}

export interface PerMinute {
  /** Whole minutes ago (0: the current minute), database clock. */
  ago: number
  kind: string
  count: number
}

/** Tasks completed in each of the last `minutes` minutes, by kind (the BRIN index on task_events.at, then each task by key). */
export async function completionsPerMinute(ex: Executor, minutes: number): Promise<PerMinute[]> {
  const {rows} = await sql<{ago: number; kind: string; n: number}>`
    select floor(extract(epoch from now() - e.at) / 60)::int as ago, t.kind, count(*)::int as n
    from task_events e join tasks t on t.id = e.task_id
    where e.event = 'completed' and e.at > now() - ${minutes}::float8 * interval '1 minute'
    group by 1, 2`.execute(ex)
  return rows.filter((r) => r.ago >= 0 && r.ago < minutes).map((r) => ({ago: r.ago, kind: r.kind, count: r.n}))
}

/** The kind of each of these tasks (ids not found are absent). */
export async function taskKinds(ex: Executor, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map()
  const {rows} = await sql<{id: number; kind: string}>`select id, kind from tasks where id = any(${ids}::bigint[])`.execute(ex)
  return new Map(rows.map((r) => [Number(r.id), r.kind]))
}
