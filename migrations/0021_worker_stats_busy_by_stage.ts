import {type Kysely, sql} from '../src/db/kysely.js'

// rvx_worker_stats(): a live worker is busy for a type when it is running a task of that kind, idle for its other types.
// 0012 counted a worker running any task as busy in every one of its types: a worker of every stage running one
// research task showed busy in all three rows. Everything else is 0012's body.

const FUNCTION = sql.raw(`create or replace function rvx_worker_stats()
    returns table (type text, total bigint, starting bigint, idle bigint, busy bigint, draining bigint, stopped bigint, dead bigint,
                   tasks_done bigint, tasks_failed bigint, done_last_5m bigint, failed_last_5m bigint)
    language sql stable as`)

const RECENT = `recent as (
        select t.kind,
               count(*) filter (where e.event = 'completed') as done,
               count(*) filter (where e.event in ('failed', 'retry_scheduled')) as failed
        from task_events e join tasks t on t.id = e.task_id
        where e.at > now() - interval '5 minutes' and e.event in ('completed', 'failed', 'retry_scheduled')
        group by t.kind
      )`

const REST = sql.raw(`fleet as (
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
      order by f.type`)

export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    ${FUNCTION} $$
      with running as (
        select t.lease_owner as id, t.kind, count(*) as n from tasks t where t.status = 'running' group by t.lease_owner, t.kind
      ), per_type as (
        select w.type, w.kind_counts,
               case when w.status in ('idle', 'busy') then case when r.n > 0 then 'busy' else 'idle' end else w.status end as status
        from (select unnest(types) as type, id, status, kind_counts from workers) w
        left join running r on r.id = w.id and r.kind = w.type
      ), ${REST}
    $$
  `.execute(db)
}

// Back to 0012's body.
export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    ${FUNCTION} $$
      with running as (
        select t.lease_owner as id, count(*) as n from tasks t where t.status = 'running' group by t.lease_owner
      ), per_type as (
        select unnest(w.types) as type, w.kind_counts,
               case when w.status in ('idle', 'busy') then case when r.n > 0 then 'busy' else 'idle' end else w.status end as status
        from workers w left join running r on r.id = w.id
      ), ${REST}
    $$
  `.execute(db)
}
