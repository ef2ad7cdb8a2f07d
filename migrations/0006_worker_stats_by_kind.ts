import {type Kysely, sql} from '../src/db/kysely.js'

// rvx_worker_stats(): "done / failed in the last 5 minutes" counted by the kind of task, not by the
// worker that did it. A worker of several types (rvx worker all) used to add its whole count to
// every one of its types, so each type showed the same number.

// The function's signature is unchanged (so `create or replace` keeps every caller working); only its body differs.
const FUNCTION = sql.raw(`create or replace function rvx_worker_stats()
    returns table (type text, total bigint, starting bigint, idle bigint, busy bigint, draining bigint, stopped bigint, dead bigint,
                   tasks_done bigint, tasks_failed bigint, done_last_5m bigint, failed_last_5m bigint)
    language sql stable as`)

export async function up(db: Kysely<any>): Promise<void> {
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
      ), recent as (
        select t.kind,
               count(*) filter (where e.event = 'completed') as done,
               count(*) filter (where e.event in ('failed', 'retry_scheduled')) as failed
        from task_events e join tasks t on t.id = e.task_id
        where e.at > now() - interval '5 minutes' and e.event in ('completed', 'failed', 'retry_scheduled')
        group by t.kind
      )
      select f.type, f.total, f.starting, f.idle, f.busy, f.draining, f.stopped, f.dead, f.tasks_done, f.tasks_failed,
             coalesce(r.done, 0)::bigint, coalesce(r.failed, 0)::bigint
      from fleet f left join recent r on r.kind = f.type
      order by f.type
    $$
  `.execute(db)
}

// Back to 0002's body.
export async function down(db: Kysely<any>): Promise<void> {
  await sql`
    ${FUNCTION} $$
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
      select p.type, count(*),
             count(*) filter (where p.status = 'starting'), count(*) filter (where p.status = 'idle'),
             count(*) filter (where p.status = 'busy'), count(*) filter (where p.status = 'draining'),
             count(*) filter (where p.status = 'stopped'), count(*) filter (where p.status = 'dead'),
             coalesce(sum(p.tasks_done), 0)::bigint, coalesce(sum(p.tasks_failed), 0)::bigint,
             coalesce(sum(r.done), 0)::bigint, coalesce(sum(r.failed), 0)::bigint
      from per_type p left join recent r on r.worker_id = p.id
      group by p.type
      order by p.type
    $$
  `.execute(db)
}
