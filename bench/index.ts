/**
 * rvx runtime vs graphile-worker vs pg-boss, side by side, in one run on one
 * embedded PostgreSQL. Each peer runs at its defaults and at its best documented
 * settings (bench/systems.ts), every system with the same concurrency and the
 * same number of connections, each run in its own fresh database.
 *
 *   npm run bench                 human-readable tables
 *   npm run bench -- --json       one JSON object on stdout
 *   npm run bench -- --quick      smaller counts, one repeat (smoke run)
 *   npm run bench -- --only=throughput,latency,recovery,idle,fleet-recovery,stats,startup
 *   npm run bench -- --repeats=3 --systems=rvx,graphile_worker   (keys by prefix)
 *   npm run bench -- --only=quota [--quota=a,b,c,efficiency] [--quota-serial] [--quick]   (g) and (h): only when named
 *   npm run bench -- --only=depth [--depths=50000,300000,1000000] [--repeats=N] [--statements]   (j): only when named
 *   npm run bench -- --only=soak [--minutes=30] [--rate=N] [--out=bench/soak]            (k): only when named
 *
 * (a) throughput: N no-op tasks enqueued up front, drained at concurrency 16
 * (b) enqueue-to-start latency with an idle worker, tasks enqueued one at a time
 * (c) rvx recovery after SIGKILL of a worker process holding a task (default settings)
 * (d) statements per second sent by an idle rvx worker (default settings)
 * (e) recovery with real `rvx worker` processes on a pipeline task (bench/fleet.ts)
 * (f) the fleet views (workers status, monitor) on 1,000,000 task rows (bench/fleet.ts)
 * (g) speed and spend against a provider's quota: real rvx processes, a quota-enforcing billing
 *     model server, three rate-limit variants side by side (bench/quota.ts; about 15 minutes, so only with --only=quota)
 * (h) parallel efficiency of simulated runs at --concurrency 4, 16 and 64 (bench/quota.ts, with (g))
 * (i) start-up: `rvx runs list --json` next to `node -e 0`, spawn to exit (bench/startup.ts)
 * (j) depth: (a) at 50,000, 300,000 and 1,000,000 queued tasks for rvx, the best peer configurations and the
 *     floor (the least SQL any PostgreSQL queue must run); only with --only=depth [--depths=2000,5000]
 * (k) soak: a steady arrival rate through 4 rvx worker processes and a monitor with retention, per-minute series
 *     and charts (bench/soak.ts); only with --only=soak [--minutes=N] [--rate=N] [--out=DIR]
 *
 * (a) and (b) treat every configuration alike: a warm-up first, then `--repeats`
 * rounds whose order alternates (forward, then reversed), and before each run a
 * checkpoint and no autovacuum worker busy; the previous run's database is dropped.
 */
import {type ChildProcess, spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {sql} from 'kysely'
import pg from 'pg'

import {EmbeddedServer} from '../src/db/embedded.js'
import {migrateToLatest} from '../src/db/migrator.js'
import {DEFAULT_CONFIG, enqueue, sleep, TaskRegistry, Worker} from '../src/runtime/index.js'
import {destroyServerSync, distIsStale, kysely, ROOT, waitUntil} from './common.js'
import {cliRecovery, statsAtScale, type StatsTiming} from './fleet.js'
import {printQuota, quotaBench, type QuotaResult, quotaSettings} from './quota.js'
import {startupTimes, type StartupResult} from './startup.js'
import {printSoak, soakBench, type SoakResult, soakSettings} from './soak.js'
import {allSystems, connectionsFor, depthSystems, type System} from './systems.js'
import {genericPlans, resetStatements, type StatementPlan, STATEMENT_SETTINGS, type StatementTiming, topStatements, untracked} from './statements.js'

const argv = process.argv.slice(2)
const flag = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
const JSON_OUT = argv.includes('--json')
const QUICK = argv.includes('--quick')
const REPEATS = Number(flag('repeats') ?? (QUICK ? 1 : 3))
const ONLY = flag('only')?.split(',')
const SYSTEMS_WANTED = flag('systems')?.split(',')
const CONCURRENCY = 16
const N_THROUGHPUT = QUICK ? 2000 : 50_000
/** A run stops here if it has not drained (pg-boss at its defaults completes 8 tasks/s by construction). */
const THROUGHPUT_CAP_S = QUICK ? 15 : 60
const N_WARMUP = QUICK ? 500 : 2000
const WARMUP_CAP_S = 10
const N_LATENCY = QUICK ? 50 : 200
const LATENCY_WARMUP = 10
/** Arrivals average 4/s: half of pg-boss's default ceiling (8/s), so no backlog builds and each start is a dispatch, not a queue. */
const LATENCY_MEAN_GAP_MS = 250
const N_KILLS = QUICK ? 3 : 10
const IDLE_WINDOW_S = QUICK ? 10 : 30
const N_STATS_ROWS = QUICK ? 100_000 : 1_000_000
const N_STARTUP = QUICK ? 5 : 10
const wanted = (part: string) => !ONLY || ONLY.includes(part)
/** (g) and (h) take about 25 minutes: they run only when asked for. */
const WANT_QUOTA = ONLY?.includes('quota') ?? false
const QUOTA_PARTS = flag('quota')?.split(',')
if (QUOTA_PARTS?.some((p) => !['a', 'b', 'c', 'efficiency'].includes(p))) {
  process.stderr.write('--quota takes a, b, c and efficiency (comma-separated)\n')
  process.exit(2)
}

/** (j) takes about an hour at its default depths, (k) as long as --minutes says: only when asked for. */
const WANT_DEPTH = ONLY?.includes('depth') ?? false
const WANT_SOAK = ONLY?.includes('soak') ?? false
/** (j) with pg_stat_statements loaded: each run's costliest statements and the plans of the last run's at depth. */
const STATEMENTS = argv.includes('--statements')
const DEPTHS = (flag('depths') ?? '50000,300000,1000000').split(',').map(Number)
if (DEPTHS.some((d) => !Number.isInteger(d) || d < 1 || d > 10_000_000)) {
  process.stderr.write('--depths takes whole numbers from 1 to 10,000,000, comma-separated, e.g. --depths=2000,5000\n')
  process.exit(2)
}

if ((WANT_QUOTA || WANT_SOAK) && distIsStale()) {
  process.stderr.write(`dist/ is older than src/: the ${WANT_QUOTA ? 'quota' : 'soak'} bench runs the built CLI; run npm run build first\n`)
  process.exit(2)
}
if (!Number.isInteger(REPEATS) || REPEATS < 1) {
  process.stderr.write('--repeats must be a whole number of at least 1\n')
  process.exit(2)
}

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`)
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[i]
}

function round(n: number, digits = 0): number {
  return Math.round(n * 10 ** digits) / 10 ** digits
}

function summary(values: number[], digits = 1): {p50: number; p95: number; p99: number} {
  const s = [...values].sort((a, b) => a - b)
  return {p50: round(percentile(s, 50), digits), p95: round(percentile(s, 95), digits), p99: round(percentile(s, 99), digits)}
}

/** Median and range of the repeats of one measure. */
interface Spread {
  median: number
  min: number
  max: number
}

function spread(values: number[], digits = 1): Spread {
  const s = [...values].sort((a, b) => a - b)
  const mid = s.length / 2
  const median = s.length % 2 ? s[Math.floor(mid)] : (s[mid - 1] + s[mid]) / 2
  return {median: round(median, digits), min: round(s[0], digits), max: round(s.at(-1)!, digits)}
}

// ---------------------------------------------------------------- databases

interface Server {
  adminUrl: string
  /** A session on the server's maintenance database. */
  admin: pg.Client
}

async function createDb(server: Server, name: string): Promise<string> {
  await server.admin.query(`drop database if exists ${name} with (force)`)
  await server.admin.query(`create database ${name}`)
  const u = new URL(server.adminUrl)
  u.pathname = `/${name}`
  return u.toString()
}

async function dropDb(server: Server, name: string): Promise<void> {
  // Some pools end without awaiting (graphile-worker's release()): let their sessions go before forcing the rest.
  const sessions = async () => Number((await server.admin.query('select count(*) as n from pg_stat_activity where datname = $1', [name])).rows[0].n)
  await waitUntil(async () => (await sessions()) === 0, 10_000, 50).catch(() => {})
  await server.admin.query(`drop database if exists ${name} with (force)`)
}

/** Before a measured run: the previous run's dirty pages written and no autovacuum worker busy, so no run pays for another's. */
async function settle(server: Server): Promise<void> {
  await server.admin.query('checkpoint')
  await waitUntil(
    async () => Number((await server.admin.query(`select count(*) as n from pg_stat_activity where backend_type = 'autovacuum worker'`)).rows[0].n) === 0,
    120_000,
    200,
  )
}

/** Runs `fn` against a fresh database that is dropped afterwards. */
async function inFreshDb<T>(server: Server, name: string, fn: (url: string) => Promise<T>): Promise<T> {
  const url = await createDb(server, name)
  try {
    return await fn(url)
  } finally {
    await dropDb(server, name)
  }
}

// ---------------------------------------------------------------- (a) and (b), the same for every system

interface ThroughputRun {
  tasks_per_s: number
  /** Tasks durably finished within the cap. */
  completed: number
  seconds: number
  /** (j) --statements: the run's costliest statements, and plans taken at full depth before it started. */
  statements?: StatementTiming[]
  plans?: StatementPlan[]
}

/** Looks at a run's database before it starts and after it ends, on the bench's own session (bench (j) --statements). */
interface RunProbe {
  before(client: pg.Client): Promise<Pick<ThroughputRun, 'plans'>>
  after(client: pg.Client): Promise<Pick<ThroughputRun, 'statements'>>
}

/**
 * N tasks enqueued up front; from the first task start to the last durable completion, or the cap. The drain is
 * watched in this process (each handler start is counted) and the database asked what is left only once every task
 * has started: a count every few milliseconds would take from the database the work the systems are measured doing
 * (a count of rvx's 1,000,000 tasks takes 60-77 ms).
 */
async function throughputRun(server: Server, system: System, name: string, n: number, capS: number, probe?: RunProbe): Promise<ThroughputRun> {
  return inFreshDb(server, name, async (url) => {
    await system.prepare(url)
    await system.enqueue(url, n)
    const check = new pg.Client({connectionString: url})
    await check.connect()
    try {
      if (probe) await untracked(check)
      await check.query('vacuum analyze')
      await settle(server)
      const before = await probe?.before(check)
      let first = 0
      let handled = 0
      const running = await system.start(url, () => {
        if (first === 0) first = performance.now()
        handled++
      })
      const started = performance.now()
      const capped = () => performance.now() - started >= capS * 1000
      let left = n
      let end = 0
      try {
        while (handled < n && !capped()) await sleep(5)
        // Then what is left, until nothing is (each poll's count runs before the cap is looked at, so a run that hit
        // the cap still counts what it left).
        while ((left = await system.live(check)) > 0 && !capped()) await sleep(20)
        end = performance.now()
      } finally {
        await running.stop()
      }

      const seconds = first === 0 ? Number.NaN : (end - first) / 1000
      const after = await probe?.after(check)
      return {tasks_per_s: round((n - left) / seconds), completed: n - left, seconds: round(seconds, 2), ...before, ...after}
    } finally {
      await check.end()
    }
  })
}

/** A seeded generator, so every system sees the same arrival times. */
function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

/**
 * With the worker idle: single tasks at random moments (Poisson arrivals, one every LATENCY_MEAN_GAP_MS on
 * average, the same seeded schedule for every system), each timed from its enqueue call to its handler's start.
 * Arrivals do not wait for the previous start, so a polling system is met at random points of its poll cycle.
 */
async function latencyRun(server: Server, system: System, name: string, samples: number): Promise<number[]> {
  return inFreshDb(server, name, async (url) => {
    await system.prepare(url)
    const client = new pg.Client({connectionString: url})
    await client.connect()
    await client.query('vacuum analyze')
    await client.end()
    await settle(server)
    const total = LATENCY_WARMUP + samples
    const enqueuedAt: number[] = []
    const startedAt = new Map<number, number>()
    const running = await system.start(url, (tag) => {
      if (tag !== undefined && !startedAt.has(tag)) startedAt.set(tag, performance.now())
    })
    try {
      await sleep(1000)
      const random = seeded(16)
      const sends: Array<Promise<void>> = []
      let failure: unknown
      let next = performance.now()
      for (let i = 0; i < total; i++) {
        next += -Math.log(1 - random()) * LATENCY_MEAN_GAP_MS
        await sleep(Math.max(0, next - performance.now()))
        enqueuedAt[i] = performance.now()
        sends.push(running.enqueueOne(i).catch((error: unknown) => void (failure ??= error)))
      }

      await Promise.all(sends)
      if (failure) throw failure
      await waitUntil(async () => startedAt.size >= total, 60_000, 20)
    } finally {
      await running.stop()
    }

    return enqueuedAt.slice(LATENCY_WARMUP).map((at, i) => startedAt.get(LATENCY_WARMUP + i)! - at)
  })
}

/** Repeat r runs the systems forward when r is even, reversed when odd. */
const orderOf = (systems: System[], repeat: number) => (repeat % 2 === 0 ? systems : [...systems].reverse())

interface ThroughputResult {
  runs: ThroughputRun[]
  tasks_per_s: Spread
  /** Median over rvx's median. */
  vs_rvx: number
}

async function throughputAll(server: Server, systems: System[]): Promise<Record<string, ThroughputResult>> {
  progress(`(a) warm-up: ${N_WARMUP} tasks per configuration (at most ${WARMUP_CAP_S} s), not recorded`)
  for (const system of systems) await throughputRun(server, system, `b_warm_${system.key}`, N_WARMUP, WARMUP_CAP_S)
  const runs = new Map<string, ThroughputRun[]>(systems.map((s) => [s.key, []]))
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    for (const system of orderOf(systems, repeat)) {
      const run = await throughputRun(server, system, `b_tp_${system.key}_${repeat}`, N_THROUGHPUT, THROUGHPUT_CAP_S)
      runs.get(system.key)!.push(run)
      progress(`(a) ${repeat + 1}/${REPEATS} ${system.name}: ${run.tasks_per_s} tasks/s (${run.completed} in ${run.seconds} s)`)
    }
  }

  return compare(systems, runs)
}

/** Each configuration's runs, their spread, and its median over rvx's. */
function compare(systems: System[], runs: Map<string, ThroughputRun[]>): Record<string, ThroughputResult> {
  const median = (key: string) =>
    spread(
      runs.get(key)!.map((r) => r.tasks_per_s),
      0,
    ).median
  const rvxMedian = runs.has('rvx') ? median('rvx') : Number.NaN
  return Object.fromEntries(
    systems.map((s) => {
      const tasksPerS = spread(
        runs.get(s.key)!.map((r) => r.tasks_per_s),
        0,
      )
      return [s.key, {runs: runs.get(s.key)!, tasks_per_s: tasksPerS, vs_rvx: round(tasksPerS.median / rvxMedian, 3)}]
    }),
  )
}

// ---------------------------------------------------------------- (j) depth

interface DepthResult {
  depth: number
  cap_s: number
  results: Record<string, ThroughputResult>
  /** rvx's median at this depth over its median at the first depth. */
  rvx_vs_first_depth: number
  /** rvx's median over the floor's, at this depth. */
  rvx_vs_floor: number
}

/** (a)'s method at each depth: a warm-up, then `REPEATS` rounds in alternating order, each run in a fresh database. */
async function depthAll(server: Server, systems: System[]): Promise<DepthResult[]> {
  // With --statements: each system's costliest statements of its last run are explained at full depth before the next.
  const known = new Map<string, string[]>()
  const probe = (key: string): RunProbe | undefined =>
    STATEMENTS
      ? {
          async before(client) {
            await resetStatements(client)
            return {plans: await genericPlans(client, (known.get(key) ?? []).slice(0, 3))}
          },
          async after(client) {
            const statements = await topStatements(client)
            known.set(
              key,
              statements.map((x) => x.query),
            )
            return {statements}
          },
        }
      : undefined
  progress(`(j) warm-up: ${N_WARMUP} tasks per configuration (at most ${WARMUP_CAP_S} s), not recorded`)
  for (const system of systems) await throughputRun(server, system, `b_warm_${system.key}`, N_WARMUP, WARMUP_CAP_S, probe(system.key))
  const out: DepthResult[] = []
  for (const depth of DEPTHS) {
    // At least 1,000 tasks/s, or the run stops.
    const capS = Math.max(THROUGHPUT_CAP_S, Math.ceil(depth / 1000))
    const runs = new Map<string, ThroughputRun[]>(systems.map((s) => [s.key, []]))
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      for (const system of orderOf(systems, repeat)) {
        const run = await throughputRun(server, system, `b_depth_${system.key}_${repeat}`, depth, capS, probe(system.key))
        runs.get(system.key)!.push(run)
        progress(`(j) depth ${depth}, ${repeat + 1}/${REPEATS} ${system.name}: ${run.tasks_per_s} tasks/s (${run.completed} in ${run.seconds} s)`)
      }
    }

    const results = compare(systems, runs)
    const rvx = results.rvx?.tasks_per_s.median ?? Number.NaN
    const first = out[0]?.results.rvx?.tasks_per_s.median ?? rvx
    out.push({
      depth,
      cap_s: capS,
      results,
      rvx_vs_first_depth: round(rvx / first, 3),
      rvx_vs_floor: round(rvx / (results.floor?.tasks_per_s.median ?? Number.NaN), 3),
    })
  }

  return out
}

interface LatencyResult {
  runs: Array<{p50: number; p95: number; p99: number}>
  p50: Spread
  p95: Spread
  p99: Spread
}

async function latencyAll(server: Server, systems: System[]): Promise<Record<string, LatencyResult>> {
  const runs = new Map<string, LatencyResult['runs']>(systems.map((s) => [s.key, []]))
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    for (const system of orderOf(systems, repeat)) {
      const run = summary(await latencyRun(server, system, `b_lat_${system.key}_${repeat}`, N_LATENCY))
      runs.get(system.key)!.push(run)
      progress(`(b) ${repeat + 1}/${REPEATS} ${system.name}: p50 ${run.p50} / p95 ${run.p95} / p99 ${run.p99} ms`)
    }
  }

  return Object.fromEntries(
    systems.map((s) => {
      const r = runs.get(s.key)!
      return [s.key, {runs: r, p50: spread(r.map((x) => x.p50)), p95: spread(r.map((x) => x.p95)), p99: spread(r.map((x) => x.p99))}]
    }),
  )
}

// ---------------------------------------------------------------- rvx only: (c) and (d)

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

// ---------------------------------------------------------------- main

/** Peers' recovery after a crash, from their documentation: not measured here. */
const PEER_RECOVERY_DOCUMENTED_S = {graphile_worker: 4 * 3600, pg_boss: 15 * 60}

/** The depth bench's configurations as the output names them (set when (j) runs). */
let depthResult: {systems: Array<Pick<System, 'key' | 'name' | 'version' | 'connections' | 'settings'>>} | undefined

async function main(): Promise<void> {
  const systems = allSystems(CONCURRENCY, progress).filter((s) => !SYSTEMS_WANTED || SYSTEMS_WANTED.some((w) => s.key.startsWith(w)))
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-bench-'))
  const embedded = new EmbeddedServer({
    home,
    env: {...process.env, RVX_PG_PORT: ''},
    settings: {max_connections: '300', ...(STATEMENTS ? STATEMENT_SETTINGS : {})},
  })
  // However the bench ends (an error, SIGTERM from `timeout`, Ctrl-C), its server stops and its data goes: as root the
  // cluster lives in a system directory (/var/lib/rvx/tmp-rvx-bench-*), outside `home`.
  const cleanup = () => destroyServerSync(embedded, home)
  process.once('exit', cleanup)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: stopping the embedded PostgreSQL and removing its data`)
      process.exit(signal === 'SIGINT' ? 130 : 143)
    })
  }
  try {
    const {url: adminUrl} = await embedded.start()
    const admin = new pg.Client({connectionString: adminUrl})
    await admin.connect()
    const server: Server = {adminUrl, admin}
    const pgVersion = (await admin.query('show server_version')).rows[0].server_version as string
    progress(`embedded PostgreSQL ${pgVersion} on ${new URL(adminUrl).host}; ${os.cpus().length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB`)

    const fresh = async (name: string) => {
      const url = await createDb(server, name)
      const db = kysely(url)
      await migrateToLatest(db, url)
      await db.destroy()
      return url
    }

    let throughput: Record<string, ThroughputResult> | undefined
    if (wanted('throughput')) {
      progress(`(a) throughput, ${N_THROUGHPUT} no-op tasks at concurrency ${CONCURRENCY}, ${REPEATS} repeats`)
      throughput = await throughputAll(server, systems)
    }

    let latency_ms: Record<string, LatencyResult> | undefined
    if (wanted('latency')) {
      progress(`(b) enqueue-to-start latency, ${N_LATENCY} single tasks at random moments, ${REPEATS} repeats`)
      latency_ms = await latencyAll(server, systems)
    }

    let recovery_s: {p50: number; p99: number} | undefined
    if (wanted('recovery')) {
      progress(`(c) rvx recovery after SIGKILL, ${N_KILLS} kills, default settings`)
      const rec = summary(await rvxRecovery(await fresh('b_rvx_rec')), 2)
      recovery_s = {p50: rec.p50, p99: rec.p99}
    }

    let idle_queries_per_s: number | undefined
    if (wanted('idle')) {
      progress(`(d) idle rvx worker, ${IDLE_WINDOW_S} s window`)
      idle_queries_per_s = round(await rvxIdleQueries(await fresh('b_rvx_idle')), 2)
    }

    let cli_recovery_s: {p50: number; p99: number} | undefined
    if (wanted('fleet-recovery')) {
      progress(`(e) recovery with real rvx worker processes, ${N_KILLS} kills, default settings`)
      const url = await fresh('b_rvx_cli_rec')
      const db = kysely(url)
      const rec = summary(await cliRecovery(db, url, N_KILLS, progress), 2)
      await db.destroy()
      cli_recovery_s = {p50: rec.p50, p99: rec.p99}
    }

    let stats: {rows: number; events: number; timings: StatsTiming[]} | undefined
    if (wanted('stats')) {
      const db = kysely(await fresh('b_rvx_stats'))
      stats = await statsAtScale(db, N_STATS_ROWS, QUICK ? 5 : 20, progress)
      await db.destroy()
    }

    let quota: QuotaResult | undefined
    if (WANT_QUOTA) {
      const settings = quotaSettings(QUICK, QUOTA_PARTS, argv.includes('--quota-serial'), path.join(ROOT, 'bench', 'out', 'quota'), path.join(home, 'rvx-home'))
      quota = await quotaBench(fresh, settings, progress)
    }

    let depth: DepthResult[] | undefined
    if (WANT_DEPTH) {
      const systems = depthSystems(CONCURRENCY, progress).filter((s) => !SYSTEMS_WANTED || SYSTEMS_WANTED.some((w) => s.key.startsWith(w)))
      progress(`(j) depth: ${DEPTHS.join(', ')} queued no-op tasks at concurrency ${CONCURRENCY}, ${REPEATS} repeats, ${systems.map((x) => x.name).join(', ')}`)
      depthResult = {systems: systems.map(({key, name, version, connections, settings}) => ({key, name, version, connections, settings}))}
      depth = await depthAll(server, systems)
    }

    let soak: SoakResult | undefined
    if (WANT_SOAK) {
      const settings = soakSettings(argv, path.join(ROOT, 'bench', 'soak'))
      progress(`(k) soak: ${settings.minutes} min through ${settings.workers} worker processes, retention ${settings.retention}; out ${settings.out}`)
      soak = await soakBench(await fresh('b_rvx_soak'), settings, progress)
    }

    let startup: StartupResult | undefined
    if (wanted('startup')) {
      progress(`(i) start-up, ${N_STARTUP} runs of each command, alternating`)
      startup = await startupTimes(home, adminUrl, N_STARTUP, progress)
    }

    await admin.end()
    const result: Result = {
      systems: systems.map(({key, name, version, connections, settings, ceiling}) => ({key, name, version, connections, settings, ceiling})),
      throughput: throughput && {tasks: N_THROUGHPUT, cap_s: THROUGHPUT_CAP_S, warmup_tasks: N_WARMUP, results: throughput},
      latency_ms: latency_ms && {
        samples: N_LATENCY,
        warmup_samples: LATENCY_WARMUP,
        mean_gap_ms: LATENCY_MEAN_GAP_MS,
        arrivals: 'poisson, seeded',
        results: latency_ms,
      },
      recovery_s: recovery_s && {rvx: recovery_s, peers_documented_default_not_measured: PEER_RECOVERY_DOCUMENTED_S},
      idle_queries_per_s: idle_queries_per_s === undefined ? undefined : {rvx: idle_queries_per_s},
      cli_recovery_s,
      stats,
      quota,
      depth: depth && {depths: DEPTHS, concurrency: CONCURRENCY, systems: depthResult!.systems, results: depth},
      soak,
      startup,
      settings: {concurrency: CONCURRENCY, connections_per_system: connectionsFor(CONCURRENCY), repeats: REPEATS, kills: N_KILLS, rvx_defaults: DEFAULT_CONFIG},
      machine: {
        cores: os.cpus().length,
        cpu: os.cpus()[0]?.model,
        memory_gb: Math.round(os.totalmem() / 1024 ** 3),
        node: process.version,
        postgres: pgVersion,
        date: new Date().toISOString(),
      },
    }
    if (JSON_OUT) {
      process.stdout.write(JSON.stringify(result) + '\n')
    } else {
      print(result)
    }
  } finally {
    // As root the cluster lives outside `home` (a system directory): destroy() removes it too.
    await embedded.destroy().catch(() => {})
    process.removeListener('exit', cleanup)
    fs.rmSync(home, {recursive: true, force: true})
  }
}

interface Result {
  systems: Array<Pick<System, 'key' | 'name' | 'version' | 'connections' | 'settings' | 'ceiling'>>
  throughput?: {tasks: number; cap_s: number; warmup_tasks: number; results: Record<string, ThroughputResult>}
  latency_ms?: {samples: number; warmup_samples: number; mean_gap_ms: number; arrivals: string; results: Record<string, LatencyResult>}
  recovery_s?: {rvx: {p50: number; p99: number}; peers_documented_default_not_measured: Record<string, number>}
  idle_queries_per_s?: {rvx: number}
  cli_recovery_s?: {p50: number; p99: number}
  stats?: {rows: number; events: number; timings: StatsTiming[]}
  quota?: QuotaResult
  depth?: {depths: number[]; concurrency: number; systems: Array<Pick<System, 'key' | 'name' | 'version' | 'connections' | 'settings'>>; results: DepthResult[]}
  soak?: SoakResult
  startup?: StartupResult
  settings: Record<string, unknown>
  machine: Record<string, unknown>
}

const num = (n: number) => n.toLocaleString('en')
const range = (s: Spread, unit = '') => `${num(s.median)}${unit} (${num(s.min)}-${num(s.max)})`

/** Only what was measured (--only leaves the rest out); every table says what it measured. */
function print(r: Result): void {
  const out: string[] = []
  const width = Math.max(...r.systems.map((s) => s.name.length)) + 2
  if (r.throughput || r.latency_ms) {
    out.push(`configurations (concurrency ${CONCURRENCY} each, each run in a fresh database; ${REPEATS} runs each, order alternating):`)
    for (const s of r.systems) {
      out.push(`  ${s.name} (${s.version})`, `      connections: ${s.connections}`, ...s.settings.map((x) => `      ${x}`))
      if (s.ceiling) out.push(`      poll-bound ceiling: ${num(s.ceiling.tasksPerS)} tasks/s (${s.ceiling.how})`)
    }
  }

  if (r.throughput) {
    const t = r.throughput
    out.push(
      `(a) throughput: ${num(t.tasks)} no-op tasks enqueued up front, then VACUUM ANALYZE; from the first task start to the last durable completion (cap ${t.cap_s} s); median (min-max) of ${REPEATS}:`,
    )
    for (const s of r.systems) {
      const x = t.results[s.key]
      const capped = x.runs.some((run) => run.completed < t.tasks)
        ? `   capped: ${x.runs.map((run) => num(run.completed)).join(' / ')} of ${num(t.tasks)} done in ${t.cap_s} s`
        : ''
      out.push(
        `  ${s.name.padEnd(width)} ${range(x.tasks_per_s).padStart(26)} tasks/s   ${x.vs_rvx.toFixed(x.vs_rvx < 0.01 ? 3 : 2).padStart(5)}x rvx${capped}`,
      )
    }
  }

  if (r.latency_ms) {
    const l = r.latency_ms
    out.push(
      `(b) enqueue-to-start latency, idle worker: ${l.samples} single tasks at random moments (after ${l.warmup_samples} not recorded; Poisson, one per ${l.mean_gap_ms} ms on average, same schedule for all); ms, median (min-max) of ${REPEATS}:`,
    )
    for (const s of r.systems) {
      const x = l.results[s.key]
      out.push(`  ${s.name.padEnd(width)} p50 ${range(x.p50).padEnd(24)} p95 ${range(x.p95).padEnd(24)} p99 ${range(x.p99)}`)
    }
  }

  if (r.recovery_s) {
    const peers = r.recovery_s.peers_documented_default_not_measured
    out.push(
      `(c) rvx recovery after SIGKILL: p50 ${r.recovery_s.rvx.p50} s, p99 ${r.recovery_s.rvx.p99} s   (documented defaults, not measured: graphile-worker ${peers.graphile_worker / 3600} h, pg-boss ${peers.pg_boss / 60} min)`,
    )
  }

  if (r.idle_queries_per_s) out.push(`(d) idle rvx worker: ${r.idle_queries_per_s.rvx} queries/s`)
  if (r.cli_recovery_s) out.push(`(e) recovery with real rvx worker processes: p50 ${r.cli_recovery_s.p50} s, p99 ${r.cli_recovery_s.p99} s`)
  if (r.stats) {
    out.push(
      `(f) fleet views on ${num(r.stats.rows)} tasks / ${num(r.stats.events)} events (p50):`,
      ...r.stats.timings.map((t) => `  ${t.query.padEnd(70)} ${String(t.p50Ms).padStart(8)} ms  (${t.vsFullCount}x full count)`),
    )
  }

  if (r.quota) out.push(...printQuota(r.quota))
  if (r.depth) {
    const w = Math.max(...r.depth.systems.map((s) => s.name.length)) + 2
    out.push(`(j) depth: no-op tasks enqueued up front, drained at concurrency ${r.depth.concurrency} ((a)'s method); tasks/s, median (min-max) of ${REPEATS}:`)
    for (const s of r.depth.systems) out.push(`  ${s.name}: ${s.settings.join('; ')}`)
    for (const d of r.depth.results) {
      out.push(
        `  ${num(d.depth)} queued (cap ${d.cap_s} s): rvx ${d.rvx_vs_first_depth.toFixed(2)}x its rate at ${num(r.depth.depths[0])}, ${d.rvx_vs_floor.toFixed(2)}x the floor`,
      )
      for (const s of r.depth.systems) {
        const x = d.results[s.key]
        const capped = x.runs.some((run) => run.completed < d.depth) ? `   capped: ${x.runs.map((run) => num(run.completed)).join(' / ')} done` : ''
        out.push(`    ${s.name.padEnd(w)} ${range(x.tasks_per_s).padStart(26)} tasks/s   ${x.vs_rvx.toFixed(2).padStart(5)}x rvx${capped}`)
        for (const st of x.runs[0]?.statements?.slice(0, 5) ?? [])
          out.push(
            `        ${String(st.total_ms).padStart(10)} ms ${String(st.calls).padStart(7)} calls ${String(st.mean_ms).padStart(8)} ms each  ${st.query.slice(0, 110)}`,
          )
      }
    }
  }

  if (r.soak) out.push(...printSoak(r.soak))
  if (r.startup) {
    const s = r.startup
    out.push(
      `(i) start-up, spawn to exit; median of ${s.runs} (after ${s.warmup} not recorded), oclif manifest ${s.manifest ? 'present' : 'absent'}:`,
      ...s.timings.map((t) => `  ${t.command.padEnd(38)} ${String(t.medianMs).padStart(6)} ms  ${t.vsNode.toFixed(2).padStart(6)}x node -e 0`),
    )
  }

  process.stdout.write([...out, ''].join('\n'))
}

await main()
process.exit(0)
