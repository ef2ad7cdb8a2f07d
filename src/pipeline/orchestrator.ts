import type {Kysely} from 'kysely'

import type {SessionLimits} from '../db/connect.js'
import {isTransientDatabaseError} from '../db/connection-errors.js'
import type {Database, RunStatus} from '../db/schema.js'
import {sleep} from '../runtime/backoff.js'
import {TaskRegistry} from '../runtime/handlers.js'
import type {Logger} from '../runtime/logger.js'
import {Worker, type WorkerSummary} from '../runtime/worker.js'
import type {RuntimeConfig} from '../runtime/config.js'
import {advanceRun} from './advance.js'
import {runScope} from './run-options.js'
import {type RunProgress, runProgress} from './run-views.js'
import {stageWord} from './stage-words.js'
import {STAGE_KINDS} from './stages/index.js'
import type {SpendJournal} from './spend-journal.js'
import {type ProviderFactory, registerPipeline} from './stages/skeleton.js'

export interface DriveOptions {
  db: Kysely<Database>
  /** Where paid calls are written down before they are recorded (see SpendJournal). */
  journal?: SpendJournal
  /** Bounds of the workers' database sessions. */
  limits?: SessionLimits
  databaseUrl: string
  runId: number
  providerFor: ProviderFactory
  /** In-process workers per task kind. */
  concurrency: number
  signal: AbortSignal
  /** Aborting this forces the workers to stop at once (their unfinished tasks are released). */
  forceSignal?: AbortSignal
  onProgress?: (progress: RunProgress) => void
  timeoutMs?: number
  logger?: Logger
  config?: Partial<RuntimeConfig>
  version?: string
}

export interface DriveResult {
  status: RunStatus
  /** Why driving stopped short of an end state, if it did. */
  interrupted: 'signal' | 'timeout' | null
  workers: WorkerSummary[]
  progress: RunProgress
}

/**
 * Drives one run to an end state with in-process workers of all three kinds
 * (the same runtime as `rvx worker`: external workers may join). Re-checks
 * the run every few seconds as a safety net, so a task that failed or was
 * quarantined cannot leave it waiting forever. An abort drains the workers
 * gracefully and leaves the run resumable.
 */
export async function driveRun(o: DriveOptions): Promise<DriveResult> {
  const registry = registerPipeline(new TaskRegistry(), o.providerFor, {journal: o.journal})
  const stop = new AbortController()
  const workers = STAGE_KINDS.map(
    (kind) =>
      new Worker({
        databaseUrl: o.databaseUrl,
        registry,
        kinds: [kind],
        concurrency: o.concurrency,
        scope: runScope(o.runId),
        logger: o.logger,
        config: o.config,
        version: o.version,
        limits: o.limits,
        kindName: stageWord,
        onDatabaseBack: o.journal ? () => void o.journal?.reconcile(o.db).catch(() => {}) : undefined,
      }),
  )
  const running = workers.map((w) => w.start({signal: stop.signal}))
  o.forceSignal?.addEventListener('abort', () => {
    for (const w of workers) w.stop({force: true})
  })
  let interrupted: DriveResult['interrupted'] = null
  const deadline = o.timeoutMs ? Date.now() + o.timeoutMs : Number.POSITIVE_INFINITY
  let lastAdvance = Date.now()
  let progress = await runProgress(o.db, o.runId)
  try {
    while (progress.status === 'running') {
      if (o.signal.aborted) {
        interrupted = 'signal'
        break
      }

      if (Date.now() > deadline) {
        interrupted = 'timeout'
        break
      }

      await sleep(500, o.signal)
      if (Date.now() - lastAdvance > 5000) {
        lastAdvance = Date.now()
        // A safety net: when the run is busy (a lock wait ran out) or the database is away, the next round tries again.
        await advanceRun(o.db, o.runId).catch((error: unknown) => {
          if (!isTransientDatabaseError(error)) throw error
        })
      }

      progress = await runProgress(o.db, o.runId)
      o.onProgress?.(progress)
    }
  } finally {
    stop.abort()
  }

  const summaries = await Promise.allSettled(running)
  progress = await runProgress(o.db, o.runId)
  return {status: progress.status, interrupted, workers: summaries.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])), progress}
}
