/**
 * Every timing and limit of the runtime, in one place. Defaults are the
 * documented behaviour; each can be overridden per Worker (and per task
 * kind where it makes sense).
 */
export interface RuntimeConfig {
  /** How often a worker process heartbeats (and renews all its leases). */
  heartbeatIntervalMs: number
  /** No heartbeat for this long => the worker is dead, whatever else is known. */
  deadAfterMs: number
  /**
   * A worker whose database session is gone (its liveness lock released: the
   * process died) and whose last heartbeat is older than this is dead at once,
   * without waiting for deadAfterMs.
   */
  sessionGraceMs: number
  /** Lease length; renewed by every heartbeat, so only a silent worker's leases run out (the backstop). */
  leaseMs: number
  /** How often each worker tries to run the sweep (only one at a time gets to). */
  sweepIntervalMs: number
  /** Safety-net poll when no notification arrives. */
  pollIntervalMs: number
  /** Crashes (worker died under the task) before a task is quarantined. */
  maxCrashes: number
  /** Default attempts for tasks that do not say (failures, not crashes or snoozes). */
  maxAttempts: number
  /** In-lease retries of transient errors: tries after the first, and their backoff. */
  transientRetries: number
  transientBackoff: BackoffPolicy
  /** Backoff between attempts across leases. */
  attemptBackoff: BackoffPolicy
  /**
   * Rate limits (429): a server's Retry-After is held between minMs and maxMs;
   * without a usable one (missing, 0) the task backs off by its snooze count.
   * After maxSnoozes the task fails (a person decides: quota, concurrency).
   */
  snooze: SnoozePolicy
  /** While the database is away: between reconnects and claim attempts, and between retries of a settling write. */
  reconnectBackoff: BackoffPolicy
  writeRetryBackoff: BackoffPolicy
  /**
   * How long a settling write (complete, fail, snooze) is retried while the
   * database is away. Its lease is not taken meanwhile (the sweep counts no
   * silence while the server is down), and a result whose lease did move on
   * is fenced out, never applied.
   */
  outageRetryMs: number
  /** Graceful stop: how long in-flight tasks may run before they are released. */
  graceMs: number
  /** Stop claiming while the machine is above these (null: no limit). */
  maxCpuPercent: number | null
  maxMemoryPercent: number | null
  /** At most this many tasks claimed ahead of free slots (only workers whose tasks are shorter than a claim use any). */
  maxClaimAhead: number
}

export interface SnoozePolicy {
  minMs: number
  maxMs: number
  backoff: BackoffPolicy
  maxSnoozes: number
}

export interface BackoffPolicy {
  baseMs: number
  maxMs: number
  /** Fraction of the delay randomized (0.25 => delay x [0.75, 1.25]). */
  jitter: number
}

export const DEFAULT_CONFIG: RuntimeConfig = {
  heartbeatIntervalMs: 5000,
  deadAfterMs: 15_000,
  sessionGraceMs: 2000,
  leaseMs: 30_000,
  sweepIntervalMs: 4000,
  pollIntervalMs: 5000,
  maxCrashes: 3,
  maxAttempts: 5,
  transientRetries: 3,
  transientBackoff: {baseMs: 1000, maxMs: 4000, jitter: 0.25},
  attemptBackoff: {baseMs: 5000, maxMs: 10 * 60_000, jitter: 0.25},
  snooze: {minMs: 1000, maxMs: 15 * 60_000, backoff: {baseMs: 2000, maxMs: 5 * 60_000, jitter: 0.25}, maxSnoozes: 30},
  reconnectBackoff: {baseMs: 250, maxMs: 2000, jitter: 0.2},
  writeRetryBackoff: {baseMs: 200, maxMs: 2000, jitter: 0.2},
  outageRetryMs: 10 * 60_000,
  graceMs: 30_000,
  maxCpuPercent: null,
  maxMemoryPercent: 95,
  // Enough to outlast a claim's flight at tens of thousands of short tasks a second: 1,000 (refilled at 500 left) let
  // the slots run dry during each claim; 3,000 made parsing each answer a stall of its own.
  maxClaimAhead: 2000,
}

export function resolveConfig(overrides: Partial<RuntimeConfig> = {}): RuntimeConfig {
  const config = {...DEFAULT_CONFIG, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined))} as RuntimeConfig
  if (config.leaseMs <= config.heartbeatIntervalMs)
    throw new Error(`leaseMs (${config.leaseMs}) must exceed heartbeatIntervalMs (${config.heartbeatIntervalMs})`)
  if (config.deadAfterMs <= config.heartbeatIntervalMs)
    throw new Error(`deadAfterMs (${config.deadAfterMs}) must exceed heartbeatIntervalMs (${config.heartbeatIntervalMs})`)
  return config
}

/** Advisory-lock classes (first key of the two-key form) so rvx's locks never collide with anyone else's. */
export const LOCK_CLASS_SWEEP = 0x7276_7801
export const LOCK_CLASS_WORKER = 0x7276_7802
export const LOCK_CLASS_MONITOR = 0x7276_7803
export const NOTIFY_CHANNEL = 'rvx_tasks'
/** Payload: the id of a worker whose leases were revoked (its tasks canceled): it checks its leases at once. */
export const REVOKED_CHANNEL = 'rvx_revoked'
