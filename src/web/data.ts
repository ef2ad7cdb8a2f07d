import type {Executor} from '../db/executor.js'
import type {RunStatus} from '../db/schema.js'
import {type FleetStatus, fleetStatus} from '../monitor/fleet.js'
import {type OpenAlert, openAlerts} from '../monitor/conditions.js'
import {type Lead, type LeadContact, leadContacts, runLeads} from '../pipeline/leads.js'
import {runScope} from '../pipeline/run-options.js'
import {runCountsByStatus, type RunProgress, runProgress, type RunSummary, runsOverview} from '../pipeline/run-views.js'
import {STAGES} from '../pipeline/stages/index.js'
import {spendPerMinute, type SpendPerMinute} from '../pipeline/usage.js'
import {type ScopeEvent, scopeEvents, type ScopeProblem, scopeProblems} from '../runtime/scopes.js'
import {completionsPerMinute, type PerMinute} from '../runtime/stats.js'
import {RvxError} from '../shared/errors.js'

/**
 * What the pages show, read through the library functions of the floors that
 * own the tables (never SQL here). Each source is named by a key; the live
 * hub reads each key once per interval however many viewers want it.
 *
 * To show more on a page (per-criterion verdicts, email status, spend and
 * cache figures), add the library call to the loader here and a part to
 * that page's template.
 */

/** How much one page shows: runs and a run's companies a page at a time (?p=, ?selected=, ?disqualified=); the latest events, problems and alerts. */
export const LIMITS = {runs: 100, selected: 100, qualified: 100, disqualified: 100, events: 40, problems: 20, alerts: 50}

/** The highest page number a link may ask for (a page beyond the last is simply empty). */
export const MAX_PAGE = 100_000

/** Which page of a run's company lists a viewer looks at (1: the first). */
export interface RunPages {
  selected: number
  disqualified: number
}

/** The last hour, by minute. */
export const CHART_MINUTES = 60

export {RUN_STATUSES} from '../pipeline/run-listing.js'

export type SourceKey = string

export interface RunsData {
  status: RunStatus | null
  /** Which page of the list this is (LIMITS.runs a page). */
  page: number
  runs: RunSummary[]
  counts: Record<string, number>
}

export interface RunData {
  summary: RunSummary
  progress: RunProgress
  /** Selected companies; while none are, the best qualified so far. */
  leads: Lead[]
  leadsAreSelected: boolean
  contacts: Map<number, LeadContact[]>
  disqualified: Lead[]
  events: ScopeEvent[]
  problems: ScopeProblem[]
  pages: RunPages
}

export interface FleetData {
  fleet: FleetStatus
  alerts: OpenAlert[]
}

export interface ChartData {
  minutes: number
  /** Stage names in pipeline order, then "other" for spend outside any stage's task. */
  series: string[]
  completions: Array<{ago: number; series: string; value: number}>
  spend: Array<{ago: number; series: string; value: number}>
}

export const runsKey = (status: RunStatus | null, page = 1): SourceKey => `runs:${status ?? 'all'}${page > 1 ? `:${page}` : ''}`
export const runKey = (id: number, pages: RunPages = {selected: 1, disqualified: 1}): SourceKey =>
  `run:${id}${pages.selected > 1 || pages.disqualified > 1 ? `:${pages.selected}:${pages.disqualified}` : ''}`
export const FLEET_KEY: SourceKey = 'fleet'
export const CHART_KEY: SourceKey = 'chart'

/** Reads one source. */
export async function loadSource(db: Executor, key: SourceKey): Promise<unknown> {
  if (key === FLEET_KEY) return loadFleet(db)
  if (key === CHART_KEY) return loadChart(db)
  const runs = /^runs:(\w+)(?::(\d+))?$/.exec(key)
  if (runs) return loadRuns(db, runs[1] === 'all' ? null : (runs[1] as RunStatus), Number(runs[2] ?? 1))
  const run = /^run:(\d+)(?::(\d+):(\d+))?$/.exec(key)
  if (run) return loadRun(db, Number(run[1]), {selected: Number(run[2] ?? 1), disqualified: Number(run[3] ?? 1)})
  throw new Error(`unknown dashboard source ${key}`)
}

export async function loadRuns(db: Executor, status: RunStatus | null, page = 1): Promise<RunsData> {
  const [runs, counts] = await Promise.all([
    runsOverview(db, {status: status ?? undefined, limit: LIMITS.runs, offset: (page - 1) * LIMITS.runs}),
    runCountsByStatus(db),
  ])
  return {status, page, runs, counts}
}

export async function loadRun(db: Executor, id: number, pages: RunPages = {selected: 1, disqualified: 1}): Promise<RunData> {
  const [summary] = await runsOverview(db, {id, limit: 1})
  if (!summary) throw new RvxError(`run ${id} does not exist`, {code: 'run_not_found'})
  const scope = runScope(id)
  const [progress, selected, disqualified, events, problems] = await Promise.all([
    runProgress(db, id),
    runLeads(db, id, 'selected', LIMITS.selected, (pages.selected - 1) * LIMITS.selected),
    runLeads(db, id, 'disqualified', LIMITS.disqualified, (pages.disqualified - 1) * LIMITS.disqualified),
    scopeEvents(db, scope, LIMITS.events),
    scopeProblems(db, scope, LIMITS.problems),
  ])
  // While none is selected, the best qualified so far (a page of them as well).
  const leadsAreSelected = summary.companies.selected > 0
  const leads = leadsAreSelected ? selected : await runLeads(db, id, 'qualified', LIMITS.qualified, (pages.selected - 1) * LIMITS.qualified)
  const contacts = await leadContacts(
    db,
    leads.map((l) => l.id),
  )
  return {summary, progress, leads, leadsAreSelected, contacts, disqualified, events, problems, pages}
}

export async function loadFleet(db: Executor): Promise<FleetData> {
  const fleet = await fleetStatus(db)
  return {fleet, alerts: await openAlerts(db, LIMITS.alerts)}
}

export async function loadChart(db: Executor): Promise<ChartData> {
  const [done, spent] = await Promise.all([completionsPerMinute(db, CHART_MINUTES), spendPerMinute(db, CHART_MINUTES)])
  const nameOf = (kind: string | null) => STAGES.find((s) => s.kind === kind)?.name ?? 'other'
  return {
    minutes: CHART_MINUTES,
    series: [...STAGES.map((s) => s.name), 'other'],
    completions: done.map((d: PerMinute) => ({ago: d.ago, series: nameOf(d.kind), value: d.count})),
    spend: spent.map((s: SpendPerMinute) => ({ago: s.ago, series: nameOf(s.kind), value: s.usd})),
  }
}
