/**
 * Speed and spend against a provider's quota (issue 14), measured the way a
 * user with a key runs rvx: real `rvx` processes against a quota-enforcing,
 * billing OpenAI-compatible server on 127.0.0.1 (bench/quota-server.ts) whose
 * model researches companies with sites on 127.0.0.1 (bench/quota-world.ts).
 *
 * Per rate-limit variant (a, b, c; see VARIANTS): a fresh database, two
 * `rvx worker all` at their default concurrency, then `rvx orchestrate
 * --detach` of a quantity-Q run, and the same run again right after (cache,
 * suppression). Per run: the request rate over the steady state vs the quota,
 * the share of 429s, what 429s cost in attempts and snoozes, tasks failed,
 * wall time, recorded cost (llm_calls) vs what the server billed. The
 * variants run side by side (each its own server, quota, database and
 * workers; --quota-serial runs them one after another): a run waits on its
 * quota, not on the machine, and three in a row would take half an hour.
 *
 * Then parallel efficiency: a simulated quantity-Q run (RVX_SIM_SUPPLY=400,
 * --sim-latency 500ms-2000ms) at several --concurrency values, driven by
 * `rvx orchestrate` itself (three in-process stage workers of `concurrency`
 * slots each), once as a user starts (the simulated model's quota unknown, so
 * pacing slow-starts from 60 calls a minute) and once with RVX_LLM_RPM far
 * above what the run sends. Definitions: see EFFICIENCY_DEFINITION and printQuota.
 *
 * Raw data for reading a run afterwards go to the log directory: every request
 * the server saw, every llm_calls row, the fleet's pacing state and the
 * server's window every second (quota-<variant>-<first|again>.json), and every
 * task interval of the efficiency runs (efficiency-<c>[-rpm].json).
 */
import {type ChildProcess, spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {type Kysely, sql} from 'kysely'

import type {Database} from '../src/db/schema.js'
import {cancelRun} from '../src/pipeline/runs.js'
import {sleep} from '../src/runtime/index.js'
import {BIN, kysely, ROOT, waitUntil} from './common.js'
import {BILLED_PRICES, type QuotaVariant, QuotaServer, type ServedCall, VARIANTS} from './quota-server.js'
import {CRITERIA, LocalWeb, makeWorld, scriptedModel} from './quota-world.js'

export interface QuotaSettings {
  quantity: number
  variants: QuotaVariant[]
  rpm: number
  tpm: number
  /** Answer time of an admitted call. */
  latencyMs: [number, number]
  /** A run not over by then is canceled and reported as such. */
  runCapMs: number
  /** Simulated runs for parallel efficiency; none when empty. */
  efficiency: {quantity: number; concurrencies: number[]; supply: number; simLatency: string; rpmCeilings: Array<number | null>}
  /** Steady state: the run's request span less this share at each end. */
  trim: number
  /** The variants one after another; by default side by side (a quota run waits on its quota, not on the machine). */
  serial: boolean
  /** Where the rvx processes' logs go. */
  logDir: string
  /** RVX_HOME of the rvx processes (they use DATABASE_URL, but must not touch a real home). */
  home: string
}

export function quotaSettings(quick: boolean, only: string[] | undefined, serial: boolean, logDir: string, home: string): QuotaSettings {
  const parts = only ?? ['a', 'b', 'c', 'efficiency']
  return {
    quantity: quick ? 20 : 100,
    variants: (['a', 'b', 'c'] as const).filter((v) => parts.includes(v)),
    rpm: 300,
    tpm: 200_000,
    latencyMs: [300, 800],
    runCapMs: (quick ? 10 : 30) * 60_000,
    efficiency: {
      quantity: quick ? 30 : 100,
      concurrencies: parts.includes('efficiency') ? [4, 16, 64] : [],
      supply: 400,
      simLatency: '500ms-2000ms',
      // As a user starts (the simulated model's quota unknown), and with RVX_LLM_RPM far above what the run sends (pacing out of the way).
      rpmCeilings: [null, 100_000],
    },
    trim: 0.15,
    serial,
    logDir,
    home,
  }
}

// ---------------------------------------------------------------- processes

/** The environment of every rvx process here: nothing from ours that could point it at a real database, key, model or quota. */
function rvxEnv(s: QuotaSettings, extra: Record<string, string>): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'LANG', 'TZ', 'TMPDIR']
  return {...Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]])), NO_COLOR: '1', RVX_HOME: s.home, ...extra}
}

interface Proc {
  child: ChildProcess
  exited: Promise<number | null>
  stdout: () => string
}

function startRvx(args: string[], env: NodeJS.ProcessEnv, log: string): Proc {
  const out = fs.openSync(log, 'w')
  const child = spawn(process.execPath, [BIN, ...args], {cwd: ROOT, env, stdio: ['ignore', 'pipe', out]})
  let stdout = ''
  child.stdout!.on('data', (d) => {
    stdout += d
    fs.writeSync(out, d)
  })
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => (fs.closeSync(out), resolve(code))))
  return {child, exited, stdout: () => stdout}
}

/** Waits for a process to exit; kills it after `ms`. */
async function exitWithin(p: Proc, ms: number): Promise<number | null> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), ms)
  try {
    return await p.exited
  } finally {
    clearTimeout(timer)
  }
}

/** SIGTERM (in-flight tasks get their 30 s), then SIGKILL. */
async function stopRvx(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return
  p.child.kill('SIGTERM')
  await exitWithin(p, 40_000)
}

// ---------------------------------------------------------------- figures

export interface RunFigures {
  runId: number
  status: string
  notes: string | null
  /** Run created to run finished (database clock); null when it did not finish within the cap. */
  wall_s: number | null
  /** Machine load (1-minute average) when the run started and ended. */
  load: [number, number]
  requests: {total: number; ok: number; rate_limited: number; other: number; rate_limited_pct: number; by_limit: {requests: number; tokens: number}}
  /** The run's requests from first to last, less `trim` of that span at each end. */
  steady: Rates & {from_s: number; to_s: number; rate_limited_pct: number}
  /** From the first request to the last. */
  whole: Rates
  /** Admitted requests per 10 s, from the run's first request. */
  ok_per_10s: number[]
  billed: {calls: number; usd: number; input_tokens: number; cached_tokens: number; output_tokens: number; abandoned: number; abandoned_usd: number}
  /** Turns of a conversation the server had already answered in this run (the whole agent call started again): paid twice. */
  paid_again: {calls: number; usd: number}
  recorded: {calls: number; ok: number; rate_limited: number; error: number; malformed: number; usd: number; input_tokens: number; output_tokens: number}
  /** Recorded $ / billed $. */
  recorded_vs_billed: number
  tasks: {total: number; failed: number; quarantined: number; completed: number; canceled: number; attempts: number}
  /** Task events: snoozes (no attempt used) and attempts that ended in a rate limit (retry_scheduled or failed with a 429 reason). */
  rate_limit_events: {snoozed: number; attempts_used: number; tasks_snoozed: number; max_snoozes_of_a_task: number}
  delivered: string[]
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits
const pct = (part: number, whole: number) => (whole > 0 ? round((100 * part) / whole, 1) : 0)

interface Rates {
  ok_per_min: number
  pct_of_rpm: number
  tokens_per_min: number
  pct_of_tpm: number
  /** The limit the run came closer to: with rvx's prompts (about 1,500 tokens a call) 200,000 tokens run out before 300 requests do. */
  binding: 'requests' | 'tokens'
  /** Share of the binding limit used: the larger of the two shares. */
  pct_of_binding: number
}

function rates(calls: ServedCall[], from: number, to: number, s: QuotaSettings): Rates & {rate_limited_pct: number} {
  const inside = calls.filter((c) => c.at >= from && c.at <= to)
  const ok = inside.filter((c) => c.status === 200)
  const minutes = Math.max(1, to - from) / 60_000
  const tokens = ok.reduce((sum, c) => sum + c.inputTokens + c.outputTokens, 0)
  const ofRpm = pct(ok.length / minutes, s.rpm)
  const ofTpm = pct(tokens / minutes, s.tpm)
  return {
    ok_per_min: round(ok.length / minutes),
    pct_of_rpm: ofRpm,
    tokens_per_min: Math.round(tokens / minutes),
    pct_of_tpm: ofTpm,
    binding: ofTpm > ofRpm ? 'tokens' : 'requests',
    pct_of_binding: Math.max(ofRpm, ofTpm),
    rate_limited_pct: pct(inside.filter((c) => c.status === 429).length, inside.length),
  }
}

async function runFigures(db: Kysely<Database>, runId: number, calls: ServedCall[], load: [number, number], s: QuotaSettings): Promise<RunFigures> {
  const run = await db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow()
  const scope = `run:${runId}`
  const first = calls[0]?.at ?? 0
  const last = calls.at(-1)?.at ?? 0
  const span = last - first
  const from = first + span * s.trim
  const to = last - span * s.trim
  const ok = calls.filter((c) => c.status === 200)
  const limited = calls.filter((c) => c.status === 429)
  const buckets: number[] = []
  for (const c of ok) {
    const i = Math.floor((c.at - first) / 10_000)
    while (buckets.length <= i) buckets.push(0)
    buckets[i]++
  }

  const recorded = (
    await sql<{outcome: string; n: number; usd: string; input: number; output: number}>`
      select outcome, count(*)::int as n, coalesce(sum(cost_usd), 0)::text as usd,
             coalesce(sum(input_tokens), 0)::int as input, coalesce(sum(output_tokens), 0)::int as output
      from llm_calls where run_id = ${runId} group by outcome`.execute(db)
  ).rows
  const byOutcome = (o: string) => recorded.find((r) => r.outcome === o)?.n ?? 0
  const recordedUsd = recorded.reduce((sum, r) => sum + Number(r.usd), 0)
  const billedUsd = ok.reduce((sum, c) => sum + c.costUsd, 0)

  const tasks = (
    await sql<{status: string; n: number; attempts: number}>`
      select status, count(*)::int as n, coalesce(sum(attempts), 0)::int as attempts from tasks where scope = ${scope} group by status`.execute(db)
  ).rows
  const byStatus = (st: string) => tasks.find((t) => t.status === st)?.n ?? 0
  const events = (
    await sql<{snoozed: number; attempts_used: number; tasks_snoozed: number; max_snoozes: number}>`
      select count(*) filter (where e.event = 'snoozed')::int as snoozed,
             count(*) filter (where e.event in ('retry_scheduled', 'failed') and (e.reason ilike '%rate limit%' or e.reason like '%429%'))::int as attempts_used,
             count(distinct e.task_id) filter (where e.event = 'snoozed')::int as tasks_snoozed,
             (select coalesce(max(snoozes), 0) from tasks where scope = ${scope})::int as max_snoozes
      from task_events e join tasks t on t.id = e.task_id where t.scope = ${scope}`.execute(db)
  ).rows[0]
  const delivered = (
    await db.selectFrom('companies').select('domain').where('run_id', '=', runId).where('status', '=', 'selected').orderBy('domain').execute()
  ).map((c) => c.domain)

  const wall = run.finished_at
    ? (run.finished_at.getTime() - run.created_at.getTime()) / 1000
    : run.status === 'running'
      ? null
      : (run.updated_at.getTime() - run.created_at.getTime()) / 1000
  const again = ok.filter((c) => c.repeat)
  const abandoned = ok.filter((c) => c.abandoned)
  return {
    runId,
    status: run.status,
    notes: run.notes,
    wall_s: wall === null ? null : round(wall),
    load,
    requests: {
      total: calls.length,
      ok: ok.length,
      rate_limited: limited.length,
      other: calls.length - ok.length - limited.length,
      rate_limited_pct: pct(limited.length, calls.length),
      by_limit: {requests: limited.filter((c) => c.limitedBy === 'requests').length, tokens: limited.filter((c) => c.limitedBy === 'tokens').length},
    },
    steady: {from_s: round((from - first) / 1000), to_s: round((to - first) / 1000), ...rates(calls, from, to, s)},
    whole: (({rate_limited_pct: _, ...r}) => r)(rates(calls, first, last, s)),
    ok_per_10s: buckets,
    billed: {
      calls: ok.length,
      usd: round(billedUsd, 4),
      input_tokens: ok.reduce((sum, c) => sum + c.inputTokens, 0),
      cached_tokens: ok.reduce((sum, c) => sum + c.cachedTokens, 0),
      output_tokens: ok.reduce((sum, c) => sum + c.outputTokens, 0),
      abandoned: abandoned.length,
      abandoned_usd: round(
        abandoned.reduce((sum, c) => sum + c.costUsd, 0),
        4,
      ),
    },
    paid_again: {
      calls: again.length,
      usd: round(
        again.reduce((sum, c) => sum + c.costUsd, 0),
        4,
      ),
    },
    recorded: {
      calls: recorded.reduce((sum, r) => sum + r.n, 0),
      ok: byOutcome('ok'),
      rate_limited: byOutcome('rate_limited'),
      error: byOutcome('error'),
      malformed: byOutcome('malformed'),
      usd: round(recordedUsd, 4),
      input_tokens: recorded.reduce((sum, r) => sum + r.input, 0),
      output_tokens: recorded.reduce((sum, r) => sum + r.output, 0),
    },
    recorded_vs_billed: billedUsd > 0 ? round(recordedUsd / billedUsd, 3) : 0,
    tasks: {
      total: tasks.reduce((sum, t) => sum + t.n, 0),
      failed: byStatus('failed'),
      quarantined: byStatus('quarantined'),
      completed: byStatus('completed'),
      canceled: byStatus('canceled'),
      attempts: tasks.reduce((sum, t) => sum + t.attempts, 0),
    },
    rate_limit_events: {
      snoozed: events.snoozed,
      attempts_used: events.attempts_used,
      tasks_snoozed: events.tasks_snoozed,
      max_snoozes_of_a_task: events.max_snoozes,
    },
    delivered,
  }
}

// ---------------------------------------------------------------- (g) the quota runs

export interface VariantResult {
  variant: QuotaVariant
  description: string
  /** Concurrency of each `rvx worker all` (its default here). */
  worker_concurrency: number[]
  first: RunFigures
  /** The same run again right after, with --include-delivered: judged from the cache. */
  again: RunFigures
  /** The same criteria again by default (a quarter of the quantity): earlier deliveries kept out. */
  fresh: RunFigures
  /** The second run's billed $ / the first's (the cache makes it small). */
  again_cost_pct: number
  /** Domains the default repeat delivered that the first delivered too (suppression makes it 0). */
  fresh_delivered_repeats: number
}

async function quotaVariant(url: string, variant: QuotaVariant, s: QuotaSettings, progress: (m: string) => void): Promise<VariantResult> {
  const world = makeWorld(600)
  const web = await new LocalWeb(world).start()
  const server = await new QuotaServer({variant, rpm: s.rpm, tpm: s.tpm, latencyMs: s.latencyMs, model: scriptedModel(world, web)}).start()
  const db = kysely(url)
  const env = rvxEnv(s, {
    DATABASE_URL: url,
    OPENAI_API_KEY: 'sk-bench-not-a-key',
    OPENAI_BASE_URL: server.url,
    OPENAI_MODEL: BILLED_PRICES.model,
    RVX_DNS_SERVER: web.dnsAddress,
    RVX_ALLOW_PRIVATE_FETCH: '1',
  })
  const workers = [1, 2].map((n) => startRvx(['worker', 'all', '--id', `quota-${variant}-${n}`], env, path.join(s.logDir, `quota-${variant}-worker-${n}.log`)))
  try {
    await waitUntil(async () => {
      if (workers.some((w) => w.child.exitCode !== null)) throw new Error(`an rvx worker exited at start: see ${s.logDir}`)
      const rows = await db.selectFrom('workers').select('status').where('id', 'like', `quota-${variant}-%`).execute()
      return rows.length === 2 && rows.every((r) => r.status === 'idle')
    }, 120_000)
    const concurrency = (await db.selectFrom('workers').select('concurrency').where('id', 'like', `quota-${variant}-%`).orderBy('id').execute()).map(
      (w) => w.concurrency,
    )

    const runs: RunFigures[] = []
    const plan = [
      {which: 'first', quantity: s.quantity, flags: [] as string[]},
      {which: 'again', quantity: s.quantity, flags: ['--include-delivered']},
      {which: 'fresh', quantity: Math.max(5, Math.round(s.quantity / 4)), flags: [] as string[]},
    ]
    for (const {which, quantity, flags} of plan) {
      server.resetConversations()
      const before = server.calls.length
      const load0 = os.loadavg()[0]
      const orchestrate = startRvx(
        ['orchestrate', '--criteria', JSON.stringify(CRITERIA), '--quantity', String(quantity), ...flags, '--detach', '--json'],
        env,
        path.join(s.logDir, `quota-${variant}-orchestrate-${which}.log`),
      )
      const code = await exitWithin(orchestrate, 120_000)
      if (code !== 0) throw new Error(`rvx orchestrate --detach exited ${code}: see ${s.logDir}`)
      const runId = (JSON.parse(orchestrate.stdout()) as {runId: number}).runId
      progress(
        `(g) variant ${variant}, ${which} run ${runId}: quantity ${quantity}${flags.length ? ` ${flags.join(' ')}` : ''}, two rvx workers (concurrency ${concurrency.join(', ')})`,
      )
      const deadline = Date.now() + s.runCapMs
      let status = 'running'
      let lastNote = 0
      // For reading a run afterwards: the fleet's pacing state and the server's window, every second.
      const timeline: unknown[] = []
      while (status === 'running' && Date.now() < deadline) {
        await sleep(1000)
        status = (await db.selectFrom('runs').select('status').where('id', '=', runId).executeTakeFirstOrThrow()).status
        const pacing = await db
          .selectFrom('rate_limits')
          .select(['rate_rpm', 'rate_tpm', 'limit_rpm', 'limit_tpm', 'requests', 'tokens', 'saw_limit'])
          .execute()
        timeline.push({at: Date.now(), window: server.windowNow(), inFlight: server.inFlight, pacing})
        if (Date.now() - lastNote > 30_000) {
          lastNote = Date.now()
          const mine = server.calls.slice(before)
          progress(
            `    variant ${variant}, run ${runId}: ${mine.filter((c) => c.status === 200).length} calls answered, ${mine.filter((c) => c.status === 429).length} answered 429`,
          )
        }
      }

      if (status === 'running') {
        progress(`    variant ${variant}: run ${runId} not over after ${s.runCapMs / 60_000} min: canceled`)
        await cancelRun(db, runId)
      }

      // Calls still in flight (fenced out, canceled) are billed too: wait until the server is quiet.
      await waitUntil(async () => server.inFlight === 0 && Date.now() - (server.calls.at(-1)?.at ?? 0) > 2000, 90_000, 200).catch(() =>
        progress(`    variant ${variant}: the server was not quiet within 90 s`),
      )
      const figures = await runFigures(db, runId, server.calls.slice(before), [load0, os.loadavg()[0]], s)
      const recordedCalls = await db
        .selectFrom('llm_calls')
        .select(['task_id', 'outcome', 'latency_ms', 'waited_ms', 'input_tokens', 'output_tokens', 'cost_usd', 'created_at'])
        .where('run_id', '=', runId)
        .orderBy('id')
        .execute()
      fs.writeFileSync(
        path.join(s.logDir, `quota-${variant}-${which}.json`),
        JSON.stringify({figures, served: server.calls.slice(before), recorded: recordedCalls, timeline}),
      )
      progress(
        `    variant ${variant}, run ${runId}: ${figures.status} in ${figures.wall_s} s; steady ${figures.steady.ok_per_min}/min (${figures.steady.pct_of_rpm}% of RPM, ${figures.steady.pct_of_tpm}% of TPM); ` +
          `${figures.requests.rate_limited_pct}% 429; billed $${figures.billed.usd}, recorded $${figures.recorded.usd}`,
      )
      runs.push(figures)
    }

    const [first, again, fresh] = runs
    const firstSet = new Set(first.delivered)
    return {
      variant,
      description: VARIANTS[variant],
      worker_concurrency: concurrency,
      first,
      again,
      fresh,
      again_cost_pct: pct(again.billed.usd, first.billed.usd),
      fresh_delivered_repeats: fresh.delivered.filter((d) => firstSet.has(d)).length,
    }
  } finally {
    await Promise.all(workers.map(stopRvx))
    await db.destroy()
    await server.stop()
    await web.stop()
  }
}

// ---------------------------------------------------------------- (h) parallel efficiency

export const EFFICIENCY_DEFINITION = [
  'model time M = sum of llm_calls.latency_ms of the run (the simulated latency of every model call);',
  'wall W = runs.created_at to runs.finished_at; c = --concurrency (slots of each of the 3 stage workers orchestrate runs in-process);',
  "E = M / (W x c): issue 14's figure (one stage worker's slots; above 100% only when stages overlap);",
  'E3 = M / (W x c x S), S = stage workers in use = stage workers that ran at least one task of the run (3 here);',
  'busy-stage time B = sum over stages of the time at least one task of that stage was running (task_events: claimed to the next event of the task);',
  'E_busy = M / (c x B): how full the slots of the stages that were working were.',
]

export interface EfficiencyResult {
  concurrency: number
  /** RVX_LLM_RPM of the run: null as a user starts (no limit known: pacing slow-starts from 60 a minute), else the ceiling it starts at. */
  rpm_ceiling: number | null
  runId: number
  status: string
  wall_s: number
  model_s: number
  calls: number
  /** Time calls waited in place for their share of the quota (llm_calls.waited_ms), and task snoozes for it. */
  quota_wait_s: number
  snoozed: number
  stages_used: number
  /** Seconds each stage had at least one task running. */
  busy_s: Record<string, number>
  /** Average number of stages with a task running (B / W). */
  avg_stages_busy: number
  efficiency_pct: number
  efficiency_per_stage_pct: number
  efficiency_busy_pct: number
  load: [number, number]
}

async function efficiencyRun(
  url: string,
  concurrency: number,
  rpmCeiling: number | null,
  s: QuotaSettings,
  progress: (m: string) => void,
): Promise<EfficiencyResult> {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-bench-eff-'))
  const db = kysely(url)
  try {
    const load0 = os.loadavg()[0]
    const e = s.efficiency
    const orchestrate = startRvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        JSON.stringify(CRITERIA),
        '--quantity',
        String(e.quantity),
        '--concurrency',
        String(concurrency),
        '--sim-latency',
        e.simLatency,
        '--output-dir',
        out,
        '--json',
      ],
      rvxEnv(s, {DATABASE_URL: url, RVX_SIM_SUPPLY: String(e.supply), ...(rpmCeiling ? {RVX_LLM_RPM: String(rpmCeiling)} : {})}),
      path.join(s.logDir, `efficiency-${concurrency}${rpmCeiling ? '-rpm' : ''}.log`),
    )
    const code = await exitWithin(orchestrate, s.runCapMs)
    if (code === null) throw new Error(`rvx orchestrate (simulated, concurrency ${concurrency}) did not end within ${s.runCapMs / 60_000} min`)
    const runId = (JSON.parse(orchestrate.stdout()) as {runId: number}).runId
    const run = await db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow()
    const model = (
      await sql<{ms: string; n: number; waited: string; snoozed: number}>`
        select coalesce(sum(latency_ms), 0)::text as ms, count(*)::int as n, coalesce(sum(waited_ms), 0)::text as waited,
               (select count(*) from task_events e join tasks t on t.id = e.task_id where t.scope = ${`run:${runId}`} and e.event = 'snoozed')::int as snoozed
        from llm_calls where run_id = ${runId}`.execute(db)
    ).rows[0]
    const intervals = (
      await sql<{kind: string; from_ms: string; to_ms: string}>`
        with ev as (
          select t.kind, e.event, extract(epoch from e.at) * 1000 as at_ms,
                 lead(extract(epoch from e.at) * 1000) over (partition by e.task_id order by e.at, e.id) as next_ms
          from task_events e join tasks t on t.id = e.task_id where t.scope = ${`run:${runId}`}
        )
        select kind, at_ms::text as from_ms, next_ms::text as to_ms from ev where event = 'claimed' and next_ms is not null order by kind, at_ms`.execute(db)
    ).rows
    const busy: Record<string, number> = {}
    for (const kind of new Set(intervals.map((i) => i.kind))) {
      let total = 0
      let end = -Infinity
      for (const i of intervals.filter((x) => x.kind === kind)) {
        const [a, b] = [Number(i.from_ms), Number(i.to_ms)]
        if (b <= end) continue
        total += b - Math.max(a, end)
        end = b
      }

      busy[kind] = round(total / 1000)
    }

    const wallMs = (run.finished_at ?? run.updated_at).getTime() - run.created_at.getTime()
    // For reading a run afterwards: every task's claimed-to-next-event interval and every model call.
    const calls = await db.selectFrom('llm_calls').select(['task_id', 'latency_ms', 'created_at']).where('run_id', '=', runId).orderBy('id').execute()
    fs.writeFileSync(
      path.join(s.logDir, `efficiency-${concurrency}${rpmCeiling ? '-rpm' : ''}.json`),
      JSON.stringify({createdAt: run.created_at, finishedAt: run.finished_at, intervals, calls}),
    )
    const modelMs = Number(model.ms)
    const busyMs = Object.values(busy).reduce((sum, b) => sum + b * 1000, 0)
    const stages = Object.keys(busy).length
    const result: EfficiencyResult = {
      concurrency,
      rpm_ceiling: rpmCeiling,
      runId,
      status: run.status,
      wall_s: round(wallMs / 1000),
      model_s: round(modelMs / 1000),
      calls: model.n,
      quota_wait_s: round(Number(model.waited) / 1000),
      snoozed: model.snoozed,
      stages_used: stages,
      busy_s: busy,
      avg_stages_busy: round(busyMs / wallMs, 2),
      efficiency_pct: pct(modelMs, wallMs * concurrency),
      efficiency_per_stage_pct: pct(modelMs, wallMs * concurrency * stages),
      efficiency_busy_pct: pct(modelMs, busyMs * concurrency),
      load: [load0, os.loadavg()[0]],
    }
    progress(
      `(h) concurrency ${concurrency}${rpmCeiling ? `, RVX_LLM_RPM=${rpmCeiling}` : ''}: ${result.status} in ${result.wall_s} s, model time ${result.model_s} s over ${result.calls} calls; E ${result.efficiency_pct}%, E3 ${result.efficiency_per_stage_pct}%, E_busy ${result.efficiency_busy_pct}%`,
    )
    return result
  } finally {
    await db.destroy()
    fs.rmSync(out, {recursive: true, force: true})
  }
}

// ---------------------------------------------------------------- the part

export interface QuotaResult {
  settings: Omit<QuotaSettings, 'logDir' | 'home'> & {billed_prices: typeof BILLED_PRICES; world: number}
  variants: VariantResult[]
  efficiency: EfficiencyResult[]
}

/** Runs the quota part; `fresh(name)` gives a migrated, empty database. */
export async function quotaBench(fresh: (name: string) => Promise<string>, s: QuotaSettings, progress: (m: string) => void): Promise<QuotaResult> {
  fs.mkdirSync(s.logDir, {recursive: true})
  fs.mkdirSync(s.home, {recursive: true})
  // The databases first, one at a time (`fresh` shares one admin session).
  const urls = new Map<QuotaVariant, string>()
  for (const v of s.variants) urls.set(v, await fresh(`b_quota_${v}`))
  const variant = async (v: QuotaVariant) => {
    progress(`(g) variant ${v}: ${VARIANTS[v]}; ${s.rpm} requests and ${s.tpm.toLocaleString('en')} tokens per minute; logs in ${s.logDir}`)
    return quotaVariant(urls.get(v)!, v, s, progress)
  }

  // Side by side (each its own server, quota, database and workers: nothing shared but the machine), or one after another.
  const variants: VariantResult[] = []
  if (s.serial) for (const v of s.variants) variants.push(await variant(v))
  else variants.push(...(await Promise.all(s.variants.map(variant))))

  const efficiency: EfficiencyResult[] = []
  for (const c of s.efficiency.concurrencies) {
    for (const ceiling of s.efficiency.rpmCeilings) efficiency.push(await efficiencyRun(await fresh(`b_eff_${c}_${ceiling ?? 0}`), c, ceiling, s, progress))
  }

  const {logDir: _l, home: _h, ...settings} = s
  return {settings: {...settings, billed_prices: BILLED_PRICES, world: 600}, variants, efficiency}
}

const money = (n: number) => `$${n.toFixed(4)}`

/** The tables, each saying what it measured. */
export function printQuota(r: QuotaResult): string[] {
  const s = r.settings
  const out: string[] = []
  if (r.variants.length > 0) {
    out.push(
      `(g) quota: quantity-${s.quantity} runs by two rvx worker all (default concurrency) against ${s.rpm} requests / ${s.tpm.toLocaleString('en')} tokens per minute (sliding 60 s windows), answers in ${s.latencyMs[0]}-${s.latencyMs[1]} ms;`,
      `    steady state = the run's span of requests less ${s.trim * 100}% at each end; % of RPM and TPM = admitted requests and their tokens per minute there`,
    )
    for (const v of r.variants) {
      out.push(`  variant ${v.variant} (${v.description}), workers at concurrency ${v.worker_concurrency.join(' and ')}:`)
      for (const [label, f] of [
        ['first', v.first],
        ['again', v.again],
        ['fresh', v.fresh],
      ] as const) {
        out.push(
          `    ${label.padEnd(5)} run ${f.runId}: ${f.status}${f.wall_s === null ? ' (not over: canceled at the cap)' : ` in ${f.wall_s} s`}, delivered ${f.delivered.length}; load ${f.load.map((l) => l.toFixed(1)).join(' -> ')}`,
          `          steady ${f.steady.from_s}-${f.steady.to_s} s: ${f.steady.ok_per_min} calls/min = ${f.steady.pct_of_rpm}% of RPM, ${f.steady.tokens_per_min.toLocaleString('en')} tokens/min = ${f.steady.pct_of_tpm}% of TPM (quota used: ${f.steady.pct_of_binding}% of the ${f.steady.binding} limit), ${f.steady.rate_limited_pct}% answered 429`,
          `          whole run: ${f.whole.ok_per_min} calls/min (${f.whole.pct_of_rpm}% of RPM, ${f.whole.pct_of_tpm}% of TPM); requests ${f.requests.total}: ${f.requests.ok} answered, ${f.requests.rate_limited} 429 (${f.requests.rate_limited_pct}%: ${f.requests.by_limit.requests} on requests, ${f.requests.by_limit.tokens} on tokens), ${f.requests.other} other`,
          `          429s in the queue: ${f.rate_limit_events.snoozed} snoozes of ${f.rate_limit_events.tasks_snoozed} tasks (most of one task: ${f.rate_limit_events.max_snoozes_of_a_task}), ${f.rate_limit_events.attempts_used} attempts used; tasks ${f.tasks.total}: ${f.tasks.failed} failed, ${f.tasks.quarantined} quarantined, ${f.tasks.canceled} canceled`,
          `          cost: recorded ${money(f.recorded.usd)} (${f.recorded.calls} calls: ${f.recorded.ok} ok, ${f.recorded.rate_limited} rate_limited, ${f.recorded.error} error) vs billed ${money(f.billed.usd)} (${f.billed.calls} calls) = ${(f.recorded_vs_billed * 100).toFixed(1)}%; ` +
            `billed but abandoned by rvx: ${f.billed.abandoned} (${money(f.billed.abandoned_usd)}); turns paid again: ${f.paid_again.calls} (${money(f.paid_again.usd)})`,
        )
      }

      out.push(
        `    again (--include-delivered) vs first: cost ${v.again_cost_pct}% (billed), ${v.again.delivered.filter((d) => v.first.delivered.includes(d)).length} of its ${v.again.delivered.length} delivered domains judged again from the cache; ` +
          `fresh (default, quantity ${v.fresh.delivered.length}): ${v.fresh_delivered_repeats} domains the first run delivered`,
      )
    }
  }

  if (r.efficiency.length > 0) {
    out.push(
      `(h) parallel efficiency: simulated quantity-${s.efficiency.quantity} runs, RVX_SIM_SUPPLY=${s.efficiency.supply}, --sim-latency ${s.efficiency.simLatency}, rvx orchestrate (3 in-process stage workers of c slots):`,
      ...EFFICIENCY_DEFINITION.map((d) => `    ${d}`),
    )
    for (const e of r.efficiency) {
      out.push(
        `  c=${String(e.concurrency).padEnd(3)} ${(e.rpm_ceiling ? `RVX_LLM_RPM=${e.rpm_ceiling}` : 'no limit known').padEnd(18)} ${e.status} in ${e.wall_s} s, M ${e.model_s} s (${e.calls} calls; waited for quota ${e.quota_wait_s} s, ${e.snoozed} snoozes), B ${Object.entries(
          e.busy_s,
        )
          .map(([k, b]) => `${k} ${b}`)
          .join(
            ' / ',
          )} s (${e.avg_stages_busy} stages busy on average): E ${e.efficiency_pct}%, E3 ${e.efficiency_per_stage_pct}%, E_busy ${e.efficiency_busy_pct}%; load ${e.load.map((l) => l.toFixed(1)).join(' -> ')}`,
      )
    }
  }

  return out
}
