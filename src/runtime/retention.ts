import {sql} from '../db/kysely.js'
import type {Executor} from '../db/executor.js'

/**
 * Retention of the queue's own rows: finished tasks and their task_events are
 * deleted in batches, each batch one short statement that locks only its own
 * rows (`for update skip locked`: a task someone is touching is left for the
 * next pass). Which tasks may go is the caller's word: the scopes it names
 * (the pipeline's finished runs), or standalone tasks finished long enough ago.
 * A task that is queued or running is never deleted, whatever the caller says.
 *
 * Rows go by primary key (`= any(array(...))`), never by a join: planning a
 * join asks the indexes for their first and last live keys, and the ends of
 * these indexes are where the rows just deleted (dead until a vacuum) lie. On
 * a busy queue that was 20-50 ms of planning for every batch, more than the
 * batch itself.
 */

export interface PruneOptions {
  /** Tasks per statement (default 1,000): a batch's locks last one short statement. */
  batchSize?: number
  /** Stop after this many batches (default: until nothing is left); the rest goes next time. */
  maxBatches?: number
  /** Stop starting batches at this moment (Date.now() ms): a caller with other work on an interval bounds its time. */
  deadline?: number
}

export interface PruneResult {
  tasks: number
  events: number
  batches: number
  /** The pass stopped at its deadline or its batch limit with more to delete. */
  left: boolean
}

const DEFAULT_BATCH = 1000

/** Deletes the finished tasks of these scopes (all of them, whatever their age) and their events. */
export async function pruneScopeTasks(ex: Executor, scopes: string[], options: PruneOptions = {}): Promise<PruneResult> {
  if (scopes.length === 0) return {tasks: 0, events: 0, batches: 0, left: false}
  return inBatches(options, async (limit) => {
    const {rows} = await sql<{tasks: number; events: number}>`
      with doomed as (
        select id from tasks
        where scope = any(${scopes}::text[]) and status in ('completed', 'failed', 'quarantined', 'canceled')
        limit ${limit}
        for update skip locked
      ), gone as (
        delete from tasks t where t.id = any(array(select id from doomed)) returning t.id
      ), events as (
        delete from task_events e where e.task_id = any(array(select id from gone)) returning 1
      )
      select (select count(*) from gone)::int as tasks, (select count(*) from events)::int as events`.execute(ex)
    return {...rows[0], more: rows[0].tasks === limit}
  })
}

/**
 * Deletes tasks without a scope that finished more than `olderThanMs` ago,
 * and their events. It walks the table in id order (the primary key: no index
 * of its own to keep up on every completion) and stops at the first task
 * created within the retention: ids grow with creation, so what follows is
 * younger still (a task created in a transaction that began earlier waits for
 * the next pass).
 */
export async function pruneStandaloneTasks(ex: Executor, olderThanMs: number, options: PruneOptions = {}): Promise<PruneResult> {
  let after = 0
  return inBatches(options, async (limit) => {
    const {rows} = await sql<{tasks: number; events: number; last: string | null; young: boolean | null}>`
      with cutoff as (
        select now() - ${olderThanMs}::float8 * interval '1 millisecond' as at
      ), span as (
        -- The cursor as a subquery: its value unseen, the planner does not probe the index's end for it.
        select id, created_at from tasks where id > (select ${after}::bigint) order by id limit ${limit}
      ), doomed as (
        select t.id from tasks t
        where t.id = any(array(select id from span))
          and t.scope is null and t.status in ('completed', 'failed', 'quarantined', 'canceled') and t.finished_at < (select at from cutoff)
        for update skip locked
      ), gone as (
        delete from tasks t where t.id = any(array(select id from doomed)) returning t.id
      ), events as (
        delete from task_events e where e.task_id = any(array(select id from gone)) returning 1
      )
      select (select count(*) from gone)::int as tasks, (select count(*) from events)::int as events,
        (select max(id) from span)::text as last,
        (select bool_or(s.created_at >= c.at) from span s, cutoff c) as young`.execute(ex)
    const r = rows[0]
    if (r.last !== null) after = Number(r.last)
    return {tasks: r.tasks, events: r.events, more: r.last !== null && !r.young}
  })
}

/** Of the given scopes, those that still have tasks (of any status). */
export async function scopesWithTasks(ex: Executor, scopes: string[]): Promise<Set<string>> {
  if (scopes.length === 0) return new Set()
  const {rows} = await sql<{scope: string}>`
    select s.scope from unnest(${scopes}::text[]) s(scope) where exists (select 1 from tasks t where t.scope = s.scope)`.execute(ex)
  return new Set(rows.map((r) => r.scope))
}

async function inBatches(options: PruneOptions, batch: (limit: number) => Promise<{tasks: number; events: number; more: boolean}>): Promise<PruneResult> {
  const limit = options.batchSize ?? DEFAULT_BATCH
  const total: PruneResult = {tasks: 0, events: 0, batches: 0, left: false}
  while (options.maxBatches === undefined || total.batches < options.maxBatches) {
    const {tasks, events, more} = await batch(limit)
    total.tasks += tasks
    total.events += events
    total.batches++
    total.left = more
    if (!more || (options.deadline !== undefined && Date.now() >= options.deadline)) break
  }

  return total
}
