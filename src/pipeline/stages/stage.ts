import type {RawBuilder, Transaction} from 'kysely'
import type {z} from 'zod'

import type {Executor} from '../../db/executor.js'
import type {Database, RunRow, RunStatus} from '../../db/schema.js'
import type {CallContext, Evidence, ResearchProvider} from '../provider.js'
import type {RunOptions} from '../run-options.js'

/** A stage's name in the registry (stages/index.ts): discovery, research, contacts, ... */
export type StageName = string

/**
 * When a stage's tasks start, one per what it names:
 * - `run`: one per run (at its creation, and per further round: the payload's `round`);
 * - `discovered`: one per company a `run` stage found (the payload's `companyId`);
 * - `selected`: one per company selected for delivery (the payload's `companyId`); the run completes when every
 *   `selected` stage is done with every selected company.
 */
export type Trigger = 'run' | 'discovered' | 'selected'

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

/** One task to start: its payload, and what makes it one of a kind in its run (the idempotency key's last part). */
export interface TaskToStart {
  payload: RunPayload & Record<string, unknown>
  key: string
}

/** What a stage's write gets, inside the completion's transaction (the run row is not locked). */
export interface WriteContext<P> {
  trx: Transaction<Database>
  run: RunRow
  payload: P
  /** The provider's name and whether it is simulated (recorded with what it found). */
  provider: {name: string; simulated: boolean}
  /** Starts the stages triggered by companies this one found (`discovered`): one task each per company. */
  discovered(companyIds: number[]): Promise<void>
  /** Stores what this stage found about a company (its row in company_facts; written again, replaced). */
  saveFact(companyId: number, fact: {value: unknown; evidence: unknown}): Promise<void>
}

/** What a stage found about one company, as stored (company_facts): its value and the evidence for it. */
export interface CompanyFact {
  value: unknown
  evidence: unknown
}

/** What progress lines are made of. */
export interface ProgressFacts {
  quantity: number
  companies: {candidate: number; qualified: number; disqualified: number; selected: number; total: number}
  contacts: number
}

/** What a progress bar is computed from. */
export interface PercentFacts {
  run: {status: RunStatus; stage: string; quantity: number; oversample: number}
  companies: ProgressFacts['companies']
  /** Selected companies this stage is done with (`selectedDone`). */
  done: number
  /** The run has moved past this stage (its `advance` rule no longer decides). */
  past: boolean
}

/** What a run looks like when its advance rule decides. */
export interface RunFacts {
  run: RunRow
  options: RunOptions
  companies: {candidate: number; qualified: number; disqualified: number; selected: number}
  /** Tasks queued or running, per stage the run has (opted-in stages only). */
  pending: Record<StageName, number>
  /** Tasks queued or running of the stages with this trigger, together. */
  pendingFor(trigger: Trigger): number
}

/** The moves an advance rule can make (all inside the locked run's transaction), in the words of triggers, not stages. */
export interface AdvanceContext extends RunFacts {
  /**
   * Selects the best qualified companies up to the quantity and starts their `selected` stages; stops the `run` and
   * `discovered` stages; the run goes to its first `selected` stage, whose rule decides now (work started early may
   * be done already).
   */
  select(): Promise<RunStatus>
  /** Selects what qualified while the run is short of its target and starts their `selected` stages; the run goes on. */
  selectQualified(): Promise<void>
  /** Starts another round of the `run` stages; false when discovery is exhausted or out of rounds. */
  discoverMore(): Promise<boolean>
  /** Puts up to `count` candidates whose `discovered` stages were stopped back in the queue. */
  reopenCandidates(count: number): Promise<void>
  /** Selected companies that do not meet a stage's `requires` (yet: their work may not be done). */
  shortOfRequirements(): Promise<number>
  /** Drops selected companies that do not meet a stage's `requires` (they give their place to the next best). */
  dropShortOfRequirements(): Promise<void>
  setStage(stage: StageName): Promise<void>
  complete(): Promise<RunStatus>
  needsDecision(notes: string): Promise<RunStatus>
  /** Fresh company counts (after a move changed them). */
  recount(): Promise<RunFacts['companies']>
  /** Lets another stage's rule decide, on fresh facts. */
  continueWith(stage: StageName): Promise<RunStatus>
}

/** A column a stage adds to the companies export and the run page, from the fact it stored for a company. */
export interface StageColumn {
  /** The CSV/JSON column's name. */
  name: string
  /** What the run page calls it; a column without one is the export's only (the page shows `evidence` and `note` instead). */
  label?: string
  value(fact: CompanyFact | undefined): string | null
  /** The page and quote that show it, for the run page. */
  evidence?(fact: CompanyFact | undefined): Evidence[]
  /** Why it is what it is (why unknown), for the run page. */
  note?(fact: CompanyFact | undefined): string | null
}

/**
 * One stage of the pipeline, declared: what starts it, what it asks the
 * provider (its prompt and schema, in `ask`), what its deterministic checks
 * decide, what it writes, how far it has come and what it adds to exports.
 * The skeleton (skeleton.ts) does the rest: run guard, usage capture, the
 * one enqueue path, fenced apply; advance.ts applies the triggers.
 */
export interface Stage<P extends RunPayload = RunPayload, In = unknown, Out = unknown> {
  /** The pipeline's word: discovery, research, contacts (runs.stage, progress lines, company_facts.stage). */
  name: StageName
  /** The runtime's word: the task kind (also accepted as a worker type). */
  kind: string
  /** One line for --help and docs. */
  summary: string
  trigger: Trigger
  /** Off unless a run asks for it: `--<name>` on rvx orchestrate and rvx runs resume, with this summary. */
  optIn?: {summary: string}
  /** Attempts of each task before it fails for good. */
  maxAttempts: number
  /** A run's own setting of the attempts, when it has one. */
  attemptsFor?(options: RunOptions): number
  /** Higher runs first. */
  priority?: number
  /** Keeps paid answers in research_cache under its name, reused within the run's --cache-ttl. */
  cached?: boolean
  /** What the paid call needs, or null when there is nothing to do (the run moved on, the company is gone). */
  prepare(ctx: PrepareContext<P>): Promise<In | null>
  /** The paid call (the provider's agent with this stage's prompt and schema) and the checks. Throwing after it still records its usage. */
  ask(provider: ResearchProvider, input: In, ctx: CallContext & {prepared: PrepareContext<P>}): Promise<Out>
  /** Stored on the task row. */
  result(output: Out, input: In): unknown
  /** Writes the output; only while the run is running (or stopped at its budget). */
  write(ctx: WriteContext<P>, input: In, output: Out): Promise<void>
  /** This stage's part of a progress line ("12 found, searching"); `inFlight` is its tasks queued or running. */
  describe(facts: ProgressFacts, inFlight: number): string
  /** How far it has come, 0-100 (a completed run is 100 everywhere). */
  percent(facts: PercentFacts): number
  /**
   * SQL (company alias `s`, run alias `r`): the stage is done with selected company `s`; counted for `percent`.
   * By default: it stored a fact about `s`.
   */
  selectedDone?(): RawBuilder<unknown>
  /** What a selected company must have once this stage is done with it (SQL, company alias `c`), else it is dropped for `reason`. */
  requires?: {
    met(run: RunRow): RawBuilder<unknown>
    reason(run: RunRow): string
    /** SQL (company alias `c`): the disqualified_by key of a company dropped for it (see drops.ts). */
    key(run: RunRow): RawBuilder<unknown>
  }
  /** Columns it adds to exports and the run page. */
  columns?: readonly StageColumn[]
  /** Decides what happens next while the run is in this stage (stages that never lead a run have none). */
  advance?(ctx: AdvanceContext): Promise<RunStatus>
}

/**
 * A stage's answer schema, built with zod when a stage first asks for it: zod is loaded then, not by every command
 * that reads the registry (runs list, workers status).
 */
export function lazySchema<T>(build: (zod: typeof z) => T): () => Promise<T> {
  let schema: T | undefined
  return async () => (schema ??= build((await import('zod')).z))
}

/** a of b as a whole percentage, at most 100 (0 of nothing is 0): for `percent`. */
export const pct = (a: number, b: number): number => (b <= 0 ? 0 : Math.min(100, Math.round((a / b) * 100)))
