import {type Kysely, sql} from 'kysely'

import type {Database} from '../db/schema.js'

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

/** Fleet by worker type (the same numbers psql users get from rvx_worker_stats()). */
export async function workerStats(db: Kysely<Database>): Promise<WorkerTypeStats[]> {
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
export async function queueStats(db: Kysely<Database>): Promise<QueueStats[]> {
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
export async function listWorkers(db: Kysely<Database>, options: {all?: boolean} = {}): Promise<WorkerView[]> {
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
    status: r.status,
    capabilities: r.capabilities,
    concurrency: r.concurrency,
    startedAt: r.started_at,
    lastHeartbeatAt: r.last_heartbeat_at,
    heartbeatAgeS: Math.round(Number(r.age) * 10) / 10,
    resourceMetrics: r.resource_metrics,
    tasksDone: Number(r.tasks_done),
    tasksFailed: Number(r.tasks_failed),
    currentTasks: (r.current as Array<{id: number; kind: string; elapsedS: number}>).map((c) => ({id: Number(c.id), kind: c.kind, elapsedS: Number(c.elapsedS)})),
  }))
}

/** Removes stopped and dead workers whose last heartbeat is older than `olderThanMs`. */
export async function pruneWorkers(db: Kysely<Database>, olderThanMs: number): Promise<string[]> {
  const {rows} = await sql<{id: string}>`
    delete from workers
    where status in ('stopped', 'dead') and last_heartbeat_at < now() - ${olderThanMs}::float8 * interval '1 millisecond'
    returning id`.execute(db)
  return rows.map((r) => r.id)
}
