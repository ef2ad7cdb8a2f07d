import {type Kysely, sql} from '../src/db/kysely.js'

// The leased-task runtime: one queue table for every kind of task, the worker
// registry with heartbeats and resource metrics, and an append-only audit of
// everything that happens to a task. Plus views and a function for psql users.
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    create table tasks (
      id bigserial primary key,
      kind text not null,
      payload jsonb not null default '{}',
      status text not null default 'queued'
        check (status in ('queued', 'running', 'completed', 'failed', 'quarantined', 'canceled')),
      priority integer not null default 0,
      run_after timestamptz not null default now(),
      attempts integer not null default 0,
      max_attempts integer not null default 5 check (max_attempts >= 1),
      crash_count integer not null default 0,
      lease_owner text,
      lease_epoch bigint not null default 0,
      lease_expires_at timestamptz,
      requirements jsonb not null default '{}',
      scope text,
      idempotency_key text,
      last_error text,
      result jsonb,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      started_at timestamptz,
      finished_at timestamptz
    )
  `.execute(db)
  // What a claim scans: runnable tasks of a kind in priority order.
  await sql`create index tasks_claim_idx on tasks (kind, priority desc, run_after, id) where status = 'queued'`.execute(db)
  // Only keyed tasks are indexed, so the many keyless ones cost no entry on every update.
  await sql`create unique index tasks_idempotency_key_idx on tasks (idempotency_key) where idempotency_key is not null`.execute(db)
  await sql`create index tasks_scope_idx on tasks (scope, kind, status) where scope is not null`.execute(db)
  // Live work: what the heartbeat and the sweep look up (running tasks, at most the fleet's total
  // concurrency) and what progress counts read. Finished rows leave it, so a completion adds no entry.
  await sql`create index tasks_active_idx on tasks (status, kind) where status in ('queued', 'running')`.execute(db)

  await sql`
    create table workers (
      id text primary key,
      types text[] not null,
      pool text not null default 'default',
      host text not null,
      pid integer not null,
      version text not null,
      capabilities text[] not null default '{}',
      concurrency integer not null,
      scope text,
      status text not null default 'starting'
        check (status in ('starting', 'idle', 'busy', 'draining', 'stopped', 'dead')),
      lock_key integer not null,
      started_at timestamptz not null default now(),
      last_heartbeat_at timestamptz not null default now(),
      stopped_at timestamptz,
      resource_metrics jsonb not null default '{}',
      tasks_done bigint not null default 0,
      tasks_failed bigint not null default 0
    )
  `.execute(db)
  await sql`create index workers_resource_metrics_idx on workers using gin (resource_metrics)`.execute(db)
  await sql`create index workers_live_idx on workers (last_heartbeat_at) where status in ('starting', 'idle', 'busy', 'draining')`.execute(db)

  await sql`
    create table task_events (
      id bigint generated always as identity,
      -- No foreign key: its per-row check (and row lock) on every event would sit on the hot path;
      -- whatever prunes tasks prunes their events too.
      task_id bigint not null,
      event text not null check (event in (
        'claimed', 'completed', 'failed', 'retry_scheduled', 'snoozed', 'released',
        'requeued_after_death', 'requeued_lease_expired', 'fenced_out', 'quarantined', 'retried', 'canceled')),
      worker_id text,
      lease_epoch bigint,
      reason text,
      at timestamptz not null default now(),
      -- One index serves both identity and "the history of task N", in order.
      primary key (task_id, id)
    )
  `.execute(db)
  // Append-only and time-ordered: a BRIN index serves "the last 5 minutes" at almost no insert cost.
  await sql`create index task_events_at_brin on task_events using brin (at)`.execute(db)

  await sql`
    create view rvx_active_workers as
      select w.*, extract(epoch from now() - w.last_heartbeat_at)::numeric(10, 1) as heartbeat_age_s,
        (select count(*) from tasks t where t.lease_owner = w.id and t.status = 'running') as running_tasks
      from workers w
      where w.status in ('starting', 'idle', 'busy', 'draining')
  `.execute(db)
  await sql`
    create view rvx_dead_workers as
      select w.*, extract(epoch from now() - w.last_heartbeat_at)::numeric(10, 1) as heartbeat_age_s
      from workers w
      where w.status = 'dead'
  `.execute(db)
  await sql`
    create function rvx_worker_stats()
    returns table (type text, total bigint, starting bigint, idle bigint, busy bigint, draining bigint, stopped bigint, dead bigint,
                   tasks_done bigint, tasks_failed bigint, done_last_5m bigint, failed_last_5m bigint)
    language sql stable as $$
      with per_type as (
        select unnest(w.types) as type, w.* from workers w
      ), recent as (
        select e.worker_id,
               count(*) filter (where e.event = 'completed') as done,
               count(*) filter (where e.event in ('failed', 'retry_scheduled')) as failed
        from task_events e
        where e.at > now() - interval '5 minutes' and e.worker_id is not null
        group by e.worker_id
      )
      select p.type,
             count(*),
             count(*) filter (where p.status = 'starting'),
             count(*) filter (where p.status = 'idle'),
             count(*) filter (where p.status = 'busy'),
             count(*) filter (where p.status = 'draining'),
             count(*) filter (where p.status = 'stopped'),
             count(*) filter (where p.status = 'dead'),
             coalesce(sum(p.tasks_done), 0)::bigint,
             coalesce(sum(p.tasks_failed), 0)::bigint,
             coalesce(sum(r.done), 0)::bigint,
             coalesce(sum(r.failed), 0)::bigint
      from per_type p left join recent r on r.worker_id = p.id
      group by p.type
      order by p.type
    $$
  `.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop function if exists rvx_worker_stats()`.execute(db)
  await sql`drop view if exists rvx_dead_workers`.execute(db)
  await sql`drop view if exists rvx_active_workers`.execute(db)
  await sql`drop table if exists task_events`.execute(db)
  await sql`drop table if exists workers`.execute(db)
  await sql`drop table if exists tasks`.execute(db)
}
