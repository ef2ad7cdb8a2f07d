/**
 * The systems bench/index.ts compares, each in the configurations it is measured in:
 * rvx at its defaults, graphile-worker and pg-boss at their defaults and at their best
 * documented settings. Every configuration is driven the same way (prepare a fresh
 * database, enqueue, start with a handler that reports each task start, count what is
 * not yet durably finished, enqueue one more, stop), so (a) and (b) measure them alike.
 */
import {execFileSync} from 'node:child_process'
import pg from 'pg'

import {migrateToLatest} from '../src/db/migrator.js'
import {DEFAULT_CONFIG, enqueue, TaskRegistry, Worker} from '../src/runtime/index.js'
import {installedVersion, kysely, packageVersion, ROOT} from './common.js'

export interface Running {
  /** Enqueues one task, carrying `tag`, through the system's own single-task API. */
  enqueueOne(tag: number): Promise<void>
  stop(): Promise<void>
}

export interface System {
  /** Key in --json output and --systems= (e.g. graphile_worker_batched). */
  key: string
  /** Name in the tables. */
  name: string
  /** Package and version measured. */
  version: string
  /** Connections it may hold to PostgreSQL, and how they are used. */
  connections: string
  /** The settings measured, defaults named as such. */
  settings: string[]
  /** A throughput ceiling set by its configuration (polling), if it has one. */
  ceiling?: {tasksPerS: number; how: string}
  /** Creates its schema in a fresh database. */
  prepare(url: string): Promise<void>
  /** Enqueues n no-op tasks at once, the fastest way the system offers. */
  enqueue(url: string, n: number): Promise<void>
  /** Tasks not yet durably finished (queued, running, or completed but not yet written). */
  live(client: pg.Client): Promise<number>
  /** Starts the configured worker; onTask is called as each task's handler starts, with its tag if it has one. */
  start(url: string, onTask: (tag: number | undefined) => void): Promise<Running>
}

/** Total connections per system: a worker pool of concurrency + 2, plus one session for LISTEN (rvx: its liveness session). */
export const connectionsFor = (concurrency: number) => concurrency + 3

const TASK = 'noop'
/** Rows per bulk insert of the peers and the floor (rvx's enqueue chunks by itself). */
const ENQUEUE_CHUNK = 50_000

// ---------------------------------------------------------------- rvx

function rvx(concurrency: number): System {
  const poolSize = concurrency + 2
  let commit = ''
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim()
  } catch {
    // Not a git checkout: the version alone.
  }

  return {
    key: 'rvx',
    name: 'rvx',
    version: `rvx ${packageVersion(ROOT)}${commit ? `+${commit}` : ''}`,
    connections: `pool ${poolSize} (its default, concurrency + 2) + 1 liveness session that also LISTENs = ${poolSize + 1}`,
    settings: [
      `concurrency ${concurrency}`,
      `defaults: LISTEN/NOTIFY wake-up, ${DEFAULT_CONFIG.pollIntervalMs / 1000} s safety poll, completions batched on a lane of their own beside the claims (with the next claim when tasks are long), up to ${DEFAULT_CONFIG.maxClaimAhead} claimed ahead of free slots when tasks are short, heartbeat every ${DEFAULT_CONFIG.heartbeatIntervalMs / 1000} s`,
    ],
    async prepare(url) {
      const db = kysely(url, 1)
      await migrateToLatest(db, url)
      await db.destroy()
    },
    async enqueue(url, n) {
      const db = kysely(url, 1)
      await enqueue(
        db,
        Array.from({length: n}, () => ({kind: TASK})),
      )
      await db.destroy()
    },
    async live(client) {
      return Number((await client.query(`select count(*) as n from tasks where status <> 'completed'`)).rows[0].n)
    },
    async start(url, onTask) {
      const registry = new TaskRegistry().register<{tag?: number}>(TASK, async (task) => {
        onTask(task.payload.tag)
      })
      const worker = new Worker({databaseUrl: url, registry, concurrency, poolSize})
      const running = worker.start()
      running.catch(() => {})
      const db = kysely(url, 2)
      return {
        async enqueueOne(tag) {
          await enqueue(db, {kind: TASK, payload: {tag}})
        },
        async stop() {
          worker.stop()
          await running
          await db.destroy()
        },
      }
    },
  }
}

// ---------------------------------------------------------------- graphile-worker

type GraphileWorker = typeof import('graphile-worker')

/** graphile-worker's log, minus its chatter: warnings and errors are shown (its pool-size warning among them). */
function graphileLogger(gw: GraphileWorker, report: (message: string) => void) {
  return new gw.Logger(() => (level, message) => {
    if (level === 'warning' || level === 'error') report(`graphile-worker ${level}: ${message}`)
  })
}

function graphileWorker(concurrency: number, batched: boolean, report: (message: string) => void): System {
  const maxPoolSize = connectionsFor(concurrency)
  // Its performance page's settings (worker.graphile.org/docs/performance): local queue of 500, completions and failures batched.
  const batching = {localQueue: {size: 500}, completeJobBatchDelay: 0, failJobBatchDelay: 0}
  return {
    key: batched ? 'graphile_worker_batched' : 'graphile_worker',
    name: batched ? 'graphile-worker, batched' : 'graphile-worker',
    version: `graphile-worker ${installedVersion('graphile-worker')}`,
    connections: `maxPoolSize ${maxPoolSize} (one held for LISTEN; its docs ask for >= concurrency + 2)`,
    settings: [
      `concurrency ${concurrency}`,
      batched
        ? 'localQueue.size 500, completeJobBatchDelay 0, failJobBatchDelay 0 (its documented performance settings); 2 s poll (default)'
        : 'defaults: no local queue, no completion batching, LISTEN/NOTIFY, 2 s poll',
    ],
    async prepare(url) {
      const gw = await import('graphile-worker')
      await gw.runMigrations({connectionString: url, logger: graphileLogger(gw, report)})
    },
    async enqueue(url, n) {
      const client = new pg.Client({connectionString: url})
      await client.connect()
      // Its bulk add_jobs, in chunks: one add_job per row was still running after 12 minutes for 300,000 jobs.
      try {
        for (let i = 0; i < n; i += ENQUEUE_CHUNK) {
          await client.query(
            `select count(*) from graphile_worker.add_jobs(array(
               select row($1::text, '{}'::json, null, null, null, null, null, null)::graphile_worker.job_spec from generate_series(1, $2)))`,
            [TASK, Math.min(ENQUEUE_CHUNK, n - i)],
          )
        }
      } finally {
        await client.end()
      }
    },
    async live(client) {
      // Finished jobs are deleted (after the batch delay when batching).
      return Number((await client.query('select count(*) as n from graphile_worker.jobs')).rows[0].n)
    },
    async start(url, onTask) {
      const gw = await import('graphile-worker')
      const logger = graphileLogger(gw, report)
      const runner = await gw.run({
        connectionString: url,
        concurrency,
        maxPoolSize,
        noHandleSignals: true,
        logger,
        ...(batched ? {preset: {worker: batching}} : {}),
        taskList: {
          async [TASK](payload) {
            onTask((payload as {tag?: number}).tag)
          },
        },
      })
      const utils = await gw.makeWorkerUtils({connectionString: url, logger})
      return {
        async enqueueOne(tag) {
          await utils.addJob(TASK, {tag})
        },
        async stop() {
          await utils.release()
          await runner.stop()
        },
      }
    },
  }
}

// ---------------------------------------------------------------- pg-boss

/** pg-boss 10 has no concurrency option: one work() loop per slot, as its docs suggest. */
function pgBoss(concurrency: number, batchSize: number | undefined, pollingIntervalSeconds: number | undefined, report: (message: string) => void): System {
  const max = connectionsFor(concurrency)
  const batch = batchSize ?? 1
  const poll = pollingIntervalSeconds ?? 2
  const open = async (url: string, options: {max: number; supervise?: boolean; schedule?: boolean}) => {
    const {default: PgBoss} = await import('pg-boss')
    const boss = new PgBoss({connectionString: url, ...options})
    boss.on('error', (error: Error) => report(`pg-boss error: ${error.message}`))
    await boss.start()
    return boss
  }

  return {
    key: batchSize === undefined ? 'pg_boss' : `pg_boss_batch_${batchSize}`,
    name: batchSize === undefined ? 'pg-boss' : `pg-boss, batchSize ${batchSize}`,
    version: `pg-boss ${installedVersion('pg-boss')}`,
    connections: `max ${max} (no LISTEN: it polls)`,
    settings: [
      `${concurrency} work() loops`,
      batchSize === undefined
        ? `defaults: batchSize 1, ${poll} s poll`
        : `batchSize ${batchSize}, pollingIntervalSeconds ${poll} (its minimum); a loop waits out the rest of its interval after each fetch`,
    ],
    ceiling: {tasksPerS: (concurrency * batch) / poll, how: `${concurrency} loops x ${batch} per fetch / ${poll} s poll`},
    async prepare(url) {
      const boss = await open(url, {max: 2, supervise: false, schedule: false})
      await boss.createQueue(TASK)
      await boss.stop({graceful: false, wait: true})
    },
    async enqueue(url, n) {
      const boss = await open(url, {max: 2, supervise: false, schedule: false})
      for (let i = 0; i < n; i += 5000) {
        await boss.insert(Array.from({length: Math.min(5000, n - i)}, () => ({name: TASK, data: {}})))
      }

      await boss.stop({graceful: false, wait: true})
    },
    async live(client) {
      return Number((await client.query(`select count(*) as n from pgboss.job where name = $1 and state <> 'completed'`, [TASK])).rows[0].n)
    },
    async start(url, onTask) {
      const boss = await open(url, {max})
      const options = {...(batchSize === undefined ? {} : {batchSize}), ...(pollingIntervalSeconds === undefined ? {} : {pollingIntervalSeconds})}
      for (let i = 0; i < concurrency; i++) {
        await boss.work<{tag?: number}>(TASK, options, async (jobs) => {
          for (const job of jobs) onTask(job.data.tag)
        })
      }

      // A separate client enqueues, as for the others.
      const sender = await open(url, {max: 2, supervise: false, schedule: false})
      return {
        async enqueueOne(tag) {
          await sender.send(TASK, {tag})
        },
        async stop() {
          await sender.stop({graceful: false, wait: true})
          await boss.stop({graceful: false, wait: true})
        },
      }
    },
  }
}

// ---------------------------------------------------------------- the floor

/**
 * The least SQL any PostgreSQL queue must run for the same work, as a yardstick (not a queue: no leases, retries,
 * events, wake-ups or heartbeats): one loop per slot, each claiming up to a batch of queued rows with
 * `for update skip locked` (marked running, committed), then marking them done, nothing else.
 */
function floor(concurrency: number): System {
  const batch = DEFAULT_CONFIG.maxClaimAhead
  return {
    key: 'floor',
    name: 'floor (claim + done)',
    version: 'PostgreSQL only',
    connections: `pool ${concurrency + 1}: one per loop, one to enqueue`,
    settings: [
      `${concurrency} loops, each: claim up to ${batch} rows (update ... where id = any(array(select ... order by id limit ${batch} for update skip locked))), then mark them done; polls every 10 ms when empty`,
    ],
    async prepare(url) {
      const client = new pg.Client({connectionString: url})
      await client.connect()
      await client.query(`create table floor_jobs (id bigserial primary key, status text not null default 'queued', payload jsonb not null default '{}')`)
      await client.query(`create index floor_jobs_queued_idx on floor_jobs (id) where status = 'queued'`)
      await client.end()
    },
    async enqueue(url, n) {
      const client = new pg.Client({connectionString: url})
      await client.connect()
      try {
        for (let i = 0; i < n; i += ENQUEUE_CHUNK) {
          await client.query(`insert into floor_jobs (payload) select '{}' from generate_series(1, $1)`, [Math.min(ENQUEUE_CHUNK, n - i)])
        }
      } finally {
        await client.end()
      }
    },
    async live(client) {
      return Number((await client.query(`select count(*) as n from floor_jobs where status <> 'done'`)).rows[0].n)
    },
    async start(url, onTask) {
      const pool = new pg.Pool({connectionString: url, max: concurrency + 1})
      let stopping = false
      const loop = async () => {
        while (!stopping) {
          const {rows} = await pool.query<{id: string; payload: {tag?: number}}>(
            `update floor_jobs set status = 'running'
             where id = any(array(select id from floor_jobs where status = 'queued' order by id limit $1 for update skip locked))
             returning id, payload`,
            [batch],
          )
          if (rows.length === 0) {
            await new Promise((resolve) => setTimeout(resolve, 10))
            continue
          }

          for (const r of rows) onTask(r.payload.tag)
          await pool.query(`update floor_jobs set status = 'done' where id = any($1::bigint[])`, [rows.map((r) => r.id)])
        }
      }

      const loops = Array.from({length: concurrency}, loop)
      return {
        async enqueueOne(tag) {
          await pool.query(`insert into floor_jobs (payload) values ($1)`, [{tag}])
        },
        async stop() {
          stopping = true
          await Promise.all(loops)
          await pool.end()
        },
      }
    },
  }
}

/** The depth bench's configurations: rvx, the best configuration of each peer, and the floor. */
export function depthSystems(concurrency: number, report: (message: string) => void): System[] {
  return [rvx(concurrency), graphileWorker(concurrency, true, report), pgBoss(concurrency, 1000, 0.5, report), floor(concurrency)]
}

/** Every configuration, in the bench's base order (repeats alternate it). */
export function allSystems(concurrency: number, report: (message: string) => void): System[] {
  return [
    rvx(concurrency),
    graphileWorker(concurrency, false, report),
    graphileWorker(concurrency, true, report),
    pgBoss(concurrency, undefined, undefined, report),
    pgBoss(concurrency, 1000, 0.5, report),
  ]
}
