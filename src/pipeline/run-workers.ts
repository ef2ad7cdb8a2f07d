import os from 'node:os'

import type {Executor} from '../db/executor.js'
import {DEFAULT_CONFIG} from '../runtime/config.js'
import {workersForScope} from '../runtime/scopes.js'
import {runScope} from './run-options.js'
import {STAGES, type StageName} from './stages/index.js'

export interface RunWorkers {
  /** Live worker processes that take some of the run's tasks. */
  processes: number
  /** Stages none of them takes. */
  missing: StageName[]
}

/** The worker processes live now that could do a run's tasks (this process's own left out when `exceptThisProcess`). */
export async function workersForRun(db: Executor, runId: number, o: {exceptThisProcess?: boolean} = {}): Promise<RunWorkers> {
  const {processes, kinds} = await workersForScope(db, {
    scope: runScope(runId),
    kinds: STAGES.map((s) => s.kind),
    deadAfterMs: DEFAULT_CONFIG.deadAfterMs,
    except: o.exceptThisProcess ? {host: os.hostname(), pid: process.pid} : undefined,
  })
  return {processes, missing: STAGES.filter((s) => !kinds.has(s.kind)).map((s) => s.name)}
}

/** "2 workers are live" / "1 worker is live but none takes contacts tasks (rvx worker contacts)" / "no worker is live (rvx worker all)". */
export function describeRunWorkers(w: RunWorkers): string {
  if (w.processes === 0) return 'no worker is live: start some with rvx worker all'
  const live = `${w.processes} worker${w.processes === 1 ? ' is' : 's are'} live`
  return w.missing.length === 0 ? live : `${live} but none takes ${w.missing.join(', ')} tasks: start one with rvx worker ${w.missing.join(' ')}`
}
