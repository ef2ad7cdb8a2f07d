import type pg from 'pg'

import {Kysely, PostgresDialect} from '../db/kysely.js'
import {createPool, DEFAULT_SESSION_LIMITS, endPool, type SessionLimits} from '../db/connect.js'
import {connectionFailure} from '../db/connection-errors.js'
import {assertSessionKept} from '../db/session-check.js'
import type {Database, WorkerStatus} from '../db/schema.js'
import {backoffMs} from './backoff.js'
import {ClaimAhead} from './claim-ahead.js'
import {type Completion, CompletionBatcher} from './completion-batcher.js'
import {Doorbell} from './doorbell.js'
import {resolveConfig, type RuntimeConfig} from './config.js'
import {errorMessage} from './errors.js'
import type {TaskRegistry} from './handlers.js'
import {type Health, workerHealth} from './health.js'
import {Heartbeat} from './heartbeat.js'
import {Housekeeping} from './housekeeping.js'
import {Lane} from './lane.js'
import {type InFlight, InFlightTasks} from './inflight.js'
import {type ClaimedTask, type ClaimFilter, claimTasks, completeTask, completeTasks, releaseTasks, whyLeasesLost} from './lease.js'
import {LivenessSession} from './liveness.js'
import {type Logger, silentLogger} from './logger.js'
import {DatabaseOutage} from './outage.js'
import {hasQueuedTasks, nextDueInMs} from './queue.js'

/** A task due "now" is claimed after this much sleep, so clocks a few ms apart do not spin the loop. */
const MIN_DUE_WAIT_MS = 20
import {defaultWorkerId, markWorker, registerWorker, type WorkerIdentity, workerLockKey} from './registry.js'
import {sweep} from './sweep.js'
import {TaskRunner} from './task-runner.js'

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
  /**
   * Connections in this worker's pool, opened at start and kept (default: 4, or concurrency + 1 when smaller; at
   * least 2). Stage tasks spend their time on the network, so the pool is sized to the database work, not the slots;
   * the liveness session (heartbeats, LISTEN) is one more.
   */
  poolSize?: number
  /** Bounds of every session (statement, lock and idle-in-transaction timeouts, keepalives). */
  limits?: SessionLimits
  /** Called whenever the database answers again after an outage (a failover, a restart). */
  onDatabaseBack?: () => void
  /** A task kind as logs name it for people (default: the kind itself). */
  kindName?: (kind: string) => string
}

/** A worker's pool by default: its claim and completion lanes, and two for handlers' reads and their transactions. */
export function defaultPoolSize(concurrency: number): number {
  return Math.max(2, Math.min(4, concurrency + 1))
}

export interface WorkerSummary {
  id: string
  completed: number
  failed: number
  retried: number
  snoozed: number
  released: number
  /** Settlements refused because the lease moved on: another worker has the task, or this one was presumed dead. */
  fencedOut: number
  /** Tasks canceled while this worker held them (their run met its target, or was canceled): no fence, counted apart. */
  canceled: number
  /** Why start() returned. */
  reason: 'stopped' | 'forced' | 'max-tasks' | 'idle'
}

/**
 * A worker process's engine: the claim loop takes tasks of its kinds (up to
 * `concurrency` at once) and executes each under its lease; completions are
 * batched on a lane of their own (with the successors' claim when tasks are
 * long); a heartbeat renews every lease and reports resources; it sweeps for
 * dead workers too, so recovery never waits for a monitor.
 */
export class Worker {
  readonly id: string
  readonly config: RuntimeConfig
  private readonly opts: WorkerOptions
  private readonly kinds: string[]
  private readonly kindName: (kind: string) => string
  private readonly concurrency: number
  private readonly log: Logger
  private readonly db: Kysely<Database>
  private readonly pool: pg.Pool
  private readonly identity: WorkerIdentity
  private readonly outage: DatabaseOutage
  private readonly inflight: InFlightTasks
  private readonly heartbeat: Heartbeat
  private readonly runner: TaskRunner
  private readonly claimAhead: ClaimAhead
  private readonly liveness: LivenessSession
  /** A claim or a settling write lost its answer: the next heartbeat looks for tasks leased here unknown. */
  private strays = false
  private readonly poolSize: number
  private closing = false
  private readonly doorbell = new Doorbell()
  private draining = false
  private forced = false
  private stopReason: WorkerSummary['reason'] = 'stopped'
  private readonly housekeeping = new Housekeeping()
  private graceTimer?: NodeJS.Timeout
  private claimedCount = 0
  private readonly summary: Omit<WorkerSummary, 'reason'>
  private overCapacityLogged = false
  private releasing?: Promise<void>
  private readonly claimLane = new Lane()
  private readonly completionLane = new Lane()

  constructor(options: WorkerOptions) {
    this.opts = options
    this.config = resolveConfig(options.config)
    this.id = options.id ?? defaultWorkerId()
    this.kinds = options.kinds ?? options.registry.kinds()
    this.kindName = options.kindName ?? ((kind) => kind)
    for (const kind of this.kinds) {
      if (!options.registry.get(kind)) throw new Error(`no handler registered for task kind "${kind}"`)
    }

    if (this.kinds.length === 0) throw new Error('a worker needs at least one task kind')
    this.concurrency = Math.max(1, options.concurrency ?? 4)
    this.log = options.logger ?? silentLogger
    const limits = options.limits ?? DEFAULT_SESSION_LIMITS
    // At least two: the session check at start holds two at once.
    this.poolSize = Math.max(2, options.poolSize ?? defaultPoolSize(this.concurrency))
    this.pool = createPool(options.databaseUrl, {
      max: this.poolSize,
      keepOpen: true,
      limits,
      applicationName: `rvx-worker ${this.id}`.slice(0, 63),
      // Connections ended on purpose (the worker stopping, or giving up at start) are no news.
      onPoolError: (error) => {
        if (!this.closing) this.log.warn({err: error.message}, 'database connection lost')
      },
    })
    this.db = new Kysely<Database>({dialect: new PostgresDialect({pool: this.pool})})
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
    this.summary = {id: this.id, completed: 0, failed: 0, retried: 0, snoozed: 0, released: 0, fencedOut: 0, canceled: 0}
    this.claimAhead = new ClaimAhead(this.concurrency, this.config.maxClaimAhead)
    this.outage = new DatabaseOutage(this.log, this.config.writeRetryBackoff)
    if (options.onDatabaseBack) this.outage.whenBack(options.onDatabaseBack)
    this.inflight = new InFlightTasks({fenced: () => this.summary.fencedOut++, canceled: () => this.summary.canceled++})
    this.liveness = new LivenessSession(
      options.databaseUrl,
      this.id,
      this.identity.lockKey,
      {
        onNotify: (kind) => {
          if (this.kinds.includes(kind)) this.doorbell.ring()
        },
        onReconnect: () => {
          this.housekeeping.track(this.heartbeat.beat())
          this.doorbell.ring()
        },
        // Some of our tasks were canceled: a heartbeat now learns which, and stops them.
        onRevoked: () => this.housekeeping.track(this.heartbeat.beat()),
      },
      this.log,
      this.config.reconnectBackoff,
      limits,
    )
    this.heartbeat = new Heartbeat({
      db: this.liveness.db,
      identity: this.identity,
      leaseMs: this.config.leaseMs,
      log: this.log,
      outage: this.outage,
      inflight: this.inflight,
      exclusive: (fn) => this.exclusive(fn),
      takeStrays: () => {
        const strays = this.strays
        this.strays = false
        return strays
      },
      markStrays: () => (this.strays = true),
      status: () => this.status(),
      lost: (entries) => this.housekeeping.track(this.leaseLost(entries, (entry) => this.log.warn({task: entry.task.id}, 'lease lost; handler aborted'))),
    })
    const completions = new CompletionBatcher({
      completeBatch: (items) => this.completionLane.run(() => this.completeBatch(items)),
      completeOne: (item) => this.retryDb(() => completeTask(this.db, {taskId: item.taskId, epoch: item.epoch, workerId: this.id}, {result: item.result})),
    })
    this.runner = new TaskRunner({
      db: this.db,
      workerId: this.id,
      registry: options.registry,
      config: this.config,
      log: this.log,
      completions,
      retryDb: (fn) => this.retryDb(fn),
      settleLost: () => (this.strays = true),
      handlerDone: (entry) => {
        // A completion without writes of its own is durable once its batch commits (a crash before that
        // requeues the task, as any crash does); the slot need not wait for it.
        this.inflight.settling(entry)
        this.startWaiting()
      },
      tally: {
        completed: (kind, ms) => {
          this.claimAhead.taskTook(ms)
          this.summary.completed++
          this.heartbeat.count(kind, 'done')
        },
        failed: (kind) => {
          this.summary.failed++
          this.heartbeat.count(kind, 'failed')
        },
        retried: () => this.summary.retried++,
        snoozed: () => this.summary.snoozed++,
      },
      lost: (entry, warn) => this.leaseLost([entry], warn),
    })
  }

  /** Runs until stopped (stop(), the signal, maxTasks or exitWhenIdle); resolves with what it did. */
  async start(options: {signal?: AbortSignal} = {}): Promise<WorkerSummary> {
    options.signal?.addEventListener('abort', () => this.stop(), {once: true})
    const metrics = await this.heartbeat.sample()
    try {
      // Its liveness lock and LISTEN need a session of their own: refuse a transaction-mode pooler up front.
      await assertSessionKept(this.pool, this.opts.databaseUrl)
      // The whole connection budget is taken now: a worker that cannot have it says so and does not start, instead
      // of failing its tasks later when PostgreSQL runs out of connections.
      await this.openPool()
      await this.liveness.open()
      await registerWorker(this.db, this.identity, metrics, 'idle')
    } catch (error) {
      this.closing = true
      await this.liveness.close()
      await endPool(this.pool)
      throw error
    }

    this.log.info(
      {worker: this.id, kinds: this.kinds, concurrency: this.concurrency, pool: this.identity.pool},
      `worker started: ${this.kinds.map(this.kindName).join(', ')}`,
    )
    this.housekeeping.every(this.config.heartbeatIntervalMs, () => this.heartbeat.beat())
    this.housekeeping.every(this.config.sweepIntervalMs, () => this.sweepOnce())
    if (options.signal?.aborted) this.stop()

    try {
      await this.claimLoop()
      await this.drain()
    } finally {
      if (this.graceTimer) clearTimeout(this.graceTimer)
      // A heartbeat or status write still in flight must not land after "stopped".
      await this.housekeeping.stop()
      await this.retryDb(() => markWorker(this.liveness.db, this.id, 'stopped', this.heartbeat.takeDeltas()), 5000).catch(() => {})
      this.closing = true
      await this.liveness.close()
      // A connection stuck on a half-open socket would keep pool.end() waiting forever.
      await endPool(this.pool)
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
      this.housekeeping.track(this.retryDb(() => markWorker(this.db, this.id, 'draining'), 2000).catch(() => {}))
      this.graceTimer = setTimeout(() => this.forceStop('grace period over'), this.config.graceMs)
      // Tasks claimed ahead have not started: another worker may have them now.
      this.housekeeping.track(this.release(this.inflight.takeWaiting(), 'draining'))
      this.doorbell.ring()
    }

    if (options.force) this.forceStop('forced stop')
  }

  /** For a readiness probe: the database answers and holds this worker's liveness lock, and it is not draining. */
  async health(): Promise<Health> {
    return workerHealth(this.db, {id: this.id, lockKey: this.identity.lockKey, draining: this.draining})
  }

  get inFlight(): number {
    return this.inflight.size
  }

  /** Claims while there are free slots; sleeps until notified, a slot frees up, or the poll interval passes. */
  private async claimLoop(): Promise<void> {
    let failures = 0
    while (!this.draining) {
      if (this.opts.maxTasks !== undefined && this.claimedCount >= this.opts.maxTasks) {
        this.stopReason = 'max-tasks'
        break
      }

      if (this.overCapacity()) {
        await this.doorbell.wait(this.config.pollIntervalMs)
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
        // A claim of nothing asked the database nothing: it says nothing about an outage being over.
        if (requested > 0) this.outage.up()
        failures = 0
      } catch (error) {
        // The claim may have leased tasks whose answer never came: the next heartbeat gives them back.
        this.strays = true
        this.outage.down(error, 'claim')
        await this.doorbell.wait(backoffMs(++failures, this.config.reconnectBackoff))
        continue
      }

      if (requested <= 0) {
        await this.doorbell.wait(this.config.pollIntervalMs)
      } else if (claimed.length < requested) {
        // Idle means nothing in flight and nothing queued, not even for later (a retry in backoff, a snooze).
        if (this.opts.exitWhenIdle && this.inflight.size === 0 && !(await this.anythingQueued())) {
          this.stopReason = 'idle'
          break
        }

        await this.doorbell.wait(await this.untilNextDue())
      }
    }

    this.draining = true
  }

  /** Sleeps until the earliest task it could claim becomes due (a backoff, a snooze), at most the poll interval. */
  private async untilNextDue(): Promise<number> {
    const due = await nextDueInMs(this.db, {kinds: this.kinds, scope: this.identity.scope}).catch(() => null)
    return due === null ? this.config.pollIntervalMs : Math.min(this.config.pollIntervalMs, Math.max(MIN_DUE_WAIT_MS, Math.ceil(due)))
  }

  private async anythingQueued(): Promise<boolean> {
    return hasQueuedTasks(this.db, {kinds: this.kinds, scope: this.identity.scope}).catch(() => true)
  }

  /**
   * How many to claim: free slots plus the claim-ahead target (tasks whose
   * completion is on its way hold no slot), within the maxTasks budget.
   * Claimed-ahead tasks are refilled in batches (once half are used up).
   */
  private budget(): number {
    const ahead = this.claimAhead.target()
    const room = this.concurrency + ahead - this.inflight.unsettled
    if (ahead > 0 && room < ahead / 2) return 0
    return this.opts.maxTasks === undefined ? room : Math.min(room, this.opts.maxTasks - this.claimedCount)
  }

  private claimFilter(limit: number): ClaimFilter {
    const metrics = this.heartbeat.metrics
    return {
      workerId: this.id,
      kinds: this.kinds,
      limit,
      leaseMs: this.config.leaseMs,
      pool: this.identity.pool,
      capabilities: this.identity.capabilities,
      memoryAvailableGb: metrics?.memory_available_gb ?? 0,
      gpuVramAvailableGb: metrics?.gpu_vram_available_gb ?? 0,
      scope: this.identity.scope,
    }
  }

  /** Claimed tasks run at once while slots are free; the rest wait, leased to this worker, for a slot. */
  private accept(claimed: ClaimedTask[]): void {
    this.claimedCount += claimed.length
    for (const task of claimed) {
      const entry = this.inflight.add(task, this.id, !this.draining && this.inflight.running < this.concurrency)
      if (entry.running) void this.execute(entry)
    }

    // A claim that was on its way when the stop came: give it back now, not after the grace period.
    if (this.draining) this.housekeeping.track(this.release(this.inflight.takeWaiting(), 'draining'))
  }

  /** Runs a task in the background; when it is settled, the next waiting task takes its slot and the loop wakes to claim more. */
  private async execute(entry: InFlight): Promise<void> {
    try {
      await this.runner.run(entry)
    } catch (error) {
      this.log.error({task: entry.task.id, err: errorMessage(error)}, 'settling a task failed; the next heartbeat releases it for another try')
    } finally {
      this.inflight.delete(entry)
      this.startWaiting()
      this.doorbell.ring()
    }
  }

  /** Fills free slots with tasks claimed ahead. */
  private startWaiting(): void {
    while (!this.draining && this.inflight.running < this.concurrency) {
      const next = this.inflight.startNext()
      if (!next) return
      void this.execute(next)
    }
  }

  /** Forced stop: abort every handler and release its task (runnable at once, no attempt used). */
  private forceStop(why: string): void {
    if (this.forced) return
    this.forced = true
    this.draining = true
    this.doorbell.ring()
    if (this.inflight.size > 0) this.log.warn({inflight: this.inflight.size, why}, 'releasing unfinished tasks')
    this.releasing = this.release(this.inflight.detachAll(why), why)
    this.doorbell.ring()
  }

  /** Gives tasks back to the queue, runnable at once, no attempt used. */
  private async release(entries: InFlight[], why: string): Promise<void> {
    if (entries.length === 0) return
    const released = await this.retryDb(
      () =>
        releaseTasks(
          this.db,
          entries.map((e) => e.lease),
          `worker ${this.id} stopped: ${why}`,
        ),
      5000,
    ).catch(() => {
      this.strays = true
      return 0
    })
    this.summary.released += released
  }

  /** Opens every connection of the pool (kept open from then on), or throws the one-line reason it cannot. */
  private async openPool(): Promise<void> {
    const clients: pg.PoolClient[] = []
    try {
      for (let i = 0; i < this.poolSize; i++) clients.push(await this.pool.connect())
    } catch (error) {
      throw connectionFailure(error, this.opts.databaseUrl)
    } finally {
      for (const c of clients) c.release()
    }
  }

  /** What an orchestrator's health check asks: the database answers, and this worker holds its liveness session. */
  get sessionHeld(): boolean {
    return this.liveness.connected
  }

  /** After the loop: wait for in-flight tasks (the grace timer forces a release when it runs out). */
  private async drain(): Promise<void> {
    while (this.inflight.size > 0 && !this.forced) {
      await this.doorbell.wait(1000)
    }

    if (this.releasing) await this.releasing
  }

  private async sweepOnce(): Promise<void> {
    try {
      // Silence is not counted while this worker could not reach the database either.
      const result = await sweep(this.db, this.config, {reachableForMs: this.outage.reachableForMs()})
      this.outage.up()
      if (result.deadWorkers.length > 0 || result.requeued > 0 || result.quarantined > 0) {
        this.log.warn({dead: result.deadWorkers, requeued: result.requeued, quarantined: result.quarantined}, 'recovered tasks of dead workers')
      }
    } catch (error) {
      this.outage.down(error, 'sweep')
    }
  }

  /**
   * A batch of completions, on the completion lane. Tasks short enough to be
   * claimed ahead: the claim loop goes on claiming on its own lane meanwhile,
   * two statements side by side. Longer tasks: when no claim is on its way,
   * the batch claims the successors in the same statement (one commit per
   * batch instead of two).
   */
  private completeBatch(items: Completion[]): Promise<Set<number>> {
    const alone = () => this.retryDb(async () => (await completeTasks(this.db, this.id, items)).completed)
    if (this.claimAhead.target() > 0) return alone()
    const together = this.claimLane.tryRun(() =>
      this.claimStatement(
        () => (this.draining || this.overCapacity() ? 0 : this.budget()),
        async (want) => {
          const result = await this.retryDb(() => completeTasks(this.db, this.id, items, want > 0 ? this.claimFilter(want) : undefined))
          this.accept(result.claimed)
          return result.completed
        },
      ),
    )
    return together ?? alone()
  }

  /**
   * One claim at a time, never during a heartbeat (which releases every lease
   * it does not know about). Concurrent claims only contend on the same index
   * pages: measured slower. `want` is read inside, when the slots are known.
   */
  private claiming<T>(want: () => number, fn: (n: number) => Promise<T>): Promise<T> {
    return this.claimLane.run(() => this.claimStatement(want, fn))
  }

  private async claimStatement<T>(want: () => number, fn: (n: number) => Promise<T>): Promise<T> {
    const n = Math.max(0, want())
    const started = performance.now()
    const result = await fn(n)
    if (n > 0) this.claimAhead.claimTook(performance.now() - started)
    return result
  }

  /** A heartbeat: neither a claim nor a completion in flight. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.claimLane.run(() => this.completionLane.run(fn))
  }

  private status(): WorkerStatus {
    if (this.draining) return 'draining'
    return this.inflight.running > 0 ? 'busy' : 'idle'
  }

  private overCapacity(): boolean {
    const over = this.heartbeat.overCapacity(this.config)
    if (over && !this.overCapacityLogged)
      this.log.warn(
        {cpu: this.heartbeat.metrics?.cpu_percent, memory: this.heartbeat.metrics?.memory_percent},
        'over capacity: not claiming until resources free up',
      )
    this.overCapacityLogged = over
    return over
  }

  /**
   * Tasks whose lease this worker lost. A task canceled while held here (its run met its target, or was canceled) is
   * routine: logged at debug with the reason it was canceled for, counted apart. One this worker's own settlement
   * completed (committed before it heard back) lost nothing. Any other was fenced out (another worker has it now, or
   * this one was presumed dead): `warn` says so.
   */
  private async leaseLost(entries: InFlight[], warn: (entry: InFlight) => void): Promise<void> {
    const why = await whyLeasesLost(
      this.db,
      entries.map((e) => e.lease),
    ).catch(() => new Map())
    for (const entry of entries) {
      const {task} = entry
      const lost = why.get(task.id) ?? {why: 'fenced'}
      if (lost.why === 'settled') continue
      // Logged with the count, once per holding: the heartbeat and the refused settlement may both get here.
      if (lost.why === 'canceled') {
        if (this.inflight.canceled(entry))
          this.log.debug({task: task.id, kind: task.kind, reason: lost.reason}, `${this.kindName(task.kind)} ${task.id} canceled: ${lost.reason}`)
      } else if (this.inflight.fenced(entry)) warn(entry)
    }
  }

  /** Settling writes must not be lost to a database outage: retried until they go through (a lease that moved on meanwhile fences them out). */
  private retryDb<T>(fn: () => Promise<T>, deadlineMs = this.config.outageRetryMs): Promise<T> {
    return this.outage.retry(fn, deadlineMs)
  }
}
