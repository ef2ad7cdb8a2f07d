import type {RunRow} from '../db/schema.js'

/** How a run goes about its work; stored with the run (runs.options). */
export interface RunOptions {
  /** Candidates discovered per wanted company (default 2). */
  oversample: number
  /** Discovery rounds before the run asks for a decision (default 5). */
  maxDiscoveryRounds: number
  /** Attempts of each contact task before a company counts as having nobody findable. */
  contactAttempts: number
  simulation?: unknown
  outputDir?: string
  notifyEmail?: string
  /** Set when a discovery round found nothing new. */
  discoveryExhausted?: boolean
  /** Criteria (and site) whose "unknown" verdict still qualifies a company (--accept-unknown). */
  acceptUnknown?: string[]
  /** Research and contact searches ignore the cache (--fresh); they still fill it. */
  fresh?: boolean
  /** How old a cached answer may be to be reused (--cache-ttl). */
  cacheTtlMs?: number
  /** Domains delivered by earlier completed runs may be delivered again (--include-delivered). */
  includeDelivered?: boolean
  /** Companies researched by a paid call (not from the cache) before the yield alarm judges the run (default 30; 0: never). */
  yieldCheckAfter?: number
  /** Resumed after its yield alarm: it goes on unjudged. */
  yieldAccepted?: boolean
  /** Opt-in stages the run asked for (--enrich, ...), by name. */
  stages?: string[]
  /** Domains kept out when the run was created: delivered by earlier runs, and from --exclude files. */
  keptOut?: {delivered: number; excluded: number}
}

export const DEFAULT_RUN_OPTIONS: RunOptions = {oversample: 2, maxDiscoveryRounds: 5, contactAttempts: 2}

export function runOptions(run: RunRow): RunOptions {
  return {...DEFAULT_RUN_OPTIONS, ...(run.options as Partial<RunOptions>)}
}

/** The scope that ties a run's tasks together (workers may be limited to it). */
export function runScope(runId: number): string {
  return `run:${runId}`
}

/** The run a task scope belongs to, or null for a scope that is not a run's. */
export function runOfScope(scope: string | null): number | null {
  const m = /^run:(\d+)$/.exec(scope ?? '')
  return m ? Number(m[1]) : null
}
