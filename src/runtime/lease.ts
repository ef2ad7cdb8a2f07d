import {type Kysely, sql, type Transaction} from 'kysely'

import type {Database, TaskEventKind} from '../db/schema.js'
import {NOTIFY_CHANNEL} from './config.js'

/**
 * The lease protocol. A claim gives each task a new lease epoch; every later
 * write about that task (complete, fail, snooze, release) names the epoch it
 * holds and takes effect only if the task is still running under that epoch.
 * A worker presumed dead whose tasks went to someone else finds its result
 * rejected here and recorded as a fenced_out event, never applied.
 */

export interface ClaimedTask<P = unknown> {
  id: number
  kind: string
  payload: P
  priority: number
  attempts: number
  maxAttempts: number
  crashCount: number
  epoch: number
  scope: string | null
  createdAt: Date
}

export interface ClaimFilter {
  workerId: string
  kinds: string[]
  limit: number
  leaseMs: number
  pool: string
  capabilities: string[]
  memoryAvailableGb: number
  gpuVramAvailableGb: number
  scope?: string | null
}

type Executor = Kysely<Database> | Transaction<Database>

/**
 * Claims up to `limit` runnable tasks in one statement: a materialized CTE
 * picks them FOR UPDATE SKIP LOCKED (concurrent claimers never wait on or
 * double-claim a row), then one UPDATE leases them and one INSERT records it.
 */
export async function claimTasks(db: Executor, f: ClaimFilter): Promise<ClaimedTask[]> {
  if (f.limit <= 0) return []
  const {rows} = await sql<{
    id: number
    kind: string
    payload: unknown
    priority: number
    attempts: number
    max_attempts: number
    crash_count: number
    lease_epoch: number
    scope: string | null
    created_at: Date
  }>`
    with picked as materialized (
      select t.id
      from tasks t
      where t.status = 'queued'
        and t.kind = any(${f.kinds}::text[])
        and t.run_after <= now()
        and (${f.scope ?? null}::text is null or t.scope = ${f.scope ?? null}::text)
        and (t.requirements = '{}'::jsonb or (
              (not t.requirements ? 'capabilities' or (t.requirements -> 'capabilities') <@ ${JSON.stringify(f.capabilities)}::jsonb)
          and (not t.requirements ? 'pool' or t.requirements ->> 'pool' = ${f.pool})
          and coalesce((t.requirements ->> 'min_memory_gb')::float8, 0) <= ${f.memoryAvailableGb}
          and coalesce((t.requirements ->> 'min_gpu_vram_gb')::float8, 0) <= ${f.gpuVramAvailableGb}))
      order by t.priority desc, t.run_after, t.id
      limit ${f.limit}
      for update skip locked
    ), leased as (
      update tasks t
      set status = 'running', lease_owner = ${f.workerId}, lease_epoch = t.lease_epoch + 1,
          lease_expires_at = now() + ${f.leaseMs}::float8 * interval '1 millisecond',
          started_at = now(), updated_at = now()
      from picked
      where t.id = picked.id
      returning t.id, t.kind, t.payload, t.priority, t.attempts, t.max_attempts, t.crash_count, t.lease_epoch, t.scope, t.created_at
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch)
      select id, 'claimed', ${f.workerId}, lease_epoch from leased
    )
    select * from leased order by priority desc, id
  `.execute(db)
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    payload: r.payload,
    priority: r.priority,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    crashCount: r.crash_count,
    epoch: r.lease_epoch,
    scope: r.scope,
    createdAt: r.created_at,
  }))
}

export interface Lease {
  taskId: number
  epoch: number
  workerId: string
}

/**
 * Completes a task if the lease still holds. Returns false when fenced out
 * (the event is recorded either way). With `apply`, the handler's writes run
 * in the same transaction, after the fence: they commit only with the completion.
 */
export async function completeTask(db: Kysely<Database>, lease: Lease, options: {result?: unknown; apply?: (trx: Transaction<Database>) => Promise<void>} = {}): Promise<boolean> {
  const result = options.result === undefined ? null : JSON.stringify(options.result)
  const statement = (ex: Executor) => sql<{id: number}>`
    with done as (
      update tasks set status = 'completed', result = ${result}::jsonb, lease_owner = null, lease_expires_at = null,
        finished_at = now(), updated_at = now()
      where id = ${lease.taskId} and lease_epoch = ${lease.epoch} and status = 'running'
      returning id, lease_epoch
    )
    insert into task_events (task_id, event, worker_id, lease_epoch)
    select id, 'completed', ${lease.workerId}, lease_epoch from done
    returning task_id as id
  `.execute(ex)

  let applied: boolean
  if (options.apply) {
    const apply = options.apply
    applied = await db.transaction().execute(async (trx) => {
      const {rows} = await statement(trx)
      if (rows.length === 0) return false
      await apply(trx)
      return true
    })
  } else {
    applied = (await statement(db)).rows.length > 0
  }

  if (applied) return true
  // A retry after a lost connection may find its own completion already committed: that is success, not a fence.
  const row = await db.selectFrom('tasks').select(['status', 'lease_epoch']).where('id', '=', lease.taskId).executeTakeFirst()
  if (row?.status === 'completed' && Number(row.lease_epoch) === lease.epoch) return true
  await recordFencedOut(db, lease, 'complete')
  return false
}

export type FailOutcome = 'retry_scheduled' | 'failed' | 'fenced_out'

/**
 * Records a failed attempt: back to the queue after `retryInMs` while attempts
 * remain, else (or when `permanent`) the terminal failed state.
 */
export async function failTask(db: Kysely<Database>, lease: Lease, error: string, options: {permanent: boolean; retryInMs: number}): Promise<FailOutcome> {
  const {rows} = await sql<{status: string}>`
    with failed as (
      update tasks t set
        attempts = t.attempts + 1,
        status = case when ${options.permanent} or t.attempts + 1 >= t.max_attempts then 'failed' else 'queued' end,
        run_after = case when ${options.permanent} or t.attempts + 1 >= t.max_attempts then t.run_after
                         else now() + ${options.retryInMs}::float8 * interval '1 millisecond' end,
        finished_at = case when ${options.permanent} or t.attempts + 1 >= t.max_attempts then now() end,
        last_error = ${error}, lease_owner = null, lease_expires_at = null, updated_at = now()
      where t.id = ${lease.taskId} and t.lease_epoch = ${lease.epoch} and t.status = 'running'
      returning t.id, t.status, t.lease_epoch
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch, reason)
      select id, case when status = 'failed' then 'failed' else 'retry_scheduled' end, ${lease.workerId}, lease_epoch, ${error} from failed
    )
    select status from failed
  `.execute(db)
  if (rows.length === 0) {
    await recordFencedOut(db, lease, 'fail')
    return 'fenced_out'
  }

  return rows[0].status === 'failed' ? 'failed' : 'retry_scheduled'
}

/** Back to the queue until `delayMs` from now, without using an attempt (rate limits). */
export async function snoozeTask(db: Kysely<Database>, lease: Lease, delayMs: number, reason: string): Promise<boolean> {
  return requeueHeld(db, lease, 'snoozed', reason, delayMs)
}

/** Back to the queue, runnable at once, no attempt used (graceful stop). */
export async function releaseTask(db: Kysely<Database>, lease: Lease, reason: string): Promise<boolean> {
  return requeueHeld(db, lease, 'released', reason, 0)
}

async function requeueHeld(db: Kysely<Database>, lease: Lease, event: TaskEventKind, reason: string, delayMs: number): Promise<boolean> {
  const {rows} = await sql<{id: number}>`
    with requeued as (
      update tasks set status = 'queued', run_after = now() + ${delayMs}::float8 * interval '1 millisecond',
        lease_owner = null, lease_expires_at = null, updated_at = now()
      where id = ${lease.taskId} and lease_epoch = ${lease.epoch} and status = 'running'
      returning id, kind, lease_epoch
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch, reason)
      select id, ${event}, ${lease.workerId}, lease_epoch, ${reason} from requeued
    )
    select id, case when ${delayMs}::float8 <= 0 then pg_notify(${NOTIFY_CHANNEL}, kind) end from requeued
  `.execute(db)
  if (rows.length === 0) await recordFencedOut(db, lease, event)
  return rows.length > 0
}

async function recordFencedOut(db: Executor, lease: Lease, attempted: string): Promise<void> {
  await sql`
    insert into task_events (task_id, event, worker_id, lease_epoch, reason)
    select id, 'fenced_out', ${lease.workerId}, ${lease.epoch},
      ${attempted} || ' rejected: lease epoch ' || ${lease.epoch}::text || ' no longer holds (task is ' || status || ', epoch ' || lease_epoch || ')'
    from tasks where id = ${lease.taskId}
  `.execute(db)
}
