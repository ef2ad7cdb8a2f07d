import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'
import {LOCK_CLASS_SWEEP, LOCK_CLASS_WORKER, NOTIFY_CHANNEL, type RuntimeConfig} from './config.js'

/** rvx_meta key whose updated_at is when a sweep last ran. */
export const SWEEP_STAMP_KEY = 'sweep.last'

export interface SweepResult {
  /** False when another process held the sweep lock (it is sweeping right now). */
  swept: boolean
  deadWorkers: string[]
  requeued: number
  quarantined: number
}

/**
 * Finds dead workers and orphaned leases and puts their tasks back, in one
 * statement under a transaction-scoped advisory lock (one sweeper at a time;
 * the others skip). It never waits for a row lock (SKIP LOCKED throughout), so
 * it never holds the sweep lock while it waits. All time arithmetic is on the
 * database clock.
 *
 * Silence is counted only from when a worker could have been heard: since
 * the server started (nobody heartbeats into a stopped database) and, when
 * the sweeper says so (`reachableForMs`), since it last got through to the
 * database itself (an outage between the fleet and the server). So an
 * outage of any length, restart or not, kills nobody.
 *
 * A worker is dead when
 *  - it has not heartbeaten for deadAfterMs of that time, or
 *  - its database session is gone (its liveness advisory lock is free: the
 *    process died and the kernel closed its socket) and it has not heartbeaten
 *    for sessionGraceMs. This rule waits until that time is deadAfterMs long,
 *    so a PostgreSQL restart (every session gone) kills nobody.
 *
 * Its running tasks are requeued (crash_count + 1, no attempt used), or
 * quarantined once they have crashed maxCrashes times. Leases that simply
 * ran out are the backstop and are treated the same way; one that ran out
 * before that time began (the server was down) is given deadAfterMs for its
 * worker to renew it.
 */
export async function sweep(
  db: Executor,
  config: Pick<RuntimeConfig, 'deadAfterMs' | 'sessionGraceMs' | 'maxCrashes'>,
  options: {reachableForMs?: number | null} = {},
): Promise<SweepResult> {
  const reachableForMs = options.reachableForMs ?? null
  const {rows} = await sql<{swept: boolean; dead: string[] | null; requeued: number; quarantined: number}>`
    with lock as (
      select pg_try_advisory_xact_lock(${LOCK_CLASS_SWEEP}, 0) as ok
    ), heard as (
      -- greatest() skips a null: without reachableForMs, since the server started.
      select greatest(pg_postmaster_start_time(), now() - ${reachableForMs}::float8 * interval '1 millisecond') as since
    ), sessions as (
      select l.objid::int as key
      from pg_locks l
      where l.locktype = 'advisory' and l.granted and l.classid::int = ${LOCK_CLASS_WORKER} and l.objsubid = 2
        and l.database = (select oid from pg_database where datname = current_database())
    ), silent as (
      -- A worker whose row is locked right now is writing its heartbeat: alive, and never waited for.
      select w.id from workers w
      where (select ok from lock)
        and w.status in ('starting', 'idle', 'busy', 'draining')
        and (greatest(w.last_heartbeat_at, (select since from heard)) < now() - ${config.deadAfterMs}::float8 * interval '1 millisecond'
          or (w.last_heartbeat_at < now() - ${config.sessionGraceMs}::float8 * interval '1 millisecond'
              and (select since from heard) < now() - ${config.deadAfterMs}::float8 * interval '1 millisecond'
              and w.lock_key not in (select key from sessions)))
      for update of w skip locked
    ), dead as (
      update workers w set status = 'dead', stopped_at = now(), deaths = w.deaths + 1, last_death_at = now()
      from silent s where w.id = s.id
      returning w.id
    ), stamp as (
      -- When the fleet was last swept: a sweep that nobody manages to run for dead-after is itself alerted.
      insert into rvx_meta (key, value, updated_at)
      select ${SWEEP_STAMP_KEY}, '{}'::jsonb, now() where (select ok from lock)
      on conflict (key) do update set updated_at = excluded.updated_at
      returning 1
    ), orphaned as (
      select t.id, t.lease_owner, t.lease_epoch, t.crash_count,
             case when t.lease_owner in (select id from dead) then 'requeued_after_death' else 'requeued_lease_expired' end as why
      from tasks t
      where (select ok from lock)
        and t.status = 'running'
        and (t.lease_owner in (select id from dead)
          or (t.lease_expires_at < now()
              and (t.lease_expires_at > (select since from heard)
                or (select since from heard) < now() - ${config.deadAfterMs}::float8 * interval '1 millisecond')))
      for update of t skip locked
    ), moved as (
      update tasks t set
        status = case when o.crash_count + 1 >= ${config.maxCrashes} then 'quarantined' else 'queued' end,
        crash_count = t.crash_count + 1,
        lease_owner = null, lease_expires_at = null, run_after = now(), updated_at = now(),
        finished_at = case when o.crash_count + 1 >= ${config.maxCrashes} then now() end,
        last_error = case when o.crash_count + 1 >= ${config.maxCrashes}
                          then 'quarantined: its worker died under it ' || (o.crash_count + 1) || ' times'
                          else t.last_error end
      from orphaned o
      where t.id = o.id
      returning t.id, t.kind, t.status, o.lease_owner, o.lease_epoch, o.why
    ), events as (
      insert into task_events (task_id, event, worker_id, lease_epoch, reason)
      select id, why, lease_owner, lease_epoch,
             case when why = 'requeued_after_death' then 'worker ' || lease_owner || ' presumed dead' else 'lease expired' end
      from moved
      union all
      select id, 'quarantined', lease_owner, lease_epoch, 'crashed ${sql.raw(String(Number(config.maxCrashes)))} times' from moved where status = 'quarantined'
    ), woken as (
      select pg_notify(${NOTIFY_CHANNEL}, k.kind) from (select distinct kind from moved where status = 'queued') k
    )
    select (select ok from lock) as swept,
           (select array_agg(id) from dead) as dead,
           (select count(*) from moved where status = 'queued')::int as requeued,
           (select count(*) from moved where status = 'quarantined')::int as quarantined,
           (select count(*) from woken) as _woken,
           (select count(*) from stamp) as _stamp
  `.execute(db)
  const r = rows[0]
  return {swept: r.swept, deadWorkers: r.dead ?? [], requeued: r.requeued, quarantined: r.quarantined}
}
