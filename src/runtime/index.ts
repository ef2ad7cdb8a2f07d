/**
 * rvx's leased-task runtime: a generic, SQL-first job queue on PostgreSQL with
 * fenced leases, retries and snoozes, heartbeats with resource metrics,
 * dead-worker recovery in seconds and capacity-aware routing. It knows task
 * kinds only by name; the pipeline is its first user.
 */
export {backoffMs, sleep} from './backoff.js'
export {DEFAULT_CONFIG, resolveConfig, type BackoffPolicy, type RuntimeConfig} from './config.js'
export {classifyError, PermanentError, ReleaseError, retryAfterMs, SnoozeError, TransientError} from './errors.js'
export {TaskRegistry, type HandlerOutcome, type KindOptions, type TaskContext, type TaskHandler} from './handlers.js'
export {claimTasks, completeTask, completeTasks, failTask, releaseTask, snoozeTask, type ClaimedTask, type ClaimFilter, type Lease} from './lease.js'
export {type Logger, silentLogger} from './logger.js'
export {cancelTasks, enqueue, getTask, retryTask, type EnqueueSpec, type Enqueued, type TaskRequirements} from './queue.js'
export {defaultWorkerId, workerLockKey} from './registry.js'
export {ResourceSampler, type ResourceMetrics} from './resources.js'
export {sweep, type SweepResult} from './sweep.js'
export {Worker, type WorkerOptions, type WorkerSummary} from './worker.js'
export {listWorkers, pruneWorkers, queueStats, workerStats, type QueueStats, type WorkerTypeStats, type WorkerView} from './stats.js'
