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
  completed: number
  failed: number
  quarantined: number
  canceled: number
  /** Queued and runnable now: the oldest one's wait, in seconds. */
  oldestQueuedAgeS: number | null
  /** Queued after a failed attempt or a snooze, waiting for their run_after. */
  retriesWaiting: number
}

/** Queue depth by kind and status; one scan of the claim-shaped indexes. */
export async function queueStats(db: Kysely<Database>, options: {scope?: string} = {}): Promise<QueueStats[]> {
  const scope = options.scope ?? null
  const {rows} = await sql<Record<string, string | number | null>>`
    select kind,
      count(*) filter (where status = 'queued') as queued,
      count(*) filter (where status = 'running') as running,
      count(*) filter (where status = 'completed') as completed,
      count(*) filter (where status = 'failed') as failed,
      count(*) filter (where status = 'quarantined') as quarantined,
      count(*) filter (where status = 'canceled') as canceled,
      extract(epoch from now() - min(run_after) filter (where status = 'queued' and run_after <= now())) as oldest,
      count(*) filter (where status = 'queued' and run_after > now() and (attempts > 0 or updated_at > created_at)) as retries_waiting
    from tasks
    where ${scope}::text is null or scope = ${scope}::text
    group by kind
    order by kind
  `.execute(db)
  return rows.map((r) => ({
    kind: String(r.kind),
    queued: Number(r.queued),
    running: Number(r.running),
    completed: Number(r.completed),
    failed: Number(r.failed),
    quarantined: Number(r.quarantined),
    canceled: Number(r.canceled),
    oldestQueuedAgeS: r.oldest === null ? null : Math.round(Number(r.oldest) * 10) / 10,
    retriesWaiting: Number(r.retries_waiting),
  }))
}
