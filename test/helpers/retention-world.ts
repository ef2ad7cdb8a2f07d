import {sql} from 'kysely'

import type {Executor} from '../../src/db/executor.js'

/** A run row as old as told: status and how many days ago it finished (null: not finished). */
export async function insertRun(ex: Executor, status: string, finishedDaysAgo: number | null): Promise<number> {
  const {rows} = await sql<{id: string}>`
    insert into runs (criteria, quantity, provider, status, created_at, finished_at)
    values ('{}', 1, 'simulated', ${status}, now() - interval '60 days',
      case when ${finishedDaysAgo}::float8 is null then null else now() - ${finishedDaysAgo}::float8 * interval '1 day' end)
    returning id`.execute(ex)
  return Number(rows[0].id)
}

/**
 * A task created `createdDaysAgo` days ago, finished `finishedDaysAgo` ago when its status is a final one,
 * with two task_events. Returns its id.
 */
export async function insertTask(ex: Executor, t: {status: string; scope?: string | null; createdDaysAgo: number; finishedDaysAgo?: number}): Promise<number> {
  const {rows} = await sql<{id: string}>`
    insert into tasks (kind, status, scope, created_at, finished_at)
    values ('retention_test', ${t.status}, ${t.scope ?? null}, now() - ${t.createdDaysAgo}::float8 * interval '1 day',
      case when ${t.finishedDaysAgo ?? null}::float8 is null then null else now() - ${t.finishedDaysAgo ?? null}::float8 * interval '1 day' end)
    returning id`.execute(ex)
  const id = Number(rows[0].id)
  await sql`insert into task_events (task_id, event) values (${id}, 'claimed'), (${id}, 'completed')`.execute(ex)
  return id
}

/** Of these task ids, those that still exist, and how many events the given ids still have. */
export async function surviving(ex: Executor, ids: number[]): Promise<{tasks: number[]; events: number}> {
  const tasks = await sql<{id: string}>`select id from tasks where id = any(${ids}::bigint[]) order by id`.execute(ex)
  const events = await sql<{n: number}>`select count(*)::int as n from task_events where task_id = any(${ids}::bigint[])`.execute(ex)
  return {tasks: tasks.rows.map((r) => Number(r.id)), events: events.rows[0].n}
}
