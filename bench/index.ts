/**
 * rvx runtime vs graphile-worker vs pg-boss, side by side, in one run on one
 * embedded PostgreSQL (each system gets its own database on that server).
 *
 *   npm run bench                 human-readable tables
 *   npm run bench -- --json       one JSON object on stdout
 *   npm run bench -- --quick      smaller counts (smoke run)
 *   npm run bench -- --only=throughput,latency,recovery,idle,fleet-recovery,stats
 *
 * (a) throughput: N no-op tasks, enqueued up front, drained at total concurrency 16
 * (b) enqueue-to-start latency with an idle worker, tasks enqueued one at a time
 * (c) rvx recovery after SIGKILL of a worker process holding a task (default settings)
 * (d) statements per second sent by an idle rvx worker (default settings)
 * (e) recovery with real `rvx worker` processes on a pipeline task (bench/fleet.ts)
 * (f) the fleet views (workers status, monitor) on 1,000,000 task rows (bench/fleet.ts)
 */
import {type ChildProcess, spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {Kysely, PostgresDialect, sql} from 'kysely'
import pg from 'pg'

import {createPool} from '../src/db/connect.js'
import {EmbeddedServer} from '../src/db/embedded.js'
import {migrateToLatest} from '../src/db/migrator.js'
import type {Database} from '../src/db/schema.js'
import {DEFAULT_CONFIG, enqueue, sleep, TaskRegistry, Worker} from '../src/runtime/index.js'
import {ROOT, waitUntil} from './common.js'
import {cliRecovery, statsAtScale, type StatsTiming} from './fleet.js'

const args = new Set(process.argv.slice(2))
const JSON_OUT = args.has('--json')
const QUICK = args.has('--quick')
const N_THROUGHPUT = QUICK ? 2000 : 20_000
const N_LATENCY = QUICK ? 50 : 300
const N_KILLS = QUICK ? 3 : 10
const IDLE_WINDOW_S = QUICK ? 10 : 30
const N_STATS_ROWS = QUICK ? 100_000 : 1_000_000
const CONCURRENCY = 16
const ONLY = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',')
const wanted = (part: string) => !ONLY || ONLY.includes(part)

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`)
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

function summary(values: number[], digits = 1): {p50: number; p95: number; p99: number} {
  const s = [...values].sort((a, b) => a - b)
  const r = (n: number) => Math.round(n * 10 ** digits) / 10 ** digits
  return {p50: r(percentile(s, 50)), p95: r(percentile(s, 95)), p99: r(percentile(s, 99))}
}

async function createDb(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({connectionString: adminUrl})
  await client.connect()
  await client.query(`drop database if exists ${name} with (force)`)
  await client.query(`create database ${name}`)
  await client.end()
  const u = new URL(adminUrl)
  u.pathname = `/${name}`
  return u.toString()
}

function kysely(url: string, max = 4): Kysely<Database> {
  return new Kysely<Database>({dialect: new PostgresDialect({pool: createPool(url, {max})})})
}

/** Resolves when `count` handler calls have happened. */
function counter(count: number): {hit: () => void; done: Promise<void>} {
  let n = 0
  let resolve!: () => void
  const done = new Promise<void>((r) => (resolve = r))
  return {
    hit() {
      if (++n === count) resolve()
    },
    done,
  }
}

// ---------------------------------------------------------------- rvx

async function rvxThroughput(url: string): Promise<number> {
  const db = kysely(url)
  await enqueue(
    db,
    Array.from({length: N_THROUGHPUT}, () => ({kind: 'noop'})),
  )
  const c = counter(N_THROUGHPUT)
  const registry = new TaskRegistry().register('noop', async () => {
    c.hit()
  })
  const worker = new Worker({databaseUrl: url, registry, concurrency: CONCURRENCY})
  const t0 = performance.now()
  const running = worker.start()
  await c.done
  // Count only what is durably completed.
  await waitUntil(async () => (await sql<{n: number}>`select count(*)::int as n from tasks where status = 'completed'`.execute(db)).rows[0].n === N_THROUGHPUT)
  const seconds = (performance.now() - t0) / 1000
  worker.stop()
  await running
  await db.destroy()
  return N_THROUGHPUT / seconds
}

async function rvxLatency(url: string): Promise<number[]> {
  const db = kysely(url)
  let started: (() => void) | undefined
  const registry = new TaskRegistry().register('ping', async () => {
    started?.()
  })
  const worker = new Worker({databaseUrl: url, registry, concurrency: CONCURRENCY})
  const running = worker.start()
  await sleep(1000)
  const samples: number[] = []
  for (let i = 0; i < N_LATENCY; i++) {
    const hit = new Promise<void>((r) => (started = r))
    const t0 = performance.now()
    await enqueue(db, {kind: 'ping'})
    await hit
    samples.push(performance.now() - t0)
    await sleep(5)
  }

  worker.stop()
  await running
  await db.destroy()
  return samples
}

async function rvxRecovery(url: string): Promise<number[]> {
  const db = kysely(url)
  await sql`create table if not exists effects (task_id bigint not null, worker_id text not null)`.execute(db)
  const samples: number[] = []
  for (let round = 0; round < N_KILLS; round++) {
    const victimId = `victim-${round}`
    const [task] = await enqueue(db, {kind: 'sleep', payload: {ms: 10 * 60_000}, scope: `round-${round}`})
    const victim = spawnWorker(url, victimId, `round-${round}`)
    await waitUntil(async () => {
      const row = await db.selectFrom('tasks').select('lease_owner').where('id', '=', task.id).executeTakeFirstOrThrow()
      return row.lease_owner === victimId
    }, 30_000)

    // A live fleet member that will rescue it, on default settings.
    let rescuedAt = 0
    const registry = new TaskRegistry().register('sleep', async () => {
      rescuedAt = performance.now()
    })
    const rescuer = new Worker({databaseUrl: url, registry, concurrency: 1, scope: `round-${round}`, id: `rescuer-${round}`})
    const running = rescuer.start()
    // Kill at a random point of the victim's heartbeat cycle.
    await sleep(1000 + Math.random() * DEFAULT_CONFIG.heartbeatIntervalMs)
    const killedAt = performance.now()
    victim.kill('SIGKILL')
    await waitUntil(async () => rescuedAt > 0, 120_000, 20)
    samples.push((rescuedAt - killedAt) / 1000)
    progress(`recovery ${round + 1}/${N_KILLS}: ${samples.at(-1)!.toFixed(2)} s`)
    rescuer.stop()
    await running
  }

  await db.destroy()
  return samples
}

function spawnWorker(url: string, id: string, scope: string): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench', 'victim-worker.ts')], {
    cwd: ROOT,
    env: {...process.env, DATABASE_URL: url, WORKER_ID: id, WORKER_SCOPE: scope},
    stdio: 'ignore',
  })
}

async function rvxIdleQueries(url: string): Promise<number> {
  // Count what the worker sends: every statement of every pg client in this process (pool and
  // liveness session alike) goes through Client.prototype.query. Nothing else runs meanwhile.
  let statements = 0
  const original = pg.Client.prototype.query
  const patched = function (this: pg.Client, ...params: unknown[]) {
    statements++
    return (original as (...p: unknown[]) => unknown).apply(this, params)
  }
  ;(pg.Client.prototype as unknown as {query: unknown}).query = patched
  try {
    const registry = new TaskRegistry().register('idle', async () => {})
    const worker = new Worker({databaseUrl: url, registry, concurrency: CONCURRENCY})
    const running = worker.start()
    await sleep(3000)
    const before = statements
    await sleep(IDLE_WINDOW_S * 1000)
    const count = statements - before
    worker.stop()
    await running
    return count / IDLE_WINDOW_S
  } finally {
    ;(pg.Client.prototype as unknown as {query: unknown}).query = original
  }
}

// ---------------------------------------------------------------- graphile-worker

async function graphileThroughput(url: string): Promise<number> {
  const {run, runMigrations} = await import('graphile-worker')
  await runMigrations({connectionString: url, logger: quietGraphileLogger(await import('graphile-worker'))})
  const client = new pg.Client({connectionString: url})
  await client.connect()
  await client.query(`select graphile_worker.add_job('noop', '{}'::json) from generate_series(1, $1)`, [N_THROUGHPUT])
  await client.end()
  const c = counter(N_THROUGHPUT)
  const t0 = performance.now()
  const runner = await run({
    connectionString: url,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    logger: quietGraphileLogger(await import('graphile-worker')),
    taskList: {
      async noop() {
        c.hit()
      },
    },
  })
  await c.done
  const check = new pg.Client({connectionString: url})
  await check.connect()
  await waitUntil(async () => Number((await check.query('select count(*) as n from graphile_worker.jobs')).rows[0].n) === 0)
  const seconds = (performance.now() - t0) / 1000
  await check.end()
  await runner.stop()
  return N_THROUGHPUT / seconds
}

async function graphileLatency(url: string): Promise<number[]> {
  const gw = await import('graphile-worker')
  await gw.runMigrations({connectionString: url, logger: quietGraphileLogger(gw)})
  let started: (() => void) | undefined
  const runner = await gw.run({
    connectionString: url,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    logger: quietGraphileLogger(gw),
    taskList: {
      async ping() {
        started?.()
      },
    },
  })
  const utils = await gw.makeWorkerUtils({connectionString: url, logger: quietGraphileLogger(gw)})
  await sleep(1000)
  const samples: number[] = []
  for (let i = 0; i < N_LATENCY; i++) {
    const hit = new Promise<void>((r) => (started = r))
    const t0 = performance.now()
    await utils.addJob('ping', {})
    await hit
    samples.push(performance.now() - t0)
    await sleep(5)
  }

  await utils.release()
  await runner.stop()
  return samples
}

function quietGraphileLogger(gw: typeof import('graphile-worker')) {
  return new gw.Logger(() => () => {})
}

// ---------------------------------------------------------------- pg-boss

async function bossThroughput(url: string): Promise<number> {
  const {default: PgBoss} = await import('pg-boss')
  const boss = new PgBoss({connectionString: url, max: CONCURRENCY + 4})
  boss.on('error', () => {})
  await boss.start()
  await boss.createQueue('noop')
  for (let i = 0; i < N_THROUGHPUT; i += 5000) {
    await boss.insert(Array.from({length: Math.min(5000, N_THROUGHPUT - i)}, () => ({name: 'noop', data: {}})))
  }

  const c = counter(N_THROUGHPUT)
  const t0 = performance.now()
  // pg-boss 10 has no concurrency option: one work() loop per slot, as its docs suggest.
  for (let i = 0; i < CONCURRENCY; i++) {
    await boss.work('noop', {batchSize: 16, pollingIntervalSeconds: 0.5}, async (jobs) => {
      for (const _ of jobs) c.hit()
      return
      c.hit()
    })
  }

  await c.done
  await waitUntil(
    async () =>
      (await boss.getQueueSize('noop')) === 0 &&
      Number((await boss.getDb().executeSql(`select count(*) as n from pgboss.job where name = 'noop' and state <> 'completed'`, [])).rows[0].n) === 0,
  )
  const seconds = (performance.now() - t0) / 1000
  await boss.stop({graceful: false, wait: true})
  return N_THROUGHPUT / seconds
}

async function bossLatency(url: string): Promise<number[]> {
  const {default: PgBoss} = await import('pg-boss')
  const boss = new PgBoss({connectionString: url})
  boss.on('error', () => {})
  await boss.start()
  await boss.createQueue('ping')
  let started: (() => void) | undefined
  await boss.work('ping', async () => {
    started?.()
  })
  await sleep(1000)
  const samples: number[] = []
  for (let i = 0; i < Math.min(N_LATENCY, 60); i++) {
    const hit = new Promise<void>((r) => (started = r))
    const t0 = performance.now()
    await boss.send('ping', {})
    await hit
    samples.push(performance.now() - t0)
  }

  await boss.stop({graceful: false, wait: true})
  return samples
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-bench-'))
  const server = new EmbeddedServer({home, env: {...process.env, RVX_PG_PORT: ''}, settings: {max_connections: '300'}})
  const cleanup = () => server.stopNowSync()
  process.once('exit', cleanup)
  try {
    const {url: adminUrl} = await server.start()
    progress(`embedded PostgreSQL on ${new URL(adminUrl).host}; ${os.cpus().length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB`)

    const fresh = async (name: string, migrate: boolean) => {
      const url = await createDb(adminUrl, name)
      if (migrate) {
        const db = kysely(url)
        await migrateToLatest(db, url)
        await db.destroy()
      }

      return url
    }

    const empty = {p50: Number.NaN, p95: Number.NaN, p99: Number.NaN}
    let throughput = {rvx: Number.NaN, graphile_worker: Number.NaN, pg_boss: Number.NaN}
    if (wanted('throughput')) {
      progress(`(a) throughput, ${N_THROUGHPUT} no-op tasks at concurrency ${CONCURRENCY}`)
      throughput = {
        rvx: round(await rvxThroughput(await fresh('b_rvx_tp', true))),
        graphile_worker: round(await graphileThroughput(await fresh('b_gw_tp', false))),
        pg_boss: round(await bossThroughput(await fresh('b_boss_tp', false))),
      }
      progress(`    ${JSON.stringify(throughput)}`)
    }

    let latency_ms = {rvx: empty, graphile_worker: empty, pg_boss: empty}
    if (wanted('latency')) {
      progress(`(b) enqueue-to-start latency, ${N_LATENCY} tasks one at a time`)
      latency_ms = {
        rvx: summary(await rvxLatency(await fresh('b_rvx_lat', true))),
        graphile_worker: summary(await graphileLatency(await fresh('b_gw_lat', false))),
        pg_boss: summary(await bossLatency(await fresh('b_boss_lat', false))),
      }
      progress(`    ${JSON.stringify(latency_ms)}`)
    }

    let recovery_s = {rvx: {p50: Number.NaN, p99: Number.NaN}}
    if (wanted('recovery')) {
      progress(`(c) rvx recovery after SIGKILL, ${N_KILLS} kills, default settings`)
      const rec = summary(await rvxRecovery(await fresh('b_rvx_rec', true)), 2)
      recovery_s = {rvx: {p50: rec.p50, p99: rec.p99}}
    }

    let idle_queries_per_s = {rvx: Number.NaN}
    if (wanted('idle')) {
      progress(`(d) idle rvx worker, ${IDLE_WINDOW_S} s window`)
      idle_queries_per_s = {rvx: round(await rvxIdleQueries(await fresh('b_rvx_idle', true)), 2)}
    }

    let cli_recovery_s = {p50: Number.NaN, p99: Number.NaN}
    if (wanted('fleet-recovery')) {
      progress(`(e) recovery with real rvx worker processes, ${N_KILLS} kills, default settings`)
      const url = await fresh('b_rvx_cli_rec', true)
      const db = kysely(url)
      const rec = summary(await cliRecovery(db, url, N_KILLS, progress), 2)
      await db.destroy()
      cli_recovery_s = {p50: rec.p50, p99: rec.p99}
    }

    let stats: {rows: number; events: number; timings: StatsTiming[]} | undefined
    if (wanted('stats')) {
      const db = kysely(await fresh('b_rvx_stats', true))
      stats = await statsAtScale(db, N_STATS_ROWS, QUICK ? 5 : 20, progress)
      await db.destroy()
    }

    const result = {
      throughput,
      latency_ms,
      recovery_s,
      idle_queries_per_s,
      cli_recovery_s,
      stats,
      peer_recovery_defaults_s: {graphile_worker: 4 * 3600, pg_boss: 15 * 60, river: 3600, hatchet: '30-60', replaced_system: 300},
      settings: {tasks: N_THROUGHPUT, concurrency: CONCURRENCY, latency_samples: N_LATENCY, kills: N_KILLS, rvx_defaults: DEFAULT_CONFIG},
      machine: {
        cores: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        memory_gb: Math.round(os.totalmem() / 1024 ** 3),
        node: process.version,
        date: new Date().toISOString(),
      },
    }
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify(result) + '\n')
    } else {
      print(result)
    }
  } finally {
    await server.destroy().catch(() => {})
    process.removeListener('exit', cleanup)
    fs.rmSync(home, {recursive: true, force: true})
  }
}

function round(n: number, digits = 0): number {
  return Math.round(n * 10 ** digits) / 10 ** digits
}

function print(r: {
  throughput: Record<string, number>
  latency_ms: Record<string, {p50: number; p95: number; p99: number}>
  recovery_s: {rvx: {p50: number; p99: number}}
  idle_queries_per_s: {rvx: number}
  cli_recovery_s: {p50: number; p99: number}
  stats?: {rows: number; events: number; timings: StatsTiming[]}
}): void {
  const rows = Object.keys(r.throughput).map((k) => {
    const l = r.latency_ms[k]
    return `  ${k.padEnd(16)} ${String(r.throughput[k]).padStart(8)} tasks/s   latency p50 ${l.p50} ms, p95 ${l.p95} ms, p99 ${l.p99} ms   (${(r.throughput[k] / r.throughput.rvx).toFixed(2)}x rvx)`
  })
  // Only what was measured (--only leaves the rest out).
  const measured = (...values: number[]) => values.some((v) => !Number.isNaN(v))
  process.stdout.write(
    [
      ...(measured(...Object.values(r.throughput), r.latency_ms.rvx.p50)
        ? [`throughput and enqueue-to-start latency (${N_THROUGHPUT} tasks, concurrency ${CONCURRENCY}):`, ...rows]
        : []),
      ...(measured(r.recovery_s.rvx.p50)
        ? [
            `rvx recovery after SIGKILL: p50 ${r.recovery_s.rvx.p50} s, p99 ${r.recovery_s.rvx.p99} s  (peers' defaults: graphile-worker 4 h, pg-boss 15 min, River 1 h, Hatchet 30-60 s)`,
          ]
        : []),
      ...(measured(r.idle_queries_per_s.rvx) ? [`idle rvx worker: ${r.idle_queries_per_s.rvx} queries/s`] : []),
      ...(measured(r.cli_recovery_s.p50) ? [`recovery with real rvx worker processes: p50 ${r.cli_recovery_s.p50} s, p99 ${r.cli_recovery_s.p99} s`] : []),
      ...(r.stats
        ? [
            `fleet views on ${r.stats.rows.toLocaleString('en')} tasks / ${r.stats.events.toLocaleString('en')} events (p50):`,
            ...r.stats.timings.map((t) => `  ${t.query.padEnd(70)} ${String(t.p50Ms).padStart(8)} ms  (${t.vsFullCount}x full count)`),
          ]
        : []),
      '',
    ].join('\n'),
  )
}

await main()
process.exit(0)
