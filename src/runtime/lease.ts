import {type RawBuilder, sql, type Transaction} from '../db/kysely.js'
import {type Executor, inTransaction} from '../db/executor.js'
import type {Database, TaskEventKind} from '../db/schema.js'
import {NOTIFY_CHANNEL} from './config.js'

/**
 * The lease protocol. A claim gives each task a new lease epoch; every later
 * write about that task (complete, fail, snooze, release) names the epoch it
 * holds and takes effect only if the task is still running under that epoch.
 * A worker presumed dead whose tasks went to someone else finds its result
 * rejected here and recorded as a fenced_out event, never applied.
 */

/**
 * "Still running", for statements that name their tasks by id: written so that no index on status can serve it.
 * Statistics taken while a queue waits say almost nothing is running, so the planner would rather walk the status
 * index's entries for 'running' than look the ids up by primary key; those entries are of every task run since the
 * last vacuum, a walk that grows as a deep queue drains (measured: completions ten times slower by the middle of a
 * 1,000,000-task drain, heartbeats of seconds holding the leases they renew). By primary key it costs the same at
 * any depth. Written as a CASE, the planner has no statistics to judge it by either: written `(status = 'running')
 * is true` it was still judged by them (hardly a row running), and a batch completion on a table of 20,000 tasks was
 * planned as a scan of the whole table, each running row matched against every item of the batch. The fence is
 * unchanged: it is the same test, on the row's latest version.
 */
export function stillRunning(alias?: 't'): RawBuilder<boolean> {
  return sql.raw<boolean>(`case when ${alias ? `${alias}.` : ''}status = 'running' then true else false end`)
}

export interface ClaimedTask<P = unknown> {
  id: number
  kind: string
  payload: P
  priority: number
  attempts: number
  maxAttempts: number
  crashCount: number
  /** Times it was snoozed (rate limited) so far. */
  snoozes: number
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

type ClaimedRow = {
  id: number
  kind: string
  payload: unknown
  priority: number
  attempts: number
  max_attempts: number
  crash_count: number
  snoozes: number
  lease_epoch: number
  scope: string | null
  /** Milliseconds since the epoch: a number is read in a fraction of the time a timestamp's text takes. */
  created_ms: number
}

/**
 * The claim as CTEs (picked, leased, claim_ev) for use in a WITH clause: a
 * materialized CTE picks runnable tasks FOR UPDATE SKIP LOCKED (concurrent
 * claimers never wait on or double-claim a row), one UPDATE leases them with
 * a new epoch, one INSERT records it. Shared by claimTasks and completeAndClaim.
 */
function claimCtes(f: ClaimFilter) {
  return sql`
    picked as materialized (
      -- Per kind, an ordered walk of the partial claim index (no sort of the whole queue), then the best of those.
      select c.id
      from unnest(${f.kinds}::text[]) as k(kind)
      cross join lateral (
        select t.id, t.priority, t.run_after
        from tasks t
        where t.status = 'queued'
          and t.kind = k.kind
          and t.run_after <= now()
          and (${f.scope ?? null}::text is null or t.scope = ${f.scope ?? null}::text)
          -- A paused scope's tasks wait (rvx runs pause); one primary-key probe, on a table that is nearly always empty.
          and (t.scope is null or not exists (select 1 from paused_scopes p where p.scope = t.scope))
          and (t.requirements = '{}'::jsonb or (
                (not t.requirements ? 'capabilities' or (t.requirements -> 'capabilities') <@ ${JSON.stringify(f.capabilities)}::jsonb)
            and (not t.requirements ? 'pool' or t.requirements ->> 'pool' = ${f.pool})
            and coalesce((t.requirements ->> 'min_memory_gb')::float8, 0) <= ${f.memoryAvailableGb}
            and coalesce((t.requirements ->> 'min_gpu_vram_gb')::float8, 0) <= ${f.gpuVramAvailableGb}))
        order by t.priority desc, t.run_after, t.id
        limit ${f.limit}
        for update skip locked
      ) c
      order by c.priority desc, c.run_after, c.id
      limit ${f.limit}
    ), leased as (
      update tasks t
      set status = 'running', lease_owner = ${f.workerId}, lease_epoch = t.lease_epoch + 1,
          lease_expires_at = now() + ${f.leaseMs}::float8 * interval '1 millisecond',
          started_at = now(), updated_at = now()
      -- By primary key (a join would let the planner scan the whole table for a few hundred rows).
      where t.id = any(array(select id from picked))
      returning t.id, t.kind, t.payload, t.priority, t.attempts, t.max_attempts, t.crash_count, t.snoozes, t.lease_epoch, t.scope,
        (extract(epoch from t.created_at) * 1000)::float8 as created_ms
    ), claim_ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch)
      select id, 'claimed', ${f.workerId}, lease_epoch from leased
    )`
}

function toClaimed(r: ClaimedRow): ClaimedTask {
  return {
    id: r.id,
    kind: r.kind,
    payload: r.payload,
    priority: r.priority,
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    crashCount: r.crash_count,
    snoozes: r.snoozes,
    epoch: r.lease_epoch,
    scope: r.scope,
    createdAt: new Date(r.created_ms),
  }
}

/** Claims up to `limit` runnable tasks in one statement. */
export async function claimTasks(db: Executor, f: ClaimFilter): Promise<ClaimedTask[]> {
  if (f.limit <= 0) return []
  // One JSON value for the batch: parsed in one call, where a thousand rows of eleven text columns cost the worker
  // several times as much (each field its own string, then its own parse).
  const {rows} = await sql<{claimed: ClaimedRow[] | null}>`
    with ${claimCtes(f)} select json_agg(leased order by priority desc, id) as claimed from leased`.execute(db)
  return (rows[0]?.claimed ?? []).map(toClaimed)
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
export async function completeTask(
  db: Executor,
  lease: Lease,
  options: {result?: unknown; apply?: (trx: Transaction<Database>) => Promise<void>} = {},
): Promise<boolean> {
  const result = options.result === undefined ? null : JSON.stringify(options.result)
  const statement = (ex: Executor) =>
    sql<{id: number}>`
    with done as (
      update tasks set status = 'completed', result = ${result}::jsonb, lease_owner = null, lease_expires_at = null,
        finished_at = now(), updated_at = now()
      where id = ${lease.taskId} and lease_epoch = ${lease.epoch} and ${stillRunning()}
      returning id, lease_epoch
    )
    insert into task_events (task_id, event, worker_id, lease_epoch)
    select id, 'completed', ${lease.workerId}, lease_epoch from done
    returning task_id as id
  `.execute(ex)

  let applied: boolean
  if (options.apply) {
    const apply = options.apply
    applied = await inTransaction(db, async (trx) => {
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

/**
 * Completes many tasks (no `apply`) in one statement, each fenced on its own
 * epoch, and, when `claim` is given, claims their successors in the same
 * statement: one commit instead of two per batch. Returns the ids that
 * completed (the caller settles the rest one by one: completeTask tells a
 * fence from a retry of its own commit) and the newly claimed tasks.
 */
export async function completeTasks(
  db: Executor,
  workerId: string,
  items: Array<{taskId: number; epoch: number; result?: unknown}>,
  claim?: ClaimFilter,
): Promise<{completed: Set<number>; claimed: ClaimedTask[]}> {
  const input = items.map((i) => ({id: i.taskId, epoch: i.epoch, result: i.result === undefined ? null : i.result}))
  const claiming = claim && claim.limit > 0
  const {rows} = await sql<{done: number[] | null; claimed: ClaimedRow[] | null}>`
    with input as (
      -- One JSON document, not three arrays: the arrays parse faster, but they tell the planner the batch's true size,
      -- and against statistics that say nothing is running (a queue analyzed while it waits) it then scanned the whole
      -- table and matched every running row against every item: 164 ms for a batch of 1,000 at 50,000 queued, against
      -- 5 ms this way, whose planner estimate of 100 rows keeps the primary-key lookups.
      select * from jsonb_to_recordset(${JSON.stringify(input)}::jsonb) as x(id bigint, epoch bigint, result jsonb)
    ), done as (
      update tasks t set status = 'completed', result = i.result, lease_owner = null, lease_expires_at = null,
        finished_at = now(), updated_at = now()
      from input i
      where t.id = i.id and t.lease_epoch = i.epoch and ${stillRunning('t')}
      returning t.id, t.lease_epoch
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch)
      select id, 'completed', ${workerId}, lease_epoch from done
    )${claiming ? sql`, ${claimCtes(claim)}` : sql``}
    select (select json_agg(id) from done) as done,
           ${claiming ? sql`(select json_agg(leased order by priority desc, id) from leased)` : sql`null::json`} as claimed
  `.execute(db)
  const row = rows[0]
  return {
    completed: new Set(row?.done ?? []),
    claimed: (row?.claimed ?? []).map(toClaimed),
  }
}

export type FailOutcome = 'retry_scheduled' | 'failed' | 'fenced_out'

/**
 * Records a failed attempt: back to the queue after `retryInMs` while attempts
 * remain, else (or when `permanent`) the terminal failed state.
 */
export async function failTask(
  db: Executor,
  lease: Lease,
  error: string,
  options: {permanent: boolean; retryInMs: number; onTerminal?: (trx: Transaction<Database>) => Promise<void>},
): Promise<FailOutcome> {
  const statement = (ex: Executor) =>
    sql<{status: string}>`
    with failed as (
      update tasks t set
        attempts = t.attempts + 1,
        status = case when ${options.permanent} or t.attempts + 1 >= t.max_attempts then 'failed' else 'queued' end,
        run_after = case when ${options.permanent} or t.attempts + 1 >= t.max_attempts then t.run_after
                         else now() + ${options.retryInMs}::float8 * interval '1 millisecond' end,
        finished_at = case when ${options.permanent} or t.attempts + 1 >= t.max_attempts then now() end,
        last_error = ${error}, lease_owner = null, lease_expires_at = null, updated_at = now()
      where t.id = ${lease.taskId} and t.lease_epoch = ${lease.epoch} and ${stillRunning('t')}
      returning t.id, t.status, t.lease_epoch
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch, reason)
      select id, case when status = 'failed' then 'failed' else 'retry_scheduled' end, ${lease.workerId}, lease_epoch, ${error} from failed
    )
    select status from failed
  `.execute(ex)

  // A terminal failure may have consequences (the pipeline re-plans its run): they commit with it.
  const onTerminal = options.onTerminal
  const rows = onTerminal
    ? await inTransaction(db, async (trx) => {
        const result = (await statement(trx)).rows
        if (result[0]?.status === 'failed') await onTerminal(trx)
        return result
      })
    : (await statement(db)).rows
  if (rows.length === 0) {
    await recordFencedOut(db, lease, 'fail')
    return 'fenced_out'
  }

  return rows[0].status === 'failed' ? 'failed' : 'retry_scheduled'
}

/** Back to the queue until `delayMs` from now, without using an attempt (rate limits); counted in `snoozes`. */
export async function snoozeTask(db: Executor, lease: Lease, delayMs: number, reason: string): Promise<boolean> {
  return requeueHeld(db, lease, 'snoozed', reason, delayMs)
}

/** Back to the queue, runnable at once, no attempt used (graceful stop). */
export async function releaseTask(db: Executor, lease: Lease, reason: string): Promise<boolean> {
  return requeueHeld(db, lease, 'released', reason, 0)
}

/** Releases many held tasks in one statement (a stopping worker's): runnable at once, no attempt used. Returns how many. */
export async function releaseTasks(db: Executor, leases: Lease[], reason: string): Promise<number> {
  if (leases.length === 0) return 0
  const input = JSON.stringify(leases.map((l) => ({id: l.taskId, epoch: l.epoch, worker: l.workerId})))
  const {rows} = await sql<{n: number}>`
    with input as (
      select * from jsonb_to_recordset(${input}::jsonb) as x(id bigint, epoch bigint, worker text)
    ), requeued as (
      update tasks t set status = 'queued', run_after = now(), lease_owner = null, lease_expires_at = null, updated_at = now()
      from input i
      where t.id = i.id and t.lease_epoch = i.epoch and ${stillRunning('t')}
      returning t.id, t.kind, t.lease_epoch, i.worker
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch, reason)
      select id, 'released', worker, lease_epoch, ${reason} from requeued
    ), woken as (
      select pg_notify(${NOTIFY_CHANNEL}, k.kind) from (select distinct kind from requeued) k
    )
    select (select count(*)::int from requeued) as n, (select count(*) from woken) as _woken
  `.execute(db)
  return rows[0]?.n ?? 0
}

async function requeueHeld(db: Executor, lease: Lease, event: TaskEventKind, reason: string, delayMs: number): Promise<boolean> {
  const {rows} = await sql<{id: number}>`
    with requeued as (
      update tasks set status = 'queued', run_after = now() + ${delayMs}::float8 * interval '1 millisecond',
        lease_owner = null, lease_expires_at = null, updated_at = now(),
        snoozes = snoozes + case when ${event} = 'snoozed' then 1 else 0 end
      where id = ${lease.taskId} and lease_epoch = ${lease.epoch} and ${stillRunning()}
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

/**
 * Why this worker no longer holds these leases: `canceled` (its run met its target, or was canceled: no fence, with the
 * reason), `settled` (this worker's own settlement committed before it heard back: nothing was lost), or `fenced`
 * (the lease moved on: the sweep requeued it, another worker has it, or this one was presumed dead).
 */
export async function whyLeasesLost(
  db: Executor,
  leases: Lease[],
): Promise<Map<number, {why: 'canceled'; reason: string} | {why: 'settled'} | {why: 'fenced'}>> {
  if (leases.length === 0) return new Map()
  // Asked about this holding (its epoch), not the task as it is now: a task canceled while held here may have been
  // reopened and claimed again since, and is running at a later epoch (that is still a cancel, not a fence).
  const {rows} = await sql<{id: number; cancel_reason: string | null; settled: boolean}>`
    select t.id,
      (select coalesce(e.reason, 'canceled') from task_events e where e.task_id = t.id and e.event = 'canceled' and e.lease_epoch = l.epoch
         order by e.id desc limit 1) as cancel_reason,
      exists (select 1 from task_events e where e.task_id = t.id and e.lease_epoch = l.epoch and e.worker_id = l."workerId"
                and e.event in ('completed', 'failed', 'retry_scheduled', 'snoozed', 'released')) as settled
    from jsonb_to_recordset(${JSON.stringify(leases)}::jsonb) as l("taskId" bigint, epoch bigint, "workerId" text)
    join tasks t on t.id = l."taskId"`.execute(db)
  return new Map(
    rows.map((r) => [Number(r.id), r.cancel_reason !== null ? {why: 'canceled', reason: r.cancel_reason} : r.settled ? {why: 'settled'} : {why: 'fenced'}]),
  )
}

/**
 * Records a settlement the fence rejected: the lease moved on (the task was requeued and claimed elsewhere, or this
 * worker was presumed dead). A canceled task's is not recorded: the cancel took the lease on purpose, and its own
 * event says why (rvx_fenced_out_total counts real fencing only).
 */
async function recordFencedOut(db: Executor, lease: Lease, attempted: string): Promise<void> {
  await sql`
    insert into task_events (task_id, event, worker_id, lease_epoch, reason)
    select id, 'fenced_out', ${lease.workerId}, ${lease.epoch},
      ${attempted} || ' rejected: lease epoch ' || ${lease.epoch}::text || ' no longer holds (task is ' || status || ', epoch ' || lease_epoch || ')'
    from tasks where id = ${lease.taskId} and status <> 'canceled'
  `.execute(db)
}
