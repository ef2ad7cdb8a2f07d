import {Kysely, PostgresDialect} from 'kysely'

import {createPool} from '../db/connect.js'
import {isConnectionError} from '../db/connection-errors.js'
import type {Database, WorkerStatus} from '../db/schema.js'
import {backoffMs, sleep} from './backoff.js'
import {resolveConfig, type RuntimeConfig} from './config.js'
import {classifyError, errorMessage} from './errors.js'
import type {HandlerOutcome, TaskRegistry} from './handlers.js'
import {type ClaimedTask, type ClaimFilter, claimTasks, completeTask, completeTasks, failTask, type Lease, releaseTask, snoozeTask} from './lease.js'
import {LivenessSession} from './liveness.js'
import {type Logger, silentLogger} from './logger.js'
import {defaultWorkerId, heartbeat, markWorker, registerWorker, type WorkerIdentity, workerLockKey} from './registry.js'
import {type ResourceMetrics, ResourceSampler} from './resources.js'
import {sweep} from './sweep.js'

export interface WorkerOptions {
  databaseUrl: string
  registry: TaskRegistry
  /** Task kinds to claim; default: every registered kind. */
  kinds?: string[]
  concurrency?: number
  pool?: string
  capabilities?: string[]
  id?: string
  /** Only claim tasks of this scope (e.g. one pipeline run). */
  scope?: string | null
  version?: string
  config?: Partial<RuntimeConfig>
  logger?: Logger
  /** Stop (gracefully) after this many tasks have been settled. */
  maxTasks?: number
  /** Stop when nothing is runnable and nothing is in flight. */
  exitWhenIdle?: boolean
  /** Connections in this worker's pool (default concurrency + 2). */
  poolSize?: number
}

export interface WorkerSummary {
  id: string
  completed: number
  failed: number
  retried: number
  snoozed: number
  released: number
  fencedOut: number
  /** Why start() returned. */
  reason: 'stopped' | 'forced' | 'max-tasks' | 'idle'
}

interface InFlight {
  task: ClaimedTask
  lease: Lease
  controller: AbortController
  startedAt: number
  /** Settled by someone else (released on forced stop, lease lost): the handler's own outcome is dropped. */
  detached: boolean
  /** Counted once in the summary, whichever path noticed first. */
  fenced: boolean
}

/**
 * A worker process's engine: claims tasks of its kinds (up to `concurrency`
 * at once), runs their handlers, and settles each under its lease. One
 * heartbeat per interval renews all its leases and reports resources; it
 * sweeps for dead workers too, so recovery never waits for a monitor.
 */
export class Worker {
  readonly id: string
  readonly config: RuntimeConfig
  private readonly opts: WorkerOptions
  private readonly kinds: string[]
  private readonly concurrency: number
  private readonly log: Logger
  private readonly db: Kysely<Database>
  private readonly sampler = new ResourceSampler()
  private readonly identity: WorkerIdentity
  private liveness?: LivenessSession
  private readonly inflight = new Map<number, InFlight>()
  private metrics?: ResourceMetrics
  private wakeUp?: () => void
  private woken = false
  private draining = false
  private forced = false
  private stopReason: WorkerSummary['reason'] = 'stopped'
  private timers: NodeJS.Timeout[] = []
  private readonly housekeeping = new Set<Promise<unknown>>()
  private graceTimer?: NodeJS.Timeout
  private claimedCount = 0
  private deltas = {done: 0, failed: 0}
  private readonly summary: Omit<WorkerSummary, 'reason'>
  private overCapacityLogged = false
  private dbDownSince: number | null = null
  private releasing?: Promise<void>
  private pendingCompletions: Array<{lease: Lease; result: unknown; resolve: (ok: boolean) => void; reject: (error: unknown) => void}> = []
  private flushing = 0
  private mutex: Promise<unknown> = Promise.resolve()

  constructor(options: WorkerOptions) {
    this.opts = options
    this.config = resolveConfig(options.config)
    this.id = options.id ?? defaultWorkerId()
    this.kinds = options.kinds ?? options.registry.kinds()
    for (const kind of this.kinds) {
      if (!options.registry.get(kind)) throw new Error(`no handler registered for task kind "${kind}"`)
    }

    if (this.kinds.length === 0) throw new Error('a worker needs at least one task kind')
    this.concurrency = Math.max(1, options.concurrency ?? 4)
    this.log = options.logger ?? silentLogger
    const pool = createPool(options.databaseUrl, {
      max: options.poolSize ?? this.concurrency + 2,
      applicationName: `rvx-worker ${this.id}`.slice(0, 63),
      onPoolError: (error) => this.log.warn({err: error.message}, 'database connection lost'),
    })
    this.db = new Kysely<Database>({dialect: new PostgresDialect({pool})})
    this.identity = {
      id: this.id,
      types: this.kinds,
      pool: options.pool ?? 'default',
      capabilities: [...(options.capabilities ?? [])].sort(),
      concurrency: this.concurrency,
      scope: options.scope ?? null,
      version: options.version ?? 'dev',
      lockKey: workerLockKey(this.id),
    }
    this.summary = {id: this.id, completed: 0, failed: 0, retried: 0, snoozed: 0, released: 0, fencedOut: 0}
  }

  /** Runs until stopped (stop(), the signal, maxTasks or exitWhenIdle); resolves with what it did. */
  async start(options: {signal?: AbortSignal} = {}): Promise<WorkerSummary> {
    options.signal?.addEventListener('abort', () => this.stop(), {once: true})
    this.metrics = await this.sampler.sample()
    this.liveness = new LivenessSession(
      this.opts.databaseUrl,
      this.id,
      this.identity.lockKey,
      {
        onNotify: (kind) => {
          if (this.kinds.includes(kind)) this.wake()
        },
        onReconnect: () => {
          this.track(this.beat())
          this.wake()
        },
      },
      this.log,
    )
    try {
      await this.liveness.open()
      await registerWorker(this.db, this.identity, this.metrics, 'idle')
    } catch (error) {
      await this.liveness.close()
      await this.db.destroy()
      throw error
    }

    this.log.info({worker: this.id, kinds: this.kinds, concurrency: this.concurrency, pool: this.identity.pool}, 'worker started')
    this.every(this.config.heartbeatIntervalMs, () => this.beat())
    this.every(this.config.sweepIntervalMs, () => this.sweepOnce())
    if (options.signal?.aborted) this.stop()

    try {
      await this.loop()
      await this.drain()
    } finally {
      for (const t of this.timers) clearInterval(t)
      if (this.graceTimer) clearTimeout(this.graceTimer)
      // A heartbeat or status write still in flight must not land after "stopped".
      await Promise.allSettled([...this.housekeeping])
      await this.retryDb(() => markWorker(this.db, this.id, 'stopped', this.takeDeltas()), 5000).catch(() => {})
      await this.liveness.close()
      await this.db.destroy()
    }

    const result = {...this.summary, reason: this.forced ? 'forced' : this.stopReason}
    this.log.info(result, 'worker stopped')
    return result
  }

  /**
   * First call: stop claiming, let in-flight tasks finish within graceMs, then
   * release the rest. Second call (or force): release everything now.
   */
  stop(options: {force?: boolean} = {}): void {
    if (this.draining && !options.force && !this.forced) {
      this.forceStop('second stop request')
      return
    }

    if (!this.draining) {
      this.draining = true
      this.log.info({inflight: this.inflight.size, graceMs: this.config.graceMs}, 'stopping: no new claims; waiting for in-flight tasks')
      this.track(this.retryDb(() => markWorker(this.db, this.id, 'draining'), 2000).catch(() => {}))
      this.graceTimer = setTimeout(() => this.forceStop('grace period over'), this.config.graceMs)
      this.wake()
    }

    if (options.force) this.forceStop('forced stop')
  }

  get inFlight(): number {
    return this.inflight.size
  }

  private async loop(): Promise<void> {
    let backoff = 0
    while (!this.draining) {
      if (this.opts.maxTasks !== undefined && this.claimedCount >= this.opts.maxTasks) {
        this.stopReason = 'max-tasks'
        break
      }

      if (this.overCapacity()) {
        await this.idle(this.config.pollIntervalMs)
        continue
      }

      let requested = 0
      let claimed: ClaimedTask[]
      try {
        claimed = await this.claiming(
          () => (requested = this.budget()),
          async (n) => {
            const tasks = n > 0 ? await claimTasks(this.db, this.claimFilter(n)) : []
            // Still inside the critical section: a heartbeat must see these as held.
            this.accept(tasks)
            return tasks
          },
        )
        this.databaseBack()
        backoff = 0
      } catch (error) {
        this.databaseDown(error, 'claim')
        backoff++
        await this.idle(Math.min(250 * 2 ** backoff, 5000))
        continue
      }

      if (requested <= 0) {
        await this.idle(this.config.pollIntervalMs)
      } else if (claimed.length < requested) {
        // Idle means nothing in flight and nothing queued, not even for later (a retry in backoff, a snooze).
        if (this.opts.exitWhenIdle && this.inflight.size === 0 && !(await this.anythingQueued())) {
          this.stopReason = 'idle'
          break
        }

        await this.idle(this.config.pollIntervalMs)
      }
    }

    this.draining = true
  }

  private async anythingQueued(): Promise<boolean> {
    try {
      let q = this.db.selectFrom('tasks').select('id').where('status', '=', 'queued').where('kind', 'in', this.kinds)
      if (this.identity.scope) q = q.where('scope', '=', this.identity.scope)
      return (await q.limit(1).execute()).length > 0
    } catch {
      return true
    }
  }

  /** Free slots, counting `freed` tasks that are about to complete, within the maxTasks budget. */
  private budget(freed = 0): number {
    const free = this.concurrency - this.inflight.size + freed
    return this.opts.maxTasks === undefined ? free : Math.min(free, this.opts.maxTasks - this.claimedCount)
  }

  private claimFilter(limit: number): ClaimFilter {
    return {
      workerId: this.id,
      kinds: this.kinds,
      limit,
      leaseMs: this.config.leaseMs,
      pool: this.identity.pool,
      capabilities: this.identity.capabilities,
      memoryAvailableGb: this.metrics?.memory_available_gb ?? 0,
      gpuVramAvailableGb: this.metrics?.gpu_vram_available_gb ?? 0,
      scope: this.identity.scope,
    }
  }

  private accept(claimed: ClaimedTask[]): void {
    this.claimedCount += claimed.length
    for (const task of claimed) this.run(task)
  }

  /** Waits for a notification, a freed slot, a stop request or the timeout. */
  private idle(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false
      return Promise.resolve()
    }

    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      const self = this
      function done() {
        clearTimeout(timer)
        self.wakeUp = undefined
        self.woken = false
        resolve()
      }

      this.wakeUp = done
    })
  }

  private wake(): void {
    if (this.wakeUp) this.wakeUp()
    else this.woken = true
  }

  private run(task: ClaimedTask): void {
    const entry: InFlight = {
      task,
      lease: {taskId: task.id, epoch: task.epoch, workerId: this.id},
      controller: new AbortController(),
      startedAt: Date.now(),
      detached: false,
      fenced: false,
    }
    this.inflight.set(task.id, entry)
    void this.execute(entry)
      .catch((error) => this.log.error({task: task.id, err: errorMessage(error)}, 'settling a task failed; the next heartbeat releases it for another try'))
      .finally(() => {
        this.inflight.delete(task.id)
        this.wake()
      })
  }

  private async execute(entry: InFlight): Promise<void> {
    const {task, controller} = entry
    const {handler, options} = this.opts.registry.get(task.kind)!
    const retries = options.transientRetries ?? this.config.transientRetries
    const log = this.log
    let outcome: HandlerOutcome | void
    for (let attempt = 0; ; attempt++) {
      try {
        outcome = await handler(task, {signal: controller.signal, workerId: this.id, attempt: task.attempts + 1, db: this.db, log})
        break
      } catch (error) {
        if (entry.detached) return
        const kind = classifyError(error)
        if (kind.type === 'transient' && attempt < retries && !controller.signal.aborted) {
          const delay = backoffMs(attempt + 1, this.config.transientBackoff)
          log.warn({task: task.id, kind: task.kind, err: errorMessage(error), retryInMs: delay}, 'transient error; retrying in lease')
          this.summary.retried++
          await sleep(delay, controller.signal)
          if (entry.detached) return
          continue
        }

        await this.settleFailure(entry, error, kind)
        return
      }
    }

    if (entry.detached) return
    const done = outcome?.apply
      ? await this.retryDb(() => completeTask(this.db, entry.lease, {result: outcome.result, apply: outcome.apply}))
      : await this.completeBatched(entry.lease, outcome ? outcome.result : undefined)
    if (done) {
      this.summary.completed++
      this.deltas.done++
      log.debug({task: task.id, kind: task.kind, ms: Date.now() - entry.startedAt}, 'task completed')
    } else {
      this.fenced(entry)
      log.warn({task: task.id, kind: task.kind, epoch: task.epoch}, 'completion fenced out: the lease was revoked (task canceled, or this worker presumed dead)')
    }
  }

  /**
   * Completions without writes of their own share one statement: the first
   * goes at once; those that finish while it is in flight go together next.
   * Low load keeps its latency, high load gets batches.
   */
  private completeBatched(lease: Lease, result: unknown): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.pendingCompletions.push({lease, result, resolve, reject})
      // One flush at a time (two contend on the same index pages and go slower).
      if (this.flushing === 0) void this.flushCompletions()
    })
  }

  private async flushCompletions(): Promise<void> {
    this.flushing++
    try {
      while (this.pendingCompletions.length > 0) {
        const batch = this.pendingCompletions.splice(0, 500)
        const items = batch.map((b) => ({taskId: b.lease.taskId, epoch: b.lease.epoch, result: b.result}))
        let done: Set<number>
        try {
          // Claim the successors in the same statement: one commit per batch instead of two.
          const outcome = await this.claiming(
            () => (this.draining || this.overCapacity() ? 0 : this.budget(batch.length)),
            async (want) => {
              const result = await this.retryDb(() => completeTasks(this.db, this.id, items, want > 0 ? this.claimFilter(want) : undefined))
              this.accept(result.claimed)
              return result
            },
          )
          done = outcome.completed
        } catch (error) {
          for (const b of batch) b.reject(error)
          continue
        }

        for (const b of batch) {
          if (done.has(b.lease.taskId)) b.resolve(true)
          // Not in the batch's result: fenced out, or committed by an earlier try whose answer was lost. completeTask tells which.
          else this.retryDb(() => completeTask(this.db, b.lease, {result: b.result})).then(b.resolve, b.reject)
        }
      }
    } finally {
      this.flushing--
    }
  }

  private async settleFailure(entry: InFlight, error: unknown, kind: ReturnType<typeof classifyError>): Promise<void> {
    const {task} = entry
    const message = errorMessage(error)
    if (kind.type === 'snooze') {
      const ok = await this.retryDb(() => snoozeTask(this.db, entry.lease, kind.retryAfterMs, message))
      if (ok) this.summary.snoozed++
      else this.fenced(entry)
      this.log.warn({task: task.id, kind: task.kind, snoozeMs: kind.retryAfterMs}, 'rate limited; task snoozed (no attempt used)')
      return
    }

    const permanent = kind.type === 'permanent'
    const retryInMs = backoffMs(task.attempts + 1, this.config.attemptBackoff)
    const onFailed = this.opts.registry.get(task.kind)?.options.onFailed
    const outcome = await this.retryDb(() => failTask(this.db, entry.lease, message, {permanent, retryInMs, onTerminal: onFailed ? (trx) => onFailed(trx, task) : undefined}))
    if (outcome === 'fenced_out') {
      this.fenced(entry)
      return
    }

    this.deltas.failed++
    this.summary.failed++
    this.log.warn({task: task.id, kind: task.kind, err: message, outcome, retryInMs: outcome === 'retry_scheduled' ? retryInMs : undefined}, outcome === 'failed' ? 'task failed' : 'attempt failed; retry scheduled')
  }

  private fenced(entry: InFlight): void {
    if (entry.fenced) return
    entry.fenced = true
    this.summary.fencedOut++
  }

  /** Forced stop: abort every handler and release its task (runnable at once, no attempt used). */
  private forceStop(why: string): void {
    if (this.forced) return
    this.forced = true
    this.draining = true
    this.wake()
    if (this.inflight.size > 0) this.log.warn({inflight: this.inflight.size, why}, 'releasing unfinished tasks')
    for (const entry of this.inflight.values()) {
      entry.detached = true
      entry.controller.abort(new Error(`worker stopping: ${why}`))
    }

    this.releasing = Promise.all(
      [...this.inflight.values()].map(async (entry) => {
        const ok = await this.retryDb(() => releaseTask(this.db, entry.lease, `worker ${this.id} stopped: ${why}`), 5000).catch(() => false)
        if (ok) this.summary.released++
      }),
    ).then(() => {})
    this.wake()
  }

  /** After the loop: wait for in-flight tasks (the grace timer forces a release when it runs out). */
  private async drain(): Promise<void> {
    while (this.inflight.size > 0 && !this.forced) {
      await this.idle(1000)
    }

    if (this.releasing) await this.releasing
  }

  private async beat(): Promise<void> {
    try {
      this.metrics = await this.sampler.sample()
      const deltas = this.takeDeltas()
      let sentAt = 0
      let result
      try {
        result = await this.exclusive(() => {
          sentAt = Date.now()
          const held = [...this.inflight.values()].filter((e) => !e.detached).map((e) => ({id: e.task.id, epoch: e.task.epoch}))
          return heartbeat(this.db, this.id, {status: this.status(), metrics: this.metrics!, leaseMs: this.config.leaseMs, doneDelta: deltas.done, failedDelta: deltas.failed, held})
        })
      } catch (error) {
        this.deltas.done += deltas.done
        this.deltas.failed += deltas.failed
        throw error
      }

      this.databaseBack()
      if (result.released > 0) this.log.warn({released: result.released}, 'released tasks leased to this worker that it was not running')
      if (result.rowStatus === null || result.rowStatus === 'dead') {
        this.log.warn({worker: this.id}, 'this worker was presumed dead; its leases were revoked; registering again')
        await registerWorker(this.db, this.identity, this.metrics, this.status())
      }

      // Abort handlers whose lease is gone (presumed dead, canceled): their result would be fenced out anyway.
      for (const entry of this.inflight.values()) {
        if (!entry.detached && entry.startedAt < sentAt && result.leases.get(entry.task.id) !== entry.task.epoch) {
          entry.detached = true
          this.fenced(entry)
          entry.controller.abort(new Error('lease lost'))
          this.log.warn({task: entry.task.id}, 'lease lost; handler aborted')
        }
      }
    } catch (error) {
      this.databaseDown(error, 'heartbeat')
    }
  }

  private async sweepOnce(): Promise<void> {
    try {
      const result = await sweep(this.db, this.config)
      if (result.deadWorkers.length > 0 || result.requeued > 0 || result.quarantined > 0) {
        this.log.warn({dead: result.deadWorkers, requeued: result.requeued, quarantined: result.quarantined}, 'recovered tasks of dead workers')
      }
    } catch (error) {
      this.databaseDown(error, 'sweep')
    }
  }

  /**
   * One claim at a time, never during a heartbeat (which releases every lease
   * it does not know about). Concurrent claims only contend on the same index
   * pages: measured slower. `want` is read inside, when the slots are known.
   */
  private claiming<T>(want: () => number, fn: (n: number) => Promise<T>): Promise<T> {
    return this.exclusive(() => fn(Math.max(0, want())))
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.mutex.then(fn, fn)
    this.mutex = next.catch(() => {})
    return next
  }

  private status(): WorkerStatus {
    if (this.draining) return 'draining'
    return this.inflight.size > 0 ? 'busy' : 'idle'
  }

  private overCapacity(): boolean {
    const m = this.metrics
    const {maxCpuPercent, maxMemoryPercent} = this.config
    const over = Boolean(m && ((maxCpuPercent !== null && m.cpu_percent > maxCpuPercent) || (maxMemoryPercent !== null && m.memory_percent > maxMemoryPercent)))
    if (over && !this.overCapacityLogged) this.log.warn({cpu: m?.cpu_percent, memory: m?.memory_percent}, 'over capacity: not claiming until resources free up')
    this.overCapacityLogged = over
    return over
  }

  private takeDeltas(): {done: number; failed: number} {
    const d = this.deltas
    this.deltas = {done: 0, failed: 0}
    return d
  }

  /**
   * Settling writes must not be lost to a database restart: retry them on
   * connection errors until they go through or the lease would be gone anyway.
   */
  private async retryDb<T>(fn: () => Promise<T>, deadlineMs = this.config.leaseMs): Promise<T> {
    const start = Date.now()
    for (let n = 1; ; n++) {
      try {
        return await fn()
      } catch (error) {
        if (!isConnectionError(error) || Date.now() - start > deadlineMs) throw error
        this.databaseDown(error, 'write')
        await sleep(Math.min(100 * 2 ** n, 2000))
      }
    }
  }

  private databaseDown(error: unknown, what: string): void {
    if (this.dbDownSince === null) {
      this.dbDownSince = Date.now()
      this.log.warn({err: errorMessage(error), during: what}, isConnectionError(error) ? 'database unavailable; retrying' : 'database error; retrying')
    }
  }

  private databaseBack(): void {
    if (this.dbDownSince !== null) {
      this.log.info({downMs: Date.now() - this.dbDownSince}, 'database available again')
      this.dbDownSince = null
    }
  }

  private track(p: Promise<unknown>): void {
    this.housekeeping.add(p)
    void p.finally(() => this.housekeeping.delete(p))
  }

  private every(ms: number, fn: () => Promise<void>): void {
    let running = false
    const timer = setInterval(() => {
      if (running) return
      running = true
      this.track(
        fn().finally(() => {
          running = false
        }),
      )
    }, ms)
    timer.unref()
    this.timers.push(timer)
  }
}
