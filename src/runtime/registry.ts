import os from 'node:os'

import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import type {WorkerStatus} from '../db/schema.js'
import {NOTIFY_CHANNEL} from './config.js'
import {stillRunning} from './lease.js'
import type {ResourceMetrics} from './resources.js'

export interface WorkerIdentity {
  id: string
  types: string[]
  pool: string
  capabilities: string[]
  concurrency: number
  scope: string | null
  version: string
  lockKey: number
}

/** host-pid-random: unique, and says where to look. */
export function defaultWorkerId(): string {
  return `${os.hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`
}

/** 32-bit FNV-1a of the worker id: the second key of its liveness advisory lock. */
export function workerLockKey(id: string): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(id, 'utf8')) {
    hash ^= byte
    hash = Math.imul(hash, 0x01000193)
  }

  return hash | 0
}

/** Inserts or revives the worker's row (a stable --id may come back after a crash). */
export async function registerWorker(db: Executor, w: WorkerIdentity, metrics: ResourceMetrics, status: WorkerStatus): Promise<void> {
  await sql`
    insert into workers (id, types, pool, host, pid, version, capabilities, concurrency, scope, status, lock_key, resource_metrics)
    values (${w.id}, ${w.types}::text[], ${w.pool}, ${os.hostname()}, ${process.pid}, ${w.version}, ${w.capabilities}::text[],
            ${w.concurrency}, ${w.scope}, ${status}, ${w.lockKey}, ${JSON.stringify(metrics)}::jsonb)
    on conflict (id) do update set
      types = excluded.types, pool = excluded.pool, host = excluded.host, pid = excluded.pid, version = excluded.version,
      capabilities = excluded.capabilities, concurrency = excluded.concurrency, scope = excluded.scope,
      status = excluded.status, lock_key = excluded.lock_key, resource_metrics = excluded.resource_metrics,
      started_at = case when workers.status in ('stopped', 'dead') then now() else workers.started_at end,
      last_heartbeat_at = now(), stopped_at = null
  `.execute(db)
}

/** Tasks completed and failed per task kind (since the last write, or in all). */
export type KindCounts = Record<string, {done: number; failed: number}>

/** The worker's row: lifetime counts plus `counts`, per kind (workers.kind_counts) and in all (tasks_done, tasks_failed). */
function addCounts(counts: KindCounts) {
  const delta = JSON.stringify(counts)
  const total = (f: 'done' | 'failed') => Object.values(counts).reduce((n, c) => n + c[f], 0)
  return {
    tasksDone: sql<number>`tasks_done + ${total('done')}`,
    tasksFailed: sql<number>`tasks_failed + ${total('failed')}`,
    kindCounts: sql<unknown>`case when ${delta}::jsonb = '{}'::jsonb then kind_counts else (
      select jsonb_object_agg(k, jsonb_build_object(
        'done', coalesce((kind_counts -> k ->> 'done')::bigint, 0) + coalesce((${delta}::jsonb -> k ->> 'done')::bigint, 0),
        'failed', coalesce((kind_counts -> k ->> 'failed')::bigint, 0) + coalesce((${delta}::jsonb -> k ->> 'failed')::bigint, 0)))
      from (select jsonb_object_keys(kind_counts) union select jsonb_object_keys(${delta}::jsonb)) as keys (k)
    ) end`,
  }
}

export interface HeartbeatResult {
  /** The worker's row as the database sees it; 'dead' or missing means we were presumed dead. */
  rowStatus: WorkerStatus | null
  /**
   * Leases (task id -> epoch) this worker still holds: renewed by this heartbeat, or held but locked right now by one
   * of its own settling writes (renewed by the next beat: a heartbeat never waits for a row lock).
   */
  leases: Map<number, number>
  /** Tasks leased to this worker that it was not running (a claim or settlement lost with a connection): released. */
  released: number
}

export interface HeartbeatOptions {
  status: WorkerStatus
  metrics: ResourceMetrics
  leaseMs: number
  counts: KindCounts
  held: Array<{id: number; epoch: number}>
  /** How long the previous heartbeat took to come back (ms). */
  latencyMs?: number | null
  /** PostgreSQL refused this worker a connection since the last beat (too many clients). */
  refused?: boolean
  /**
   * Release tasks leased to this worker that it does not hold (after a claim or a settling write whose answer was
   * lost). Only when no claim is on its way: a claim's tasks are not in `held` until it answers.
   */
  releaseOrphans: boolean
}

/**
 * One statement: records liveness, latency and metrics, renews the leases of
 * the tasks the worker is running, and (when asked) releases any other task
 * leased to it (a claim whose response was lost with a connection would
 * otherwise be renewed forever and never run). It waits for no row lock: a
 * task row its own completion holds right now is skipped (still held, renewed
 * next time), so a heartbeat never queues behind the worker's own settling
 * writes. Counters are deltas since the last heartbeat, so completions never
 * contend on the worker's row.
 */
export async function heartbeat(db: Executor, workerId: string, options: HeartbeatOptions): Promise<HeartbeatResult> {
  const add = addCounts(options.counts)
  const {rows} = await sql<{row_status: WorkerStatus | null; leases: Array<[number, number]>; released: number}>`
    with w as (
      update workers set
        last_heartbeat_at = now(),
        resource_metrics = ${JSON.stringify(options.metrics)}::jsonb,
        status = case when status in ('dead', 'stopped') then status else ${options.status} end,
        tasks_done = ${add.tasksDone},
        tasks_failed = ${add.tasksFailed},
        kind_counts = ${add.kindCounts},
        heartbeat_latency_ms = coalesce(${options.latencyMs === undefined || options.latencyMs === null ? null : Math.round(options.latencyMs)}::int, heartbeat_latency_ms),
        db_refused_at = case when ${options.refused ?? false} then now() else db_refused_at end
      where id = ${workerId}
      returning status
    ), held as (
      select * from jsonb_to_recordset(${JSON.stringify(options.held)}::jsonb) as h(id bigint, epoch bigint)
    ), ours as (
      -- As last committed: a row that one of this worker's settling writes has locked is still ours.
      select t.id, t.lease_epoch
      from tasks t join held h on h.id = t.id and h.epoch = t.lease_epoch
      where t.lease_owner = ${workerId} and ${stillRunning('t')}
    ), free as (
      select t.id from tasks t where t.id in (select id from ours) for update of t skip locked
    ), renewed as (
      update tasks t set lease_expires_at = now() + ${options.leaseMs}::float8 * interval '1 millisecond'
      from free f where t.id = f.id
      returning t.id
    ), stray as (
      select t.id from tasks t
      where ${options.releaseOrphans} and t.lease_owner = ${workerId} and t.status = 'running'
        and not exists (select 1 from held h where h.id = t.id and h.epoch = t.lease_epoch)
      for update of t skip locked
    ), orphans as (
      update tasks t set status = 'queued', lease_owner = null, lease_expires_at = null, run_after = now(), updated_at = now()
      from stray s where t.id = s.id
      returning t.id, t.kind, t.lease_epoch
    ), ev as (
      insert into task_events (task_id, event, worker_id, lease_epoch, reason)
      select id, 'released', ${workerId}, lease_epoch, 'leased to this worker but not running there (claim or settlement lost with a connection)'
      from orphans
    ), woken as (
      select pg_notify(${NOTIFY_CHANNEL}, k.kind) from (select distinct kind from orphans) k
    )
    select (select status from w) as row_status,
           coalesce((select json_agg(json_build_array(id, lease_epoch)) from ours), '[]'::json) as leases,
           (select count(*) from orphans)::int as released,
           (select count(*) from renewed) as _renewed,
           (select count(*) from woken) as _woken
  `.execute(db)
  const row = rows[0]
  return {
    rowStatus: row?.row_status ?? null,
    leases: new Map((row?.leases ?? []).map(([id, epoch]) => [Number(id), Number(epoch)])),
    released: row?.released ?? 0,
  }
}

export async function markWorker(db: Executor, workerId: string, status: WorkerStatus, counts: KindCounts = {}): Promise<void> {
  const add = addCounts(counts)
  const stopped = status === 'stopped' || status === 'dead'
  await sql`
    update workers set
      status = ${status}, last_heartbeat_at = now(), stopped_at = case when ${stopped} then now() end,
      tasks_done = ${add.tasksDone}, tasks_failed = ${add.tasksFailed}, kind_counts = ${add.kindCounts}
    where id = ${workerId}
  `.execute(db)
}
