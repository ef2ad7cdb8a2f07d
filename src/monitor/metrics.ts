import http from 'node:http'
import type {AddressInfo} from 'node:net'
import {collectDefaultMetrics, Counter, Gauge, Histogram, Registry} from 'prom-client'

import {sql} from '../db/kysely.js'
import {RvxError, UsageError} from '../shared/errors.js'
import type {Executor} from '../db/executor.js'
import type {RunStatus, TaskEventKind, WorkerStatus} from '../db/schema.js'
import type {LlmUsage} from '../pipeline/provider.js'
import {CACHE_KINDS, STAGE_KINDS} from '../pipeline/stages/index.js'
import {cacheStats} from '../pipeline/cache.js'
import {llmCallsSince} from '../pipeline/usage.js'
import {heartbeatLatencies, type QueueStats, taskEventsSince, type WorkerTypeStats} from '../runtime/stats.js'
import type {ConditionKind} from './conditions.js'

const WORKER_STATUSES = ['starting', 'idle', 'busy', 'draining', 'stopped', 'dead'] as const satisfies readonly WorkerStatus[]
const TASK_STATUSES = ['queued', 'running', 'failed', 'quarantined'] as const
const RUN_STATUSES = ['running', 'needs_decision', 'completed', 'failed', 'canceled'] as const satisfies readonly RunStatus[]
const TASK_EVENTS = [
  'completed',
  'failed',
  'retry_scheduled',
  'snoozed',
  'released',
  'requeued_after_death',
  'requeued_lease_expired',
  'fenced_out',
  'quarantined',
  'retried',
  'canceled',
] as const satisfies readonly TaskEventKind[]
const LLM_OUTCOMES = ['ok', 'error', 'rate_limited', 'malformed'] as const satisfies ReadonlyArray<LlmUsage['outcome']>
const ALERT_KINDS = [
  'worker_dead',
  'worker_stalled',
  'sweep_blocked',
  'db_connections_refused',
  'task_failed',
  'task_quarantined',
  'run_stuck',
  'run_needs_decision',
  'run_failed',
  'run_completed_notice',
  'run_needs_decision_notice',
] as const satisfies readonly ConditionKind[]
const RECOVERY_REASON: Record<string, string> = {requeued_after_death: 'worker_died', requeued_lease_expired: 'lease_expired'}
// prom-client's default gauges that end in _total, which Prometheus reserves for counters (promtool check metrics
// refuses them); the same numbers by type stay (nodejs_active_handles{type}, ...).
const TOTAL_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/**
 * The monitor's Prometheus metrics. Gauges are the fleet as of the last
 * interval; counters count what happened since this monitor started, read
 * incrementally from task_events and llm_calls (each row once). Every series
 * whose labels are known up front (the stages' kinds, run statuses, the
 * models this environment's providers use) is there from the start, at 0.
 */
export class MonitorMetrics {
  readonly registry = new Registry()
  private readonly active = new Gauge({
    name: 'rvx_monitor_active',
    help: '1 when this monitor is the active one (holds the lock), 0 on standby.',
    registers: [this.registry],
  })
  private readonly workers = new Gauge({name: 'rvx_workers', help: 'Workers by type and status.', labelNames: ['type', 'status'], registers: [this.registry]})
  private readonly tasks = new Gauge({
    name: 'rvx_tasks',
    help: 'Tasks by kind and status: queue depth (queued, running) and those waiting for a person (failed, quarantined). Completions: rvx_task_events_total.',
    labelNames: ['kind', 'status'],
    registers: [this.registry],
  })
  private readonly oldest = new Gauge({
    name: 'rvx_task_oldest_queued_seconds',
    help: 'Age of the oldest runnable queued task, by kind.',
    labelNames: ['kind'],
    registers: [this.registry],
  })
  private readonly runs = new Gauge({name: 'rvx_runs', help: 'Runs by status.', labelNames: ['status'], registers: [this.registry]})
  private readonly durations = new Histogram({
    name: 'rvx_task_duration_seconds',
    help: 'Time from claim to completion of completed tasks, by kind.',
    labelNames: ['kind'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry],
  })
  private readonly events = new Counter({
    name: 'rvx_task_events_total',
    help: 'Task events (completed, failed, retry_scheduled, snoozed, released, ...) by kind.',
    labelNames: ['kind', 'event'],
    registers: [this.registry],
  })
  private readonly recoveries = new Counter({
    name: 'rvx_task_recoveries_total',
    help: 'Tasks put back after their worker died or their lease ran out.',
    labelNames: ['kind', 'reason'],
    registers: [this.registry],
  })
  private readonly fenced = new Counter({
    name: 'rvx_fenced_out_total',
    help: 'Late results refused because the lease had moved on to another worker (never applied); canceled tasks are not counted.',
    labelNames: ['kind'],
    registers: [this.registry],
  })
  private readonly heartbeatLatency = new Gauge({
    name: 'rvx_worker_heartbeat_latency_seconds',
    help: "Round trip of each live worker's last heartbeat: a slow link shows here long before a worker is taken for dead.",
    labelNames: ['worker'],
    registers: [this.registry],
  })
  private readonly tokens = new Counter({
    name: 'rvx_llm_tokens_total',
    help: 'Model tokens used, by provider, model and direction.',
    labelNames: ['provider', 'model', 'direction'],
    registers: [this.registry],
  })
  private readonly cost = new Counter({
    name: 'rvx_llm_cost_usd_total',
    help: 'Model cost in US dollars, by provider and model.',
    labelNames: ['provider', 'model'],
    registers: [this.registry],
  })
  private readonly calls = new Counter({
    name: 'rvx_llm_calls_total',
    help: 'Model calls by provider, model and outcome.',
    labelNames: ['provider', 'model', 'outcome'],
    registers: [this.registry],
  })
  private readonly quotaWait = new Counter({
    name: 'rvx_llm_quota_wait_seconds_total',
    help: "Time model calls waited for their share of the fleet's quota, by provider and model.",
    labelNames: ['provider', 'model'],
    registers: [this.registry],
  })
  private readonly cacheHits = new Gauge({
    name: 'rvx_research_cache_hits',
    help: 'Times cached research (kind research) and contacts (kind contacts) were reused instead of paid for, over the entries the cache holds.',
    labelNames: ['kind'],
    registers: [this.registry],
  })
  private readonly cacheEntries = new Gauge({
    name: 'rvx_research_cache_entries',
    help: 'Answers the research cache holds, by kind.',
    labelNames: ['kind'],
    registers: [this.registry],
  })
  private readonly alerts = new Counter({
    name: 'rvx_alerts_total',
    help: 'Alerts opened by this monitor, by kind.',
    labelNames: ['kind'],
    registers: [this.registry],
  })
  private readonly swept = new Counter({name: 'rvx_dead_workers_total', help: 'Workers this monitor found dead.', registers: [this.registry]})
  private readonly eventTail = new Tail()
  private readonly callTail = new Tail()

  constructor(options: {models?: Array<{provider: string; model: string}>} = {}) {
    collectDefaultMetrics({register: this.registry, prefix: 'rvx_monitor_'})
    for (const name of TOTAL_GAUGES) this.registry.removeSingleMetric(`rvx_monitor_${name}`)
    this.setActive(false)
    for (const status of RUN_STATUSES) this.runs.set({status}, 0)
    for (const kind of STAGE_KINDS) {
      for (const event of TASK_EVENTS) this.events.inc({kind, event}, 0)
      for (const reason of Object.values(RECOVERY_REASON)) this.recoveries.inc({kind, reason}, 0)
      this.fenced.inc({kind}, 0)
      this.durations.zero({kind})
    }

    for (const {provider, model} of options.models ?? []) {
      for (const direction of ['input', 'output']) this.tokens.inc({provider, model, direction}, 0)
      this.cost.inc({provider, model}, 0)
      this.quotaWait.inc({provider, model}, 0)
      for (const outcome of LLM_OUTCOMES) this.calls.inc({provider, model, outcome}, 0)
    }

    for (const kind of ALERT_KINDS) this.alerts.inc({kind}, 0)
    for (const kind of CACHE_KINDS) {
      this.cacheHits.set({kind}, 0)
      this.cacheEntries.set({kind}, 0)
    }

    this.swept.inc(0)
  }

  setActive(active: boolean): void {
    this.active.set(active ? 1 : 0)
  }

  setFleet(workers: WorkerTypeStats[], queue: QueueStats[], runs: Record<string, number>): void {
    this.workers.reset()
    for (const w of workers) for (const s of WORKER_STATUSES) this.workers.set({type: w.type, status: s}, w[s])
    this.tasks.reset()
    this.oldest.reset()
    for (const q of queue) {
      for (const s of TASK_STATUSES) this.tasks.set({kind: q.kind, status: s}, q[s])
      this.oldest.set({kind: q.kind}, q.oldestQueuedAgeS ?? 0)
    }

    this.runs.reset()
    for (const status of RUN_STATUSES) this.runs.set({status}, 0)
    for (const [status, n] of Object.entries(runs)) this.runs.set({status}, n)
  }

  countAlerts(kinds: string[]): void {
    for (const kind of kinds) this.alerts.inc({kind})
  }

  countDeadWorkers(n: number): void {
    if (n > 0) this.swept.inc(n)
  }

  /** Reads task events and model calls newer than the last read into the counters. */
  async collect(db: Executor): Promise<void> {
    for (const e of await this.eventTail.read(db, (since) => taskEventsSince(db, since))) {
      this.events.inc({kind: e.kind, event: e.event})
      if (e.event === 'completed' && e.durationS !== null) this.durations.observe({kind: e.kind}, Math.max(0, e.durationS))
      if (RECOVERY_REASON[e.event]) this.recoveries.inc({kind: e.kind, reason: RECOVERY_REASON[e.event]})
      if (e.event === 'fenced_out') this.fenced.inc({kind: e.kind})
    }

    for (const c of await this.callTail.read(db, (since) => llmCallsSince(db, since))) {
      this.calls.inc({provider: c.provider, model: c.model, outcome: c.outcome})
      this.tokens.inc({provider: c.provider, model: c.model, direction: 'input'}, c.inputTokens)
      this.tokens.inc({provider: c.provider, model: c.model, direction: 'output'}, c.outputTokens)
      this.cost.inc({provider: c.provider, model: c.model}, c.costUsd)
      this.quotaWait.inc({provider: c.provider, model: c.model}, c.waitedMs / 1000)
    }

    this.heartbeatLatency.reset()
    for (const w of await heartbeatLatencies(db)) if (w.latencyMs !== null) this.heartbeatLatency.set({worker: w.id}, w.latencyMs / 1000)

    for (const s of await cacheStats(db, CACHE_KINDS)) {
      this.cacheHits.set({kind: s.kind}, s.hits)
      this.cacheEntries.set({kind: s.kind}, s.entries)
    }
  }

  /** Serves /metrics (and /healthz) until closed. Port 0 picks a free one. */
  async serve(port: number, host: string): Promise<MetricsServer> {
    const server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]
      if (req.method === 'GET' && path === '/metrics') {
        this.registry.metrics().then(
          (body) => res.writeHead(200, {'content-type': this.registry.contentType}).end(body),
          (error: Error) => res.writeHead(500).end(error.message),
        )
      } else if (req.method === 'GET' && path === '/healthz') {
        res.writeHead(200, {'content-type': 'text/plain'}).end('ok\n')
      } else {
        res.writeHead(404, {'content-type': 'text/plain'}).end('not found: try /metrics\n')
      }
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(listenFailure(error, port, host)))
      server.listen(port, host, resolve)
    })
    const address = server.address() as AddressInfo
    return {
      url: `http://${host.includes(':') ? `[${host}]` : host}:${address.port}/metrics`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    }
  }
}

export interface MetricsServer {
  url: string
  close(): Promise<void>
}

/**
 * Reads rows newer than a moving mark, each once. now() in PostgreSQL is the
 * time a transaction started, so a row can commit with a timestamp a little
 * older than rows already read: every read looks back a minute and skips the
 * keys it has seen. The first read only takes note (counters start at zero).
 */
class Tail {
  private mark?: Date
  private seen = new Map<string, number>()

  async read<R extends {key: string; at: Date}>(db: Executor, query: (since: Date) => Promise<R[]>): Promise<R[]> {
    const first = !this.mark
    if (!this.mark) {
      const {rows} = await sql<{now: Date}>`select now() as now`.execute(db)
      this.mark = rows[0].now
    }

    const since = new Date(this.mark.getTime() - 60_000)
    const rows = await query(since)
    const fresh = rows.filter((r) => !this.seen.has(r.key))
    for (const r of fresh) {
      this.seen.set(r.key, r.at.getTime())
      if (r.at > this.mark) this.mark = r.at
    }

    const horizon = since.getTime()
    for (const [key, at] of this.seen) if (at < horizon) this.seen.delete(key)
    return first ? [] : fresh
  }
}

/** Why a server of rvx's (`what`: metrics or health, the prefix of its flags) could not listen, as the input that caused it. */
export function listenFailure(error: NodeJS.ErrnoException, port: number, host: string, what: 'metrics' | 'health' = 'metrics'): Error {
  switch (error.code) {
    case 'EADDRINUSE':
      return new UsageError(`${port} on ${host} is in use: pick another`, {field: `${what}_port`, code: 'port_in_use'})
    case 'EACCES':
      return new UsageError(`${port} needs privileges on ${host}: pick a port above 1023`, {field: `${what}_port`, code: 'port_denied'})
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return new UsageError(`${host} does not resolve (${error.code}): listen on an address of this machine, e.g. 127.0.0.1 or 0.0.0.0`, {
        field: `${what}_host`,
        code: `${what}_host`,
      })
    case 'EADDRNOTAVAIL':
      return new UsageError(`${host} is not an address of this machine: listen on one of its own, e.g. 127.0.0.1 or 0.0.0.0`, {
        field: `${what}_host`,
        code: `${what}_host`,
      })
    default:
      return new RvxError(`the ${what} server could not listen on ${host}:${port} (${error.code ?? error.message})`, {cause: error, code: `${what}_listen`})
  }
}
