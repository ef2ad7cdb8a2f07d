import path from 'node:path'

import {type Kysely, sql} from '../db/kysely.js'

import {isConnectionError} from '../db/connection-errors.js'
import type {Database} from '../db/schema.js'
import {advanceRun} from '../pipeline/advance.js'
import {exportRun} from '../pipeline/export.js'
import {QueueRetention} from '../pipeline/retention.js'
import {recentEndings} from '../pipeline/run-endings.js'
import {runCountsByStatus, runsWithNothingInFlight} from '../pipeline/run-views.js'
import {sleep} from '../runtime/backoff.js'
import {DEFAULT_CONFIG} from '../runtime/config.js'
import {errorMessage} from '../runtime/errors.js'
import type {Logger} from '../runtime/logger.js'
import {type Health, HEALTH_TIMEOUT_MS, withinTime} from '../runtime/health.js'
import {DatabaseOutage} from '../runtime/outage.js'
import {queueStats, workerCounts, workerStats} from '../runtime/stats.js'
import {sweep} from '../runtime/sweep.js'
import {currentConditions, recordConditions} from './conditions.js'
import {deliverPending, type DeliveryTargets} from './delivery.js'
import {LeaderLock} from './leader.js'
import type {MonitorMetrics} from './metrics.js'
import {fireDueSchedules} from './schedules.js'
import {deliverWebhooks, pruneDeliveryLog, type WebhookDeliveryOptions} from './webhooks.js'

export interface MonitorOptions {
  db: Kysely<Database>
  databaseUrl: string
  /** Shown in logs and pg_stat_activity. */
  name: string
  intervalMs: number
  deadAfterMs: number
  stuckAfterMs: number
  /** Dead workers and failed tasks older than this are not alerted (default: an hour, or twice stuckAfter). */
  lookbackMs?: number
  targets: DeliveryTargets
  metrics?: MonitorMetrics
  log: Logger
  /** Completed runs (and those stopped for a decision) without an export get one written here (a run-ID folder inside). */
  exportDir?: string
  /** Task rows and events of runs completed or canceled, and of standalone tasks finished, longer ago than this are deleted (unset: kept). */
  retentionMs?: number
  /** How webhooks are sent (tries per round, private addresses). */
  webhooks?: WebhookDeliveryOptions
  /** The clock schedules are fired by (default: this machine's). */
  now?: () => Date
}

/** The fleet summary line is logged when it changes, else once a minute. */
const FLEET_LINE_EVERY_MS = 60_000

/**
 * The fleet's caretaker. Every interval the active monitor sweeps dead
 * workers and expired leases, re-plans runs that have nothing in flight
 * (a quarantined or failed stage task must not leave a run waiting), fires
 * scheduled runs, opens alerts for new conditions and sends them, sends
 * webhooks, and logs a fleet summary (when it changes, else once a minute). Any
 * number of monitors may run: one holds the lock and acts, the others keep
 * their metrics current and take over within one interval when it dies.
 */
export class Monitor {
  private readonly leader: LeaderLock
  private readonly lookbackMs: number
  private readonly outage: DatabaseOutage
  private active?: boolean
  private delivering?: Promise<unknown>
  private sendingWebhooks?: Promise<unknown>
  private readonly retention?: QueueRetention
  /** The last summary line logged: what it said, and when. */
  private fleetLine?: {signature: string; at: number}
  /** The last retention pass stopped at its deadline with more to delete. */
  private pruneLeft = false

  constructor(private readonly o: MonitorOptions) {
    if (o.retentionMs !== undefined) this.retention = new QueueRetention(o.retentionMs)
    this.leader = new LeaderLock(o.databaseUrl, o.name, o.intervalMs, {exports: o.exportDir !== undefined})
    this.lookbackMs = o.lookbackMs ?? Math.max(3_600_000, 2 * o.stuckAfterMs)
    this.outage = new DatabaseOutage(o.log, DEFAULT_CONFIG.reconnectBackoff, 'this monitor is neither active nor on standby until it answers')
  }

  /** Ticks until the signal aborts (or once), then lets in-flight deliveries finish and releases the lock. */
  async run(options: {signal?: AbortSignal; once?: boolean} = {}): Promise<void> {
    try {
      while (!options.signal?.aborted) {
        const started = Date.now()
        await this.tick()
        if (options.once) break
        // Retention that ran out of its half interval with work left goes on until the next interval: a fleet that
        // finishes tasks faster than half an interval's batches delete them would otherwise outgrow it for good.
        if (this.pruneLeft) await this.prune(started + this.o.intervalMs).catch((error: unknown) => this.outage.down(error, 'monitor'))
        await sleep(Math.max(0, this.o.intervalMs - (Date.now() - started)), options.signal)
      }

      await Promise.all([this.delivering, this.sendingWebhooks])
    } finally {
      await this.leader.close()
    }
  }

  /** One interval's work. Errors are logged, never thrown: the monitor outlives a database restart. */
  async tick(): Promise<void> {
    this.pruneLeft = false
    const {active, tookOverFrom, lost} = await this.leader.hold()
    if (lost !== undefined) {
      // Not a standby: nobody may be active. Said once, until the database answers again.
      this.outage.down(lost, 'monitor')
      this.active = undefined
      this.o.metrics?.setActive(false)
      return
    }

    if (tookOverFrom) this.o.log.warn({hungLeader: tookOverFrom}, `the active monitor ${tookOverFrom} stopped answering; ended its session and took over`)
    if (active !== this.active) {
      this.active = active
      this.fleetLine = undefined
      this.o.log.info(
        {active},
        active ? 'active: this monitor sweeps, re-plans and alerts' : 'standby: another monitor is active; this one takes over if it stops',
      )
    }

    this.o.metrics?.setActive(active)
    try {
      if (active) {
        // Silence is not counted while this monitor could not reach the database either.
        const swept = await sweep(this.o.db, {...DEFAULT_CONFIG, deadAfterMs: this.o.deadAfterMs}, {reachableForMs: this.outage.reachableForMs()})
        this.o.metrics?.countDeadWorkers(swept.deadWorkers.length)
        if (swept.deadWorkers.length > 0 || swept.requeued > 0 || swept.quarantined > 0) {
          this.o.log.warn(
            {dead: swept.deadWorkers, requeued: swept.requeued, quarantined: swept.quarantined},
            `swept ${swept.deadWorkers.length} dead worker(s): ${swept.requeued} task(s) requeued, ${swept.quarantined} quarantined`,
          )
        }

        await this.replanIdleRuns()
        await fireDueSchedules(this.o.db, this.o.now?.() ?? new Date(), this.o.log)
        // Before the alerts: a run's completion notice says where its export is.
        await this.exportEnded()
        await this.alert()
        this.sendWebhooks()
        await this.prune(Date.now() + this.o.intervalMs / 2)
      }

      const summary = await this.observe()
      if (active) this.logFleetLine(summary)
      this.outage.up()
    } catch (error) {
      if (isConnectionError(error)) this.outage.down(error, 'monitor')
      else this.o.log.error({err: errorMessage(error)}, `monitor tick failed (retrying next interval): ${errorMessage(error)}`)
    }
  }

  /** Runs marked running with nothing queued or running: advance decides what is next (or how they end). */
  private async replanIdleRuns(): Promise<void> {
    for (const id of await runsWithNothingInFlight(this.o.db)) {
      try {
        const status = await advanceRun(this.o.db, id)
        this.o.log.info({runId: id, status}, `run ${id} had nothing in flight; re-planned: ${status}`)
      } catch (error) {
        // One run that cannot be re-planned must not stop the sweeps and alerts of the rest.
        this.o.log.error({runId: id, err: errorMessage(error)}, `could not re-plan run ${id}: ${errorMessage(error)}`)
      }
    }
  }

  /** With an export directory: writes the export of each run that ended within the lookback and has none yet. */
  private async exportEnded(): Promise<void> {
    if (this.o.exportDir === undefined) return
    for (const ended of await recentEndings(this.o.db, this.lookbackMs)) {
      if (ended.exportPath !== null) continue
      try {
        const written = await exportRun(this.o.db, ended.id, this.o.exportDir)
        this.o.log.info({runId: ended.id, files: written.files}, `run ${ended.id} exported to ${path.dirname(written.files.companies)}`)
      } catch (error) {
        if (isConnectionError(error)) throw error
        // One export that cannot be written (a full disk) must not stop the alerts; it is tried again next interval.
        this.o.log.error({runId: ended.id, err: errorMessage(error)}, `could not export run ${ended.id} (retrying next interval): ${errorMessage(error)}`)
      }
    }
  }

  /** For a readiness probe: the database answers and this monitor's last interval held its leader session (active or standby). */
  async health(): Promise<Health> {
    if (this.active === undefined) return {ready: false, reason: 'no leader session: starting, or the database did not answer its last interval'}
    const probe = await withinTime(sql`select 1`.execute(this.o.db), HEALTH_TIMEOUT_MS)
    return probe.ok ? {ready: true, active: this.active} : {ready: false, reason: probe.reason, active: this.active}
  }

  /** Retention, batch by batch until `deadline` (what is left goes next time). */
  private async prune(deadline: number): Promise<void> {
    this.pruneLeft = false
    if (!this.retention) return
    try {
      const pruned = await this.retention.prune(this.o.db, deadline)
      this.pruneLeft = pruned.left
      if (pruned.tasks > 0) this.o.log.info(pruned, `retention: removed ${pruned.tasks} finished task(s) and ${pruned.events} event(s)`)
      const deliveries = await pruneDeliveryLog(this.o.db, this.o.retentionMs!)
      if (deliveries > 0) this.o.log.info({deliveries}, `retention: removed ${deliveries} finished webhook deliveries`)
    } catch (error) {
      if (isConnectionError(error)) throw error
      // Retention that cannot run must not stop the alerts and the summary.
      this.o.log.error({err: errorMessage(error)}, `retention failed (retrying next interval): ${errorMessage(error)}`)
    }
  }

  private async alert(): Promise<void> {
    const asOf = (await sql<{now: Date}>`select now() as now`.execute(this.o.db)).rows[0].now
    const conditions = await currentConditions(this.o.db, {
      stuckAfterMs: this.o.stuckAfterMs,
      lookbackMs: this.lookbackMs,
      deadAfterMs: this.o.deadAfterMs,
      reachableForMs: this.outage.reachableForMs(),
    })
    const opened = await recordConditions(this.o.db, conditions, {deliverNow: this.o.targets.channels.length === 0, resolveMissing: {asOf}})
    for (const a of opened) {
      const level = a.severity === 'critical' ? 'error' : a.severity === 'warning' ? 'warn' : 'info'
      // A completion is said as it is ("run 6 completed: 30 companies, ..."): news, not an alarm.
      const line = a.recipient ? `notice for ${a.recipient}: ${a.subject}` : a.kind === 'run_completed' ? a.subject : `alert: ${a.subject}`
      this.o.log[level]({alert: a.kind, key: a.key, ...a.details}, line)
    }

    this.o.metrics?.countAlerts(opened.map((a) => a.kind))
    this.delivering ??= deliverPending(this.o.db, this.o.targets, this.o.log)
      .catch((error: unknown) => this.o.log.error({err: errorMessage(error)}, `alert delivery failed: ${errorMessage(error)}`))
      .finally(() => {
        this.delivering = undefined
      })
  }

  /** Webhook deliveries due, in the background like alerts (one round at a time). */
  private sendWebhooks(): void {
    this.sendingWebhooks ??= deliverWebhooks(this.o.db, this.o.log, this.o.webhooks)
      .catch((error: unknown) => this.o.log.error({err: errorMessage(error)}, `webhook delivery failed: ${errorMessage(error)}`))
      .finally(() => {
        this.sendingWebhooks = undefined
      })
  }

  /**
   * Fleet, queue and runs: into the metrics, and one summary line with what tells whether it changed (the queue's
   * queued and running counts move all the time in a busy fleet: they do not count as a change).
   */
  private async observe(): Promise<{line: string; signature: string}> {
    const [fleet, queue, runCounts, workers] = await Promise.all([
      workerStats(this.o.db),
      queueStats(this.o.db),
      runCountsByStatus(this.o.db),
      workerCounts(this.o.db),
    ])
    if (this.o.metrics) {
      this.o.metrics.setFleet(fleet, queue, runCounts)
      await this.o.metrics.collect(this.o.db)
    }

    const sum = <T>(rows: T[], f: (r: T) => number) => rows.reduce((n, r) => n + f(r), 0)
    // Processes, each once: a worker of several stages is one row of `workers` but a row per stage in the fleet table.
    const live = workers.starting + workers.idle + workers.busy + workers.draining
    const failed = sum(queue, (q) => q.failed + q.quarantined)
    const runs = `runs: ${runCounts.running ?? 0} running, ${runCounts.needs_decision ?? 0} need a decision`
    return {
      line:
        `fleet: ${live} live (${workers.busy} busy, ${workers.idle} idle, ${workers.draining} draining), ${workers.dead} dead; ` +
        `queue: ${sum(queue, (q) => q.queued)} queued, ${sum(queue, (q) => q.running)} running, ${failed} failed; ${runs}`,
      signature: JSON.stringify([workers, failed, runs]),
    }
  }

  /** The summary line when what it says changed, else at most once per FLEET_LINE_EVERY_MS. */
  private logFleetLine(summary: {line: string; signature: string}): void {
    const now = Date.now()
    if (summary.signature === this.fleetLine?.signature && now - this.fleetLine.at < FLEET_LINE_EVERY_MS) return
    this.fleetLine = {signature: summary.signature, at: now}
    this.o.log.info({}, summary.line)
  }
}
