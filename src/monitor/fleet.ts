import type {Executor} from '../db/executor.js'
import {type RunInProgress, runsInProgress} from '../pipeline/run-views.js'
import {DEFAULT_CONFIG} from '../runtime/config.js'
import {listWorkers, type QueueStats, queueStats, type WorkerTypeStats, workerStats, type WorkerView} from '../runtime/stats.js'
import {sweep} from '../runtime/sweep.js'

/** The fleet at one moment: workers by type, each worker, the queue, runs in progress. */
export interface FleetStatus {
  at: string
  fleet: WorkerTypeStats[]
  workers: WorkerView[]
  queue: QueueStats[]
  runs: RunInProgress[]
}

/**
 * Reads the fleet (after the dead-worker sweep every worker runs too, so a
 * crashed worker shows as dead at once). `all` includes stopped workers.
 */
export async function fleetStatus(db: Executor, options: {all?: boolean} = {}): Promise<FleetStatus> {
  await sweep(db, DEFAULT_CONFIG)
  const [fleet, workers, queue, runs] = await Promise.all([workerStats(db), listWorkers(db, {all: options.all}), queueStats(db), runsInProgress(db)])
  return {at: new Date().toISOString(), fleet, workers, queue, runs}
}
