import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {TaskRow} from '../db/schema.js'
import {NOTIFY_CHANNEL, REVOKED_CHANNEL} from './config.js'

/** What a task needs from the worker that runs it; a worker claims only tasks it satisfies. */
export interface TaskRequirements {
  /** Every one of these must be among the worker's capabilities. */
  capabilities?: string[]
  minMemoryGb?: number
  minGpuVramGb?: number
  /** Only workers of this pool. */
  pool?: string
}

export interface EnqueueSpec {
  kind: string
  payload?: unknown
  /** Higher runs first. */
  priority?: number
  /** Not before: a Date, or milliseconds from now (database clock). */
  runAfter?: Date | number
  maxAttempts?: number
  requirements?: TaskRequirements
  /** A second enqueue with the same key is a no-op that returns the first task's id. */
  idempotencyKey?: string
  /** Groups tasks (the pipeline uses the run id); workers may be limited to one scope. */
  scope?: string
}

export interface Enqueued {
  id: number
  kind: string
  /** False when the idempotency key already existed. */
  created: boolean
}

export function requirementsJson(r: TaskRequirements | undefined): Record<string, unknown> {
  if (!r) return {}
  const out: Record<string, unknown> = {}
  if (r.capabilities?.length) out.capabilities = [...r.capabilities].sort()
  if (r.minMemoryGb !== undefined) out.min_memory_gb = r.minMemoryGb
  if (r.minGpuVramGb !== undefined) out.min_gpu_vram_gb = r.minGpuVramGb
  if (r.pool !== undefined) out.pool = r.pool
  return out
}

const CHUNK = 5000

/**
 * Enqueues tasks in one statement per 5,000 and wakes idle workers of those
 * kinds (NOTIFY, sent at commit). Pass a transaction to enqueue atomically
 * with other writes.
 */
export async function enqueue(db: Executor, specs: EnqueueSpec | EnqueueSpec[], defaults: {maxAttempts?: number} = {}): Promise<Enqueued[]> {
  const list = Array.isArray(specs) ? specs : [specs]
  const out: Enqueued[] = []
  for (let i = 0; i < list.length; i += CHUNK) out.push(...(await enqueueChunk(db, list.slice(i, i + CHUNK), defaults)))
  return out
}

async function enqueueChunk(db: Executor, specs: EnqueueSpec[], defaults: {maxAttempts?: number}): Promise<Enqueued[]> {
  const rows = specs.map((s, i) => ({
    ord: i,
    kind: s.kind,
    payload: s.payload ?? {},
    priority: s.priority ?? 0,
    delay_ms: typeof s.runAfter === 'number' ? s.runAfter : 0,
    run_at: s.runAfter instanceof Date ? s.runAfter.toISOString() : null,
    max_attempts: s.maxAttempts ?? defaults.maxAttempts ?? 5,
    requirements: requirementsJson(s.requirements),
    scope: s.scope ?? null,
    idempotency_key: s.idempotencyKey ?? null,
  }))
  // Rows are inserted in input order, so keyless rows get ascending ids in that order.
  const {rows: inserted} = await sql<{id: number; kind: string; idempotency_key: string | null}>`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(
        ord int, kind text, payload jsonb, priority int, delay_ms float8, run_at timestamptz,
        max_attempts int, requirements jsonb, scope text, idempotency_key text)
    ), inserted as (
      insert into tasks (kind, payload, priority, run_after, max_attempts, requirements, scope, idempotency_key)
      select kind, payload, priority, coalesce(run_at, now() + delay_ms * interval '1 millisecond'),
             max_attempts, requirements, scope, idempotency_key
      from input order by ord
      on conflict (idempotency_key) where idempotency_key is not null do nothing
      returning id, kind, idempotency_key, run_after
    ), woken as (
      select pg_notify(${NOTIFY_CHANNEL}, k.kind) from (select distinct kind from inserted where run_after <= now()) k
    )
    select id, kind, idempotency_key, (select count(*) from woken) as woken from inserted order by id
  `.execute(db)

  const byKey = new Map(inserted.filter((r) => r.idempotency_key !== null).map((r) => [r.idempotency_key!, r]))
  const keyless = inserted.filter((r) => r.idempotency_key === null)
  const missing = rows.filter((r) => r.idempotency_key !== null && !byKey.has(r.idempotency_key)).map((r) => r.idempotency_key!)
  const existing = new Map<string, {id: number; kind: string}>()
  if (missing.length > 0) {
    for (const e of await db.selectFrom('tasks').select(['id', 'kind', 'idempotency_key']).where('idempotency_key', 'in', missing).execute()) {
      existing.set(e.idempotency_key!, e)
    }
  }

  let k = 0
  return rows.map((r) => {
    if (r.idempotency_key === null) return {id: keyless[k++].id, kind: r.kind, created: true}
    const fresh = byKey.get(r.idempotency_key)
    if (fresh) return {id: fresh.id, kind: fresh.kind, created: true}
    const old = existing.get(r.idempotency_key)!
    return {id: old.id, kind: old.kind, created: false}
  })
}

/** Puts a failed, quarantined or canceled task back in the queue with fresh attempt and crash counts. */
export async function retryTask(db: Executor, taskId: number, reason = 'retried by request'): Promise<boolean> {
  const {rows} = await sql<{id: number}>`
    with retried as (
      update tasks set status = 'queued', attempts = 0, crash_count = 0, run_after = now(), lease_owner = null,
        lease_expires_at = null, finished_at = null, updated_at = now()
      where id = ${taskId} and status in ('failed', 'quarantined', 'canceled')
      returning id, kind, lease_epoch
    ), ev as (
      insert into task_events (task_id, event, lease_epoch, reason) select id, 'retried', lease_epoch, ${reason} from retried
    )
    select id, pg_notify(${NOTIFY_CHANNEL}, kind) from retried
  `.execute(db)
  return rows.length > 0
}

/**
 * Cancels tasks that have not finished: queued ones never run; running ones
 * lose their lease, so their worker's result is fenced out, and their worker
 * is told at once (it aborts their handlers).
 */
export async function cancelTasks(
  db: Executor,
  filter: {ids?: number[]; scope?: string; kinds?: string[]; statuses?: Array<'queued' | 'running'>},
  reason: string,
): Promise<number> {
  const statuses = filter.statuses ?? ['queued']
  const {rows} = await sql<{n: number}>`
    with target as (
      -- Rows locked right now are being settled by their worker: let them finish (and never deadlock with it).
      select id, lease_owner from tasks
      where status = any(${statuses}::text[])
        and (${filter.ids ?? null}::bigint[] is null or id = any(${filter.ids ?? null}::bigint[]))
        and (${filter.scope ?? null}::text is null or scope = ${filter.scope ?? null}::text)
        and (${filter.kinds ?? null}::text[] is null or kind = any(${filter.kinds ?? null}::text[]))
      for update skip locked
    ), canceled as (
      update tasks t set status = 'canceled', lease_owner = null, lease_expires_at = null, finished_at = now(), updated_at = now()
      from target where t.id = target.id
      returning t.id, t.lease_owner, t.lease_epoch
    ), ev as (
      insert into task_events (task_id, event, lease_epoch, reason) select id, 'canceled', lease_epoch, ${reason} from canceled
    ), revoked as (
      -- Workers holding canceled tasks hear it at once (at commit): they stop those handlers instead of finishing paid work.
      select pg_notify(${REVOKED_CHANNEL}, o.owner) from (select distinct lease_owner as owner from target where lease_owner is not null) o
    )
    select (select count(*)::int from canceled) as n, (select count(*) from revoked) as _revoked
  `.execute(db)
  return rows[0]?.n ?? 0
}

export async function getTask(db: Executor, id: number): Promise<TaskRow | undefined> {
  return db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Whether any task of these kinds (in this scope, if given) is queued, runnable now or later. */
export async function hasQueuedTasks(db: Executor, f: {kinds: string[]; scope?: string | null}): Promise<boolean> {
  let q = db.selectFrom('tasks').select('id').where('status', '=', 'queued').where('kind', 'in', f.kinds)
  if (f.scope) q = q.where('scope', '=', f.scope)
  return (await q.limit(1).execute()).length > 0
}

/**
 * How long until the earliest queued task of these kinds becomes due (a
 * retry's backoff, a snooze, a run_after), or null when none is waiting: an
 * idle worker sleeps until then instead of until its next poll.
 */
export async function nextDueInMs(db: Executor, f: {kinds: string[]; scope?: string | null}): Promise<number | null> {
  let q = db
    .selectFrom('tasks')
    .select(sql<number>`extract(epoch from min(run_after) - now()) * 1000`.as('ms'))
    .where('status', '=', 'queued')
    .where('kind', 'in', f.kinds)
    .where('run_after', '>', sql<Date>`now()`)
  if (f.scope) q = q.where('scope', '=', f.scope)
  const row = await q.executeTakeFirst()
  return row?.ms === null || row?.ms === undefined ? null : Math.max(0, Number(row.ms))
}
