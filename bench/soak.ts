/**
 * (k) The soak: a steady arrival rate (60% of a drain rate measured first) of no-op tasks through 4 rvx worker
 * processes (bench/soak-worker.ts) for --minutes, with a real `rvx monitor --retention` deleting what finished, and
 * per-interval series: throughput, dispatch time (p50, p99), the sizes of tasks and task_events (table and indexes),
 * each worker's RSS. Written to OUT/soak.json and drawn as OUT/*.png; the goals of issue 27 are checked at the end.
 *
 *   npm run bench -- --only=soak --minutes=30                     the measurement (not in CI)
 *   npm run bench -- --only=soak --minutes=1 --rate=200 --calibrate-seconds=10 --sample-seconds=10 --out=bench/out/soak-smoke   a smoke run
 */
import {type ChildProcess, fork, spawn} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {performance} from 'node:perf_hooks'
import {sql} from 'kysely'

import {tableStats} from '../src/db/table-stats.js'
import {enqueue, sleep} from '../src/runtime/index.js'
import {type Chart, writeCharts} from './charts.js'
import {BIN, kysely, ROOT, waitUntil} from './common.js'
import {Histogram} from './histogram.js'

export interface SoakSettings {
  minutes: number
  /** Seconds per point of the series (60: per minute). */
  sampleS: number
  workers: number
  concurrency: number
  /** rvx monitor --retention. */
  retention: string
  /** Seconds the drain rate is measured for, in the soak's own conditions (see soakBench). */
  calibrateS: number
  /** Arrivals per second; default 60% of the measured drain rate. */
  rate?: number
  out: string
}

/** The soak's settings from the bench's arguments (--minutes=N --rate=N --sample-seconds=N --calibrate-seconds=N --out=DIR). */
export function soakSettings(argv: string[], defaultOut: string): SoakSettings {
  const flag = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
  const number = (name: string, fallback: number | undefined, min: number, max: number) => {
    const text = flag(name)
    if (text === undefined) return fallback
    const n = Number(text)
    if (!Number.isFinite(n) || n < min || n > max) {
      process.stderr.write(`--${name} takes a number from ${min} to ${max} (got ${text})\n`)
      process.exit(2)
    }

    return n
  }

  return {
    minutes: number('minutes', 30, 1, 24 * 60)!,
    sampleS: number('sample-seconds', 60, 5, 3600)!,
    workers: 4,
    concurrency: 16,
    retention: '1m',
    calibrateS: number('calibrate-seconds', 120, 10, 3600)!,
    rate: number('rate', undefined, 1, 1_000_000),
    out: path.resolve(flag('out') ?? defaultOut),
  }
}

export interface SoakPoint {
  /** Minutes since arrivals began, at the end of this interval. */
  minute: number
  enqueued: number
  /** Handler starts in this interval, per second. */
  tasks_per_s: number
  dispatch_p50_ms: number
  dispatch_p99_ms: number
  queued: number
  tasks_table_bytes: number
  tasks_index_bytes: number
  task_events_table_bytes: number
  task_events_index_bytes: number
  /** Each worker's median RSS over the interval's readings (one a second), and the largest. */
  rss_mb: number[]
  rss_max_mb: number[]
}

export interface SoakResult {
  settings: Omit<SoakSettings, 'out'>
  drain_rate_per_s: number
  arrival_rate_per_s: number
  points: SoakPoint[]
  enqueued: number
  handled: number
  lost: number
  duplicated: number
  goals: Record<string, {met: boolean; detail: string}>
  charts: string[]
}

interface Sample {
  histogram: Record<string, number>
  seqs: number[]
  /** Median of the interval's RSS readings, and the largest. */
  rss: number
  rssMax: number
}

class SoakWorker {
  readonly child: ChildProcess
  private pending?: (s: Sample) => void

  constructor(url: string, id: string, concurrency: number) {
    this.child = fork(path.join(ROOT, 'bench', 'soak-worker.ts'), [], {
      cwd: ROOT,
      execArgv: ['--import', 'tsx'],
      env: {...process.env, DATABASE_URL: url, WORKER_ID: id, WORKER_CONCURRENCY: String(concurrency)},
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    this.child.on('message', (m: Sample) => this.pending?.(m))
  }

  sample(): Promise<Sample> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`soak worker ${this.child.pid} did not answer within 30 s`)), 30_000)
      this.pending = (s) => {
        clearTimeout(timer)
        this.pending = undefined
        resolve(s)
      }

      this.child.send('sample')
    })
  }
}

/** Sequence numbers seen, as counts (to tell lost from duplicated at the end). */
class Seen {
  private counts = new Uint8Array(1 << 20)

  add(seqs: number[]): void {
    for (const seq of seqs) {
      while (seq >= this.counts.length) {
        const bigger = new Uint8Array(this.counts.length * 2)
        bigger.set(this.counts)
        this.counts = bigger
      }

      this.counts[seq] = Math.min(255, this.counts[seq] + 1)
    }
  }

  check(sent: number): {lost: number; duplicated: number} {
    let lost = 0
    let duplicated = 0
    for (let i = 0; i < sent; i++) {
      const n = i < this.counts.length ? this.counts[i] : 0
      if (n === 0) lost++
      else if (n > 1) duplicated += n - 1
    }

    return {lost, duplicated}
  }
}

export async function soakBench(url: string, s: SoakSettings, progress: (m: string) => void): Promise<SoakResult> {
  const db = kysely(url, 4)
  const children: ChildProcess[] = []
  // However the bench ends, its processes end with it.
  const killAll = () => {
    for (const c of children) c.kill('SIGKILL')
  }

  process.once('exit', killAll)
  try {
    const workers = Array.from({length: s.workers}, (_, i) => new SoakWorker(url, `soak-${i + 1}`, s.concurrency))
    children.push(...workers.map((w) => w.child))
    await waitUntil(
      async () => Number((await sql<{n: number}>`select count(*)::int as n from workers where status = 'idle'`.execute(db)).rows[0].n) === s.workers,
      60_000,
      100,
    )
    const seen = new Seen()
    let seq = 0
    const monitor = spawn(process.execPath, [BIN, 'monitor', '--retention', s.retention, '--interval', '5s', '--log-level', 'warn'], {
      cwd: ROOT,
      env: {...process.env, DATABASE_URL: url},
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    children.push(monitor)

    // The drain rate, in the soak's own conditions: a backlog kept topped up (so the workers never wait) while tasks are
    // enqueued and the monitor deletes what retention lets go, counted over the second half of the window (by default
    // 60-120 s: retention deletes nothing younger than its setting, 1 minute, so the first half has no deletes). A backlog
    // drained on its own, with nothing enqueued or deleted meanwhile, overstates what the fleet sustains: on a quiet
    // machine, arrivals at 60% of that rate queued without bound within two minutes.
    let drainRate: number
    {
      const backlog = 20_000
      const t = performance.now()
      const end = t + s.calibrateS * 1000
      let countFrom: number | undefined
      while (performance.now() < end) {
        if ((await live(db)) < backlog) {
          await enqueue(
            db,
            Array.from({length: backlog}, () => ({kind: 'soak', payload: {at: 0, seq: seq++}})),
          )
        }

        if (countFrom === undefined && performance.now() >= t + s.calibrateS * 500) {
          for (const w of workers) seen.add((await w.sample()).seqs)
          countFrom = performance.now()
        }

        await sleep(100)
      }

      // An enqueue of the backlog that outlasts half the window leaves nothing to count from: say so, not divide by it.
      if (countFrom === undefined)
        throw new Error(`--calibrate-seconds=${s.calibrateS} left no second half to count over (one enqueue of ${backlog} tasks outlasted it): raise it`)
      let started = 0
      for (const w of workers) {
        const {seqs} = await w.sample()
        started += seqs.length
        seen.add(seqs)
      }

      drainRate = started / ((performance.now() - countFrom) / 1000)
      progress(`(k) drain rate: ${Math.round(drainRate)} tasks/s (a backlog kept topped up for ${s.calibrateS} s, with retention; ${s.workers} workers)`)
      await waitUntil(async () => (await live(db)) === 0, 600_000, 100)
    }

    for (const w of workers) seen.add((await w.sample()).seqs)
    const rate = s.rate ?? Math.max(1, Math.round(0.6 * drainRate))
    progress(`(k) arrivals: ${rate} tasks/s for ${s.minutes} min; a point every ${s.sampleS} s`)

    // Arrivals on an absolute schedule, every 50 ms: a slow enqueue is caught up by the next, larger one.
    const points: SoakPoint[] = []
    const t0 = performance.now()
    const totalPoints = Math.max(1, Math.floor((s.minutes * 60) / s.sampleS))
    let nextSample = t0 + s.sampleS * 1000
    let sentAtSample = seq
    let enqueueFailure: unknown
    const firstSeq = seq
    while (points.length < totalPoints) {
      const want = Math.floor((rate * (performance.now() - t0)) / 1000) - (seq - firstSeq)
      if (want > 0) {
        const at = Date.now()
        await enqueue(
          db,
          Array.from({length: want}, () => ({kind: 'soak', payload: {at, seq: seq++}})),
        ).catch((error: unknown) => void (enqueueFailure ??= error))
      }

      if (enqueueFailure) throw enqueueFailure
      if (performance.now() >= nextSample) {
        const point = await samplePoint(db, workers, seen, (performance.now() - t0) / 60_000, s.sampleS, seq - sentAtSample)
        sentAtSample = seq
        points.push(point)
        progress(
          `(k) ${point.minute.toFixed(1)} min: ${point.tasks_per_s} tasks/s, dispatch p99 ${point.dispatch_p99_ms} ms, ${point.queued} queued, tasks ${mb(point.tasks_table_bytes + point.tasks_index_bytes)} MB, task_events ${mb(point.task_events_table_bytes + point.task_events_index_bytes)} MB, RSS ${point.rss_mb.join('/')} MB`,
        )
        nextSample += s.sampleS * 1000
      }

      await sleep(50)
    }

    // What is still queued finishes; then every task must have run exactly once.
    await waitUntil(async () => (await live(db)) === 0, 120_000, 100).catch(() => progress('(k) the queue did not drain within 120 s after arrivals stopped'))
    for (const w of workers) seen.add((await w.sample()).seqs)
    const {lost, duplicated} = seen.check(seq)
    for (const w of workers) w.child.send('stop')
    monitor.kill('SIGTERM')
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((resolve) => c.once('exit', resolve)) : undefined)))

    const result: SoakResult = {
      settings: {
        minutes: s.minutes,
        sampleS: s.sampleS,
        workers: s.workers,
        concurrency: s.concurrency,
        retention: s.retention,
        calibrateS: s.calibrateS,
        rate: s.rate,
      },
      drain_rate_per_s: Math.round(drainRate),
      arrival_rate_per_s: rate,
      points,
      enqueued: seq,
      handled: seq - lost + duplicated,
      lost,
      duplicated,
      goals: goals(points, lost, duplicated),
      charts: [],
    }
    fs.mkdirSync(s.out, {recursive: true})
    result.charts = (await writeCharts(charts(points, s.retention), s.out)).map((f) => path.relative(ROOT, f))
    fs.writeFileSync(path.join(s.out, 'soak.json'), `${JSON.stringify(result, null, 2)}\n`)
    progress(`(k) wrote ${path.relative(ROOT, path.join(s.out, 'soak.json'))} and ${result.charts.join(', ')}`)
    return result
  } finally {
    killAll()
    process.removeListener('exit', killAll)
    await db.destroy()
  }
}

const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10

async function live(db: ReturnType<typeof kysely>): Promise<number> {
  const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where status in ('queued', 'running')`.execute(db)
  return rows[0].n
}

async function samplePoint(
  db: ReturnType<typeof kysely>,
  workers: SoakWorker[],
  seen: Seen,
  minute: number,
  sampleS: number,
  enqueued: number,
): Promise<SoakPoint> {
  const samples = await Promise.all(workers.map((w) => w.sample()))
  const histogram = new Histogram()
  for (const x of samples) {
    histogram.merge(Histogram.fromJSON(x.histogram))
    seen.add(x.seqs)
  }

  const tables = await tableStats(db)
  const table = (name: string) => tables.find((t) => t.table === name)!
  const round1 = (n: number) => Math.round(n * 10) / 10
  return {
    minute: round1(minute),
    enqueued,
    tasks_per_s: Math.round(histogram.total / sampleS),
    dispatch_p50_ms: round1(histogram.percentile(50)),
    dispatch_p99_ms: round1(histogram.percentile(99)),
    queued: await live(db),
    tasks_table_bytes: table('tasks').tableBytes,
    tasks_index_bytes: table('tasks').indexBytes,
    task_events_table_bytes: table('task_events').tableBytes,
    task_events_index_bytes: table('task_events').indexBytes,
    rss_mb: samples.map((x) => mb(x.rss)),
    rss_max_mb: samples.map((x) => mb(x.rssMax)),
  }
}

/** Issue 27's goals for the soak, each with the figures it was judged on. */
function goals(points: SoakPoint[], lost: number, duplicated: number): SoakResult['goals'] {
  const out: SoakResult['goals'] = {}
  if (points.length === 0) return out
  const first = points[0].dispatch_p99_ms
  const worst = Math.max(...points.map((p) => p.dispatch_p99_ms))
  out.p99_within_2x_of_first = {met: worst <= 2 * first, detail: `first ${first} ms, worst ${worst} ms`}
  // Sizes level off: the second half of the run grows them by less than 10%.
  const size = (p: SoakPoint) => p.tasks_table_bytes + p.tasks_index_bytes + p.task_events_table_bytes + p.task_events_index_bytes
  const mid = points[Math.floor((points.length - 1) / 2)]
  const last = points.at(-1)!
  out.table_sizes_level_off = {
    met: size(last) <= 1.1 * size(mid),
    detail: `${mb(size(mid))} MB at ${mid.minute} min, ${mb(size(last))} MB at ${last.minute} min`,
  }
  // RSS: within 10% of each worker's size after the first 5 minutes (or the first point of a shorter run).
  const base = points.find((p) => p.minute >= 5) ?? points[0]
  const drift = base.rss_mb.map((rss, i) => Math.max(...points.filter((p) => p.minute >= base.minute).map((p) => Math.abs(p.rss_mb[i] - rss) / rss)))
  out.rss_within_10_percent = {
    met: drift.every((d) => d <= 0.1),
    detail: `largest drift per worker from ${base.minute} min: ${drift.map((d) => `${Math.round(d * 100)}%`).join(', ')}`,
  }
  out.none_lost_or_duplicated = {met: lost === 0 && duplicated === 0, detail: `${lost} lost, ${duplicated} duplicated`}
  return out
}

function charts(points: SoakPoint[], retention: string): Chart[] {
  const series = (name: string, get: (p: SoakPoint) => number) => ({name, points: points.map((p): [number, number] => [p.minute, get(p)])})
  return [
    {name: 'soak-throughput', title: 'Soak: throughput', x: 'minutes', y: 'tasks/s', series: [series('tasks started per second', (p) => p.tasks_per_s)]},
    {
      name: 'soak-dispatch',
      title: 'Soak: dispatch time (enqueue to handler start)',
      x: 'minutes',
      y: 'ms',
      series: [series('p99', (p) => p.dispatch_p99_ms), series('p50', (p) => p.dispatch_p50_ms)],
    },
    {
      name: 'soak-table-sizes',
      title: `Soak: table and index sizes (retention ${retention})`,
      x: 'minutes',
      y: 'MB',
      series: [
        series('tasks (table)', (p) => mb(p.tasks_table_bytes)),
        series('tasks (indexes)', (p) => mb(p.tasks_index_bytes)),
        series('task_events (table)', (p) => mb(p.task_events_table_bytes)),
        series('task_events (indexes)', (p) => mb(p.task_events_index_bytes)),
      ],
    },
    {
      name: 'soak-rss',
      title: 'Soak: worker RSS',
      x: 'minutes',
      y: 'MB',
      series: (points[0]?.rss_mb ?? []).map((_, i) => series(`worker ${i + 1}`, (p) => p.rss_mb[i])),
    },
  ]
}

/** The soak as text lines for the bench's report. */
export function printSoak(r: SoakResult): string[] {
  const out = [
    `(k) soak: ${r.arrival_rate_per_s} tasks/s arriving (${r.settings.rate === undefined ? '60% of' : 'set by --rate; drain rate'} the measured ${r.drain_rate_per_s}) through ${r.settings.workers} worker processes for ${r.settings.minutes} min, retention ${r.settings.retention}:`,
    '  minute  tasks/s  p50 ms  p99 ms  queued  tasks MB  task_events MB  RSS MB',
  ]
  for (const p of r.points) {
    out.push(
      `  ${p.minute.toFixed(1).padStart(6)}  ${String(p.tasks_per_s).padStart(7)}  ${String(p.dispatch_p50_ms).padStart(6)}  ${String(p.dispatch_p99_ms).padStart(6)}  ${String(p.queued).padStart(6)}  ${String(mb(p.tasks_table_bytes + p.tasks_index_bytes)).padStart(8)}  ${String(mb(p.task_events_table_bytes + p.task_events_index_bytes)).padStart(14)}  ${p.rss_mb.join('/')}`,
    )
  }

  out.push(`  ${r.enqueued} enqueued, ${r.handled} handled, ${r.lost} lost, ${r.duplicated} duplicated`)
  if (r.settings.sampleS !== 60 || r.settings.minutes < 30)
    out.push(`  (points every ${r.settings.sampleS} s over ${r.settings.minutes} min: a smoke run; the goals are for 30 minutes, per minute)`)
  for (const [goal, g] of Object.entries(r.goals)) out.push(`  ${g.met ? 'met    ' : 'NOT met'} ${goal}: ${g.detail}`)
  out.push(`  charts: ${r.charts.join(', ')}`)
  return out
}
