import type {Kysely, Selectable} from 'kysely'
import pg from 'pg'

import type {Executor} from '../../src/db/executor.js'
import {DEFAULT_CONFIG, LOCK_CLASS_WORKER} from '../../src/runtime/config.js'
import type {Database, TasksTable} from '../../src/db/schema.js'
import {type ClaimFilter, ResourceSampler, type RuntimeConfig, type TaskRegistry, Worker, type WorkerOptions, workerLockKey} from '../../src/runtime/index.js'
import {heartbeat, registerWorker} from '../../src/runtime/registry.js'
import {waitFor} from './processes.js'

/** Fast timings so runtime tests finish quickly; the semantics are the same as the defaults'. */
/** A claim by worker `w` of up to 10 tasks of kind `k`, with room for any task's requirements. */
export const CLAIM_K: ClaimFilter = {
  workerId: 'w',
  kinds: ['k'],
  limit: 10,
  leaseMs: 30_000,
  pool: 'default',
  capabilities: [],
  memoryAvailableGb: 8,
  gpuVramAvailableGb: 0,
}

export const FAST: Partial<RuntimeConfig> = {
  heartbeatIntervalMs: 300,
  deadAfterMs: 3000,
  sessionGraceMs: 1000,
  leaseMs: 1500,
  sweepIntervalMs: 250,
  pollIntervalMs: 500,
  transientBackoff: {baseMs: 20, maxMs: 80, jitter: 0.25},
  attemptBackoff: {baseMs: 50, maxMs: 200, jitter: 0},
  graceMs: 2000,
}

/**
 * A worker as the database sees it between two heartbeats: registered (status idle, as its last heartbeat
 * wrote), its liveness lock held by a session of this process (so sweeps find it alive), claiming through
 * the runtime's own calls. It beats every few seconds, well inside the default dead-after, so a sweep on a
 * loaded machine (workers status runs one) never finds it silent. Close it to stop beating and end its session.
 */
export async function registeredWorker(db: Executor, url: string, id: string, types: string[]): Promise<{close(): Promise<void>}> {
  const identity = {id, types, pool: 'default', capabilities: [], concurrency: 4, scope: null, version: 'test', lockKey: workerLockKey(id)}
  const session = new pg.Client({connectionString: url})
  await session.connect()
  await session.query('select pg_advisory_lock($1, $2)', [LOCK_CLASS_WORKER, identity.lockKey])
  const metrics = await new ResourceSampler().sample()
  await registerWorker(db, identity, metrics, 'idle')
  let beat: Promise<unknown> = Promise.resolve()
  const beating = setInterval(() => {
    // Liveness only: it renews no lease and releases none (tasks a test claims in its name stay as claimed).
    beat = heartbeat(db, id, {status: 'idle', metrics, leaseMs: DEFAULT_CONFIG.leaseMs, counts: {}, held: [], releaseOrphans: false}).catch(() => {})
  }, DEFAULT_CONFIG.deadAfterMs / 5)
  beating.unref()
  return {
    async close() {
      clearInterval(beating)
      await beat
      await session.end()
    },
  }
}

/**
 * One in-process Worker per test of a describe block (FAST timings, concurrency 4 unless told), stopped after
 * each test, and a way to wait for a task to settle.
 */
export function useTestWorker(t: {url: string; db: Kysely<Database>}): {
  start(registry: TaskRegistry, options?: Partial<WorkerOptions>): Worker
  settled(id: number): Promise<Selectable<TasksTable>>
  /** Resolves when the worker started last has stopped. */
  finished(): Promise<unknown>
} {
  let worker: Worker | undefined
  let running: Promise<unknown> | undefined
  afterEach(async () => {
    worker?.stop({force: true})
    await running
    worker = undefined
  })
  return {
    start(registry, options = {}) {
      worker = new Worker({databaseUrl: t.url, registry, concurrency: 4, config: FAST, ...options})
      running = worker.start()
      return worker
    },
    settled: (id) =>
      waitFor(`task ${id} to settle`, async () => {
        const row = await t.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
        return ['completed', 'failed', 'quarantined'].includes(row.status) ? row : undefined
      }),
    finished: async () => running,
  }
}
