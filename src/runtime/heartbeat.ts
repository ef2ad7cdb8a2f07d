import type {Executor} from '../db/executor.js'
import type {WorkerStatus} from '../db/schema.js'
import type {InFlight, InFlightTasks} from './inflight.js'
import type {Logger} from './logger.js'
import type {DatabaseOutage} from './outage.js'
import {heartbeat, type KindCounts, registerWorker, type WorkerIdentity} from './registry.js'
import {type ResourceMetrics, ResourceSampler} from './resources.js'

export interface HeartbeatHost {
  /** The worker's own session (not its pool): a heartbeat never waits for a connection its tasks hold. */
  db: Executor
  identity: WorkerIdentity
  leaseMs: number
  log: Logger
  outage: DatabaseOutage
  inflight: InFlightTasks
  /** Runs `fn` while no claim is in flight (a heartbeat that releases stray leases must see every claim). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>
  /** Whether a claim or settling write lost its answer since the last call: its task may be leased here unknown. */
  takeStrays(): boolean
  /** Puts that back (the heartbeat that was to look did not get through). */
  markStrays(): void
  status(): WorkerStatus
  /** Running tasks whose lease the heartbeat did not renew (their handlers are aborted): finds out why, logs and counts them. */
  lost(entries: InFlight[]): void
}

/**
 * A worker process's heartbeat: one statement per interval records liveness
 * and resource metrics, renews every lease the worker runs, adds the
 * completion counts since the last beat, and tells the worker which leases it
 * lost (their handlers are aborted) or that it was presumed dead (it
 * registers again).
 */
export class Heartbeat {
  metrics?: ResourceMetrics
  private readonly sampler = new ResourceSampler()
  private deltas: KindCounts = {}
  /** How long the last heartbeat took to come back (ms): reported with the next one. */
  private latencyMs: number | null = null

  constructor(private readonly h: HeartbeatHost) {}

  async sample(): Promise<ResourceMetrics> {
    this.metrics = await this.sampler.sample()
    return this.metrics
  }

  /** Above the worker's CPU or memory limit (as of the last sample): it should not claim. */
  overCapacity(limits: {maxCpuPercent: number | null; maxMemoryPercent: number | null}): boolean {
    const m = this.metrics
    return Boolean(
      m &&
      ((limits.maxCpuPercent !== null && m.cpu_percent > limits.maxCpuPercent) ||
        (limits.maxMemoryPercent !== null && m.memory_percent > limits.maxMemoryPercent)),
    )
  }

  count(kind: string, what: 'done' | 'failed', n = 1): void {
    const c = (this.deltas[kind] ??= {done: 0, failed: 0})
    c[what] += n
  }

  /** The counts not yet written; the caller writes them (or puts them back). */
  takeDeltas(): KindCounts {
    const d = this.deltas
    this.deltas = {}
    return d
  }

  /** One beat. Never throws: a database outage is the outage tracker's to report. */
  async beat(): Promise<void> {
    const {h} = this
    try {
      const metrics = await this.sample()
      const deltas = this.takeDeltas()
      // Stray leases are looked for only after an answer was lost, and then with claims held back; otherwise the
      // heartbeat waits for nothing of the worker's (claims, completions, the pool).
      const releaseOrphans = h.takeStrays()
      const refused = h.outage.takeRefused()
      let sent = new Set<number>()
      let result
      const send = () => {
        const held = h.inflight.held()
        sent = new Set(held.map((l) => l.id))
        return heartbeat(h.db, h.identity.id, {
          status: h.status(),
          metrics,
          leaseMs: h.leaseMs,
          counts: deltas,
          held,
          latencyMs: this.latencyMs,
          refused,
          releaseOrphans,
        })
      }
      const started = performance.now()
      try {
        result = releaseOrphans ? await h.exclusive(send) : await send()
      } catch (error) {
        for (const [kind, c] of Object.entries(deltas)) {
          this.count(kind, 'done', c.done)
          this.count(kind, 'failed', c.failed)
        }

        if (releaseOrphans) h.markStrays()
        throw error
      }

      this.latencyMs = performance.now() - started
      h.outage.up()
      if (result.released > 0) h.log.warn({released: result.released}, 'released tasks leased to this worker that it was not running')
      if (result.rowStatus === null || result.rowStatus === 'dead') {
        h.log.warn({worker: h.identity.id}, 'this worker was presumed dead; its leases were revoked; registering again')
        await registerWorker(h.db, h.identity, metrics, h.status())
      }

      const lost = h.inflight.dropLost(result.leases, sent)
      if (lost.length > 0) h.lost(lost)
    } catch (error) {
      h.outage.down(error, 'heartbeat')
    }
  }
}
