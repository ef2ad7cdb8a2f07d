import type {Transaction} from 'kysely'

import type {Executor} from '../../db/executor.js'
import type {Database, RunRow, RunStatus} from '../../db/schema.js'
import type {CallContext, ResearchProvider} from '../provider.js'
import type {RunOptions} from '../run-options.js'

export type StageName = 'discovery' | 'research' | 'contacts'

/** Every stage task carries its run. */
export interface RunPayload {
  runId: number
}

/** What a stage learns before its paid call. */
export interface PrepareContext<P> {
  db: Executor
  run: RunRow
  payload: P
  /** Which attempt of the task this is, and how many it has. */
  attempt: number
  maxAttempts: number
}

/** What a stage's write gets, inside the completion's transaction, with the run row locked. */
export interface WriteContext<P> {
  trx: Transaction<Database>
  run: RunRow
  payload: P
  /** The provider's name and whether it is simulated (recorded with what it found). */
  provider: {name: string; simulated: boolean}
  /** Enqueues tasks of the next stage in the pipeline; `key` makes each idempotent within the run. */
  enqueueNext(tasks: Array<{payload: RunPayload & Record<string, unknown>; key: string}>): Promise<void>
}

/** What progress lines are made of. */
export interface ProgressFacts {
  quantity: number
  companies: {candidate: number; qualified: number; disqualified: number; selected: number; total: number}
  contacts: number
}

/** What a run looks like when its advance rule decides. */
export interface RunFacts {
  run: RunRow
  options: RunOptions
  companies: {candidate: number; qualified: number; disqualified: number; selected: number}
  /** Tasks queued or running, per stage. */
  pending: Record<StageName, number>
}

/** The moves an advance rule can make (all inside the locked run's transaction). */
export interface AdvanceContext extends RunFacts {
  /**
   * Selects the best qualified companies up to the quantity and starts their contact search; no more discovery or
   * research; then the contacts rule decides (searches started early may be done already).
   */
  select(): Promise<RunStatus>
  /** Selects what qualified while the run is short of its target and starts their contact search; the run goes on. */
  selectQualified(): Promise<void>
  /** Starts another discovery round; false when discovery is exhausted or out of rounds. */
  discoverMore(): Promise<boolean>
  /** Puts up to `count` candidates whose research was stopped back in the queue. */
  reopenResearch(count: number): Promise<void>
  /** Selected companies with fewer than contacts_min decision makers so far (their search not done, or short). */
  shortOfContacts(): Promise<number>
  /** Drops selected companies with fewer than contacts_min decision makers (they give their place to the next best). */
  dropShortOfContacts(): Promise<void>
  setStage(stage: StageName): Promise<void>
  complete(): Promise<RunStatus>
  needsDecision(notes: string): Promise<RunStatus>
  /** Fresh company counts (after a move changed them). */
  recount(): Promise<RunFacts['companies']>
  /** Lets another stage's rule decide, on fresh facts. */
  continueWith(stage: StageName): Promise<RunStatus>
}

/**
 * One stage of the pipeline: its names, what it asks the provider, what it
 * writes, and its advance rule. The skeleton (skeleton.ts) does the rest: run
 * guard, usage capture, lock, fenced apply.
 */
export interface Stage<P extends RunPayload = RunPayload, In = unknown, Out = unknown> {
  /** The pipeline's word: discovery, research, contacts (runs.stage, progress lines). */
  name: StageName
  /** The runtime's word: the task kind (also accepted as a worker type). */
  kind: string
  /** One line for --help and docs. */
  summary: string
  /** Attempts of each task before it fails for good. */
  maxAttempts: number
  /** Higher runs first. */
  priority?: number
  /** What the paid call needs, or null when there is nothing to do (the run moved on, the company is gone). */
  prepare(ctx: PrepareContext<P>): Promise<In | null>
  /** The paid call. Throwing after it (e.g. too few results, try again) still records its usage. */
  ask(provider: ResearchProvider, input: In, ctx: CallContext & {prepared: PrepareContext<P>}): Promise<Out>
  /** Stored on the task row. */
  result(output: Out, input: In): unknown
  /** Writes the output; only while the run is running. */
  write(ctx: WriteContext<P>, input: In, output: Out): Promise<void>
  /** This stage's part of a progress line ("12 found, searching"); `inFlight` is its tasks queued or running. */
  describe(facts: ProgressFacts, inFlight: number): string
  /** Decides what happens next when the run is in this stage. */
  advance(ctx: AdvanceContext): Promise<RunStatus>
}
