/**
 * Fleet-level measurements (issue 6):
 *  (e) recovery with real `rvx worker` processes: a worker holding a pipeline
 *      task is SIGKILLed; time until a second `rvx worker` has the task.
 *  (f) the fleet views on a big history: 1,000,000 task rows and their events;
 *      each stats query timed against a plain full count of the same table.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {type Kysely, sql} from 'kysely'

import type {Database} from '../src/db/schema.js'
import {currentConditions} from '../src/monitor/conditions.js'
import {MonitorMetrics} from '../src/monitor/metrics.js'
import {parseCriteria, validateSize} from '../src/pipeline/criteria.js'
import {runsInProgress} from '../src/pipeline/run-views.js'
import {cancelRun, createRun} from '../src/pipeline/runs.js'
import {DEFAULT_CONFIG, listWorkers, queueStats, sleep, workerStats} from '../src/runtime/index.js'
import {BIN, ROOT, waitUntil} from './common.js'

function rvxWorker(url: string, id: string, runId: number): ChildProcess {
  return spawn(process.execPath, [BIN, 'worker', 'lead-list', '--id', id, '--run', String(runId), '--concurrency', '1'], {
    cwd: ROOT,
    env: {...process.env, DATABASE_URL: url, RVX_HOME: path.join(ROOT, '.bench-home')},
    stdio: 'ignore',
  })
}

/** (e) Seconds from SIGKILL of an `rvx worker` holding a task to another `rvx worker` holding it, per kill. */
export async function cliRecovery(db: Kysely<Database>, url: string, kills: number, progress: (m: string) => void): Promise<number[]> {
  // The sweep's session-lock rule waits until the server has been up for deadAfter (so a PostgreSQL
  // restart kills nobody); measure the steady state, not the first seconds of a fresh server.
  const {rows} = await sql<{up_s: number}>`select extract(epoch from now() - pg_postmaster_start_time())::float8 as up_s`.execute(db)
  await sleep(Math.max(0, DEFAULT_CONFIG.deadAfterMs + 1000 - rows[0].up_s * 1000))
  const samples: number[] = []
  const owner = async (runId: number) =>
    (await db.selectFrom('tasks').select('lease_owner').where('scope', '=', `run:${runId}`).where('status', '=', 'running').executeTakeFirst())?.lease_owner
  for (let round = 0; round < kills; round++) {
    // A run whose discovery call takes 10 minutes: the victim will be holding it when it dies.
    const run = await createRun(db, {
      criteria: parseCriteria('{"state":"TX"}'),
      size: validateSize({quantity: 1, contactsMin: 1, contactsMax: 1}),
      provider: 'simulated',
      options: {simulation: {seed: 1, latencyMs: [600_000, 600_000], faults: {transient: 0, rate_limit: 0, malformed: 0, crash: 0}}},
    })
    const victimId = `cli-victim-${round}`
    const rescuerId = `cli-rescuer-${round}`
    const victim = rvxWorker(url, victimId, run.id)
    await waitUntil(async () => (await owner(run.id)) === victimId, 60_000, 20)
    const rescuer = rvxWorker(url, rescuerId, run.id)
    await waitUntil(async () => (await db.selectFrom('workers').select('status').where('id', '=', rescuerId).executeTakeFirst())?.status === 'idle', 60_000, 20)
    // Kill at a random point of the victim's heartbeat cycle.
    await sleep(500 + Math.random() * DEFAULT_CONFIG.heartbeatIntervalMs)
    const killedAt = performance.now()
    victim.kill('SIGKILL')
    await waitUntil(async () => (await owner(run.id)) === rescuerId, 120_000, 20)
    samples.push((performance.now() - killedAt) / 1000)
    progress(`rvx worker recovery ${round + 1}/${kills}: ${samples.at(-1)!.toFixed(2)} s`)
    rescuer.kill('SIGKILL')
    await cancelRun(db, run.id)
  }

  return samples
}

export interface StatsTiming {
  query: string
  p50Ms: number
  /** p50 of this query / p50 of `select count(*) from tasks` (a full scan), same run. */
  vsFullCount: number
}

/** (f) Fills the database with a big history, then times each fleet view. */
export async function statsAtScale(
  db: Kysely<Database>,
  rows: number,
  repeats: number,
  progress: (m: string) => void,
): Promise<{rows: number; events: number; timings: StatsTiming[]}> {
  progress(`(f) writing ${rows.toLocaleString('en')} task rows and their history`)
  // A month of history: almost all finished; a live head of queued and running work.
  await sql`
    insert into tasks (kind, payload, status, attempts, lease_owner, lease_epoch, lease_expires_at, scope, created_at, updated_at, started_at, finished_at, run_after)
    select (array['lead-list', 'company', 'contact'])[1 + i % 3],
           '{}'::jsonb,
           case when i % 1000 = 0 then 'queued' when i % 1000 = 1 then 'running' when i % 100 = 2 then 'failed'
                when i % 100 = 3 then 'canceled' else 'completed' end,
           1, case when i % 1000 = 1 then 'live-' || (i % 50) end, 1,
           case when i % 1000 = 1 then now() + interval '30 seconds' end,
           'run:' || (i / 500),
           t, t, t, case when i % 1000 > 1 then t + interval '3 seconds' end, t
    from (select i, now() - (${rows} - i) * interval '2.6 seconds' as t from generate_series(1, ${rows}) i) s`.execute(db)
  await sql`
    insert into task_events (task_id, event, worker_id, lease_epoch, at)
    select id, 'claimed', coalesce(lease_owner, 'w-' || (id % 200)), 1, started_at from tasks
    union all
    select id, case status when 'completed' then 'completed' when 'failed' then 'failed' else 'canceled' end,
           'w-' || (id % 200), 1, finished_at from tasks where finished_at is not null`.execute(db)
  await sql`
    insert into workers (id, types, host, pid, version, concurrency, status, lock_key, started_at, last_heartbeat_at, stopped_at, tasks_done, tasks_failed)
    select 'w-' || i, array[(array['lead-list', 'company', 'contact'])[1 + i % 3]], 'bench', i, '0', 4,
           case when i < 50 then 'stopped' when i < 100 then 'dead' else 'idle' end, i,
           now() - interval '1 day', case when i < 100 then now() - interval '1 hour' else now() end,
           case when i < 100 then now() - interval '1 hour' end, 5000, 50
    from generate_series(0, 199) i
    union all
    select 'live-' || i, array['company'], 'bench', 1000 + i, '0', 4, 'busy', 1000 + i, now(), now(), null, 0, 0 from generate_series(0, 49) i`.execute(db)
  // Steady state: autovacuum has visited the table (set hint bits and visibility, summarized BRIN ranges).
  await sql`vacuum analyze tasks`.execute(db)
  await sql`vacuum analyze task_events`.execute(db)
  await sql`vacuum analyze workers`.execute(db)
  const events = (await sql<{n: number}>`select count(*)::int as n from task_events`.execute(db)).rows[0].n
  progress(`    ${rows.toLocaleString('en')} tasks, ${events.toLocaleString('en')} events`)

  const metrics = new MonitorMetrics()
  await metrics.collect(db)
  const queries: Array<[string, () => Promise<unknown>]> = [
    ['select count(*) from tasks (full scan, the yardstick)', () => sql`select count(*) from tasks`.execute(db)],
    ['workerStats: rvx_worker_stats() (fleet by type, 5-min rates)', () => workerStats(db)],
    ['queueStats (live and failed by kind, oldest queued, retries waiting)', () => queueStats(db)],
    ['listWorkers (workers with current tasks)', () => listWorkers(db, {all: true})],
    ['runsInProgress', () => runsInProgress(db)],
    ['monitor: currentConditions', () => currentConditions(db, {stuckAfterMs: 600_000, lookbackMs: 3_600_000, deadAfterMs: 15_000})],
    ['monitor: metrics.collect (events since last read)', () => metrics.collect(db)],
  ]
  const timings: StatsTiming[] = []
  for (const [query, run] of queries) {
    await run()
    const samples: number[] = []
    for (let i = 0; i < repeats; i++) {
      const started = performance.now()
      await run()
      samples.push(performance.now() - started)
    }

    samples.sort((a, b) => a - b)
    const p50Ms = Math.round(samples[Math.floor(samples.length / 2)] * 10) / 10
    timings.push({query, p50Ms, vsFullCount: timings.length === 0 ? 1 : Math.round((p50Ms / timings[0].p50Ms) * 100) / 100})
    progress(`    ${query}: p50 ${p50Ms} ms`)
  }

  return {rows, events, timings}
}
