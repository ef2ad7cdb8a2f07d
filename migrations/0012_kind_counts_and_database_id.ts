import {type Kysely, sql} from '../src/db/kysely.js'

// rvx_worker_stats(), as psql users and `workers status` read it:
// - tasks_done / tasks_failed per type count the tasks of that kind. They used to add a worker's whole
//   count to each of its types (a `rvx worker all` counted its contacts as lead lists too). Workers now
//   keep lifetime counts per kind in workers.kind_counts ({"company": {"done": 12, "failed": 1}}),
//   added to by each heartbeat with the deltas since the last one. Workers registered before this
//   migration keep their counts when they had one type; a multi-type worker's old count cannot be split.
// - busy / idle come from the tasks each worker is running now, not from the status its last heartbeat
//   wrote (up to an interval old: a worker running four tasks showed as idle).
// Also: an id for this database (rvx_meta database_id), so its exports get a folder of their own.

// The function's signature is unchanged (so `create or replace` keeps every caller working); only its body differs.
const FUNCTION = sql.raw(`create or replace function rvx_worker_stats()
    returns table (type text, total bigint, starting bigint, idle bigint, busy bigint, draining bigint, stopped bigint, dead bigint,
                   tasks_done bigint, tasks_failed bigint, done_last_5m bigint, failed_last_5m bigint)
    language sql stable as`)

// The last 5 minutes, by the kind of task (as 0006 counts them).
const RECENT = sql.raw(`recent as (
        select t.kind,
               count(*) filter (where e.event = 'completed') as done,
               count(*) filter (where e.event in ('failed', 'retry_scheduled')) as failed
        from task_events e join tasks t on t.id = e.task_id
        where e.at > now() - interval '5 minutes' and e.event in ('completed', 'failed', 'retry_scheduled')
        group by t.kind
      )`)

export async function up(db: Kysely<any>): Promise<void> {
  await sql`alter table workers add column kind_counts jsonb not null default '{}'`.execute(db)
  await sql`
    update workers set kind_counts = jsonb_build_object(types[1], jsonb_build_object('done', tasks_done, 'failed', tasks_failed))
    where cardinality(types) = 1 and (tasks_done > 0 or tasks_failed > 0)
  `.execute(db)
  await sql`
    ${FUNCTION} $$
      with running as (
        select t.lease_owner as id, count(*) as n from tasks t where t.status = 'running' group by t.lease_owner
      ), per_type as (
        select unnest(w.types) as type, w.kind_counts,
               case when w.status in ('idle', 'busy') then case when r.n > 0 then 'busy' else 'idle' end else w.status end as status
        from workers w left join running r on r.id = w.id
      ), fleet as (
        select p.type,
               count(*) as total,
               count(*) filter (where p.status = 'starting') as starting,
               count(*) filter (where p.status = 'idle') as idle,
               count(*) filter (where p.status = 'busy') as busy,
               count(*) filter (where p.status = 'draining') as draining,
               count(*) filter (where p.status = 'stopped') as stopped,
               count(*) filter (where p.status = 'dead') as dead,
               coalesce(sum((p.kind_counts -> p.type ->> 'done')::bigint), 0)::bigint as tasks_done,
               coalesce(sum((p.kind_counts -> p.type ->> 'failed')::bigint), 0)::bigint as tasks_failed
        from per_type p
        group by p.type
      ), ${RECENT}
      select f.type, f.total, f.starting, f.idle, f.busy, f.draining, f.stopped, f.dead, f.tasks_done, f.tasks_failed,
             coalesce(r.done, 0)::bigint, coalesce(r.failed, 0)::bigint
      from fleet f left join recent r on r.kind = f.type
      order by f.type
    $$
  `.execute(db)
  await sql`insert into rvx_meta (key, value) values ('database_id', to_jsonb(gen_random_uuid()::text)) on conflict (key) do nothing`.execute(db)
}

// Back to 0006's body.
export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from rvx_meta where key = 'database_id'`.execute(db)
  await sql`
    ${FUNCTION} $$
      with per_type as (
        select unnest(w.types) as type, w.* from workers w
      ), fleet as (
        select p.type,
               count(*) as total,
               count(*) filter (where p.status = 'starting') as starting,
               count(*) filter (where p.status = 'idle') as idle,
               count(*) filter (where p.status = 'busy') as busy,
               count(*) filter (where p.status = 'draining') as draining,
               count(*) filter (where p.status = 'stopped') as stopped,
               count(*) filter (where p.status = 'dead') as dead,
               coalesce(sum(p.tasks_done), 0)::bigint as tasks_done,
               coalesce(sum(p.tasks_failed), 0)::bigint as tasks_failed
        from per_type p
        group by p.type
      ), ${RECENT}
      select f.type, f.total, f.starting, f.idle, f.busy, f.draining, f.stopped, f.dead, f.tasks_done, f.tasks_failed,
             coalesce(r.done, 0)::bigint, coalesce(r.failed, 0)::bigint
      from fleet f left join recent r on r.kind = f.type
      order by f.type
    $$
  `.execute(db)
  await sql`alter table workers drop column kind_counts`.execute(db)
}
