import {type Kysely, sql} from '../db/kysely.js'
import type {Database} from '../db/schema.js'
import {LOCK_CLASS_WORKER} from './config.js'
import {errorMessage} from './errors.js'

/** A process's answer to "can you do your work?", for a readiness probe. */
export interface Health {
  ready: boolean
  /** Why not, in a sentence. */
  reason?: string
  [detail: string]: unknown
}

/** How long a readiness check waits for the database by default. */
export const HEALTH_TIMEOUT_MS = 2000

/** `query` within `timeoutMs`: its result, or why there was none (the query may still finish later; nobody waits for it). */
export async function withinTime<T>(query: Promise<T>, timeoutMs: number): Promise<{ok: true; value: T} | {ok: false; reason: string}> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<{ok: false; reason: string}>((resolve) => {
    timer = setTimeout(() => resolve({ok: false, reason: `the database did not answer within ${timeoutMs} ms`}), timeoutMs)
  })
  try {
    return await Promise.race([
      query.then(
        (value) => ({ok: true as const, value}),
        (error: unknown) => ({ok: false as const, reason: `the database is unreachable: ${errorMessage(error)}`}),
      ),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A worker is ready while it is not draining, its database answers, and the
 * database says its liveness lock is held: the session that tells the fleet
 * it is alive (a worker without it would be swept as dead).
 */
export async function workerHealth(db: Kysely<Database>, w: {id: string; lockKey: number; draining: boolean}, timeoutMs = HEALTH_TIMEOUT_MS): Promise<Health> {
  if (w.draining) return {ready: false, reason: 'draining: finishing its tasks before it stops', worker: w.id}
  const probe = await withinTime(
    sql<{held: boolean}>`
      select exists (
        select 1 from pg_locks
        where locktype = 'advisory' and granted and database = (select oid from pg_database where datname = current_database())
          and classid = ${LOCK_CLASS_WORKER}::int::oid and objid = ${w.lockKey}::int::oid and objsubid = 2
      ) as held`.execute(db),
    timeoutMs,
  )
  if (!probe.ok) return {ready: false, reason: probe.reason, worker: w.id}
  if (!probe.value.rows[0].held) return {ready: false, reason: 'its liveness session is not held (starting, or reconnecting to the database)', worker: w.id}
  return {ready: true, worker: w.id}
}
