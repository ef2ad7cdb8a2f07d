import stringWidth from 'string-width'

import {etaSeconds} from '../pipeline/eta.js'
import {shownStatus} from '../pipeline/pause.js'
import type {RunProgress, RunSummary} from '../pipeline/run-views.js'
import {stageOfKind, STAGES} from '../pipeline/stages/index.js'
import type {ScopeEvent} from '../runtime/scopes.js'
import {formatAge} from '../shared/duration.js'
import {formatCost, formatRunCost} from '../shared/money.js'
import {printable} from './output.js'

/** What one look at a run gives `rvx runs watch`. */
export interface RunLook {
  progress: RunProgress
  summary: RunSummary
  /** The latest events, newest first. */
  events: ScopeEvent[]
}

const BAR = 20

/** A stage's progress bar: "[########------------]  40%". */
function bar(percent: number): string {
  const full = Math.round((Math.max(0, Math.min(100, percent)) / 100) * BAR)
  return `[${'#'.repeat(full)}${'-'.repeat(BAR - full)}] ${String(percent).padStart(3)}%`
}

/** "about 1m 30s" at the pace so far, or "no estimate yet". */
export function describeEta(look: Pick<RunLook, 'progress' | 'summary'>): string {
  const eta = etaSeconds(look.progress, look.summary.elapsedS)
  return eta === null ? 'no estimate yet' : `about ${formatAge(eta)}`
}

/** One task event as a line: "00:41:02 research #67 completed (w-a)" with its reason, if any. */
export function describeEvent(e: ScopeEvent): string {
  const stage = stageOfKind(e.kind)?.name ?? e.kind
  const reason = e.reason ? `: ${e.reason}` : ''
  return `${e.at.toISOString().slice(11, 19)} ${stage} #${e.taskId} ${e.event}${e.workerId ? ` (${e.workerId})` : ''}${reason}`
}

/**
 * The live view of a run, one line per fact, every line cut to `width` (with
 * …): its status, per-stage bars with what each has done and has in flight,
 * selected against the target, cost and what slowed the calls, the ETA, and
 * the last few events.
 */
export function renderRunLook(look: RunLook, width: number | undefined): string {
  const p = look.progress
  const s = look.summary
  const inFlight = (kind: string) => (p.tasks[kind] ? p.tasks[kind].queued + p.tasks[kind].running : 0)
  const stages = runStages(look)
  const name = Math.max(...stages.map((st) => st.name.length))
  const lines = [
    `run ${p.id} ${shownStatus(p.status, p.pausedAt !== null)} · stage ${p.stage} · ${formatAge(s.elapsedS)}${p.status === 'running' ? ` · ETA ${describeEta(look)}` : ''}`,
    ...stages.map((st) => `${st.name.padEnd(name)}  ${bar(s.percent[st.name])}  ${st.describe(p, inFlight(st.kind))}`),
    `selected ${p.companies.selected} of ${p.quantity} · ${p.companies.qualified} qualified waiting · ${p.companies.disqualified} dropped · ${p.contacts} contacts`,
    `cost ${formatRunCost(p.usage.costUsd, p.simulated)}${p.maxUsd === null ? '' : ` of ${formatCost(p.maxUsd)}`} · ${p.usage.calls} calls · ${p.usage.rateLimited} rate-limited (429) · ${formatAge(p.usage.quotaWaitS)} quota wait`,
    ...(p.pausedAt ? [`paused: no worker takes its tasks (rvx runs resume ${p.id} goes on)`] : []),
    ...(look.events.length > 0 ? ['last events:', ...look.events.map((e) => `  ${describeEvent(e)}`)] : []),
  ]
  return lines.map((line) => cut(printable(line), width)).join('\n')
}

/** The run's stages: those it has bars for (an opt-in stage it did not ask for has none). */
function runStages(look: Pick<RunLook, 'summary'>): typeof STAGES {
  return STAGES.filter((st) => look.summary.percent[st.name] !== undefined)
}

/** The plain one-liner for a pipe, printed when it changes; cut to `width` when one is given (COLUMNS). */
export function runLookLine(look: RunLook, width: number | undefined): string {
  const p = look.progress
  const stages = runStages(look)
    .map((st) => `${st.name} ${look.summary.percent[st.name]}%`)
    .join(', ')
  const eta = p.status === 'running' ? `; ETA ${describeEta(look)}` : ''
  return cut(
    printable(
      `run ${p.id} ${shownStatus(p.status, p.pausedAt !== null)} (${p.stage}): ${stages}; selected ${p.companies.selected}/${p.quantity}, ${p.contacts} contacts, ${formatRunCost(p.usage.costUsd, p.simulated)}, ${p.usage.rateLimited} rate-limited${eta}`,
    ),
    width,
  )
}

/** A line no wider than `width` (cut with …); as it is without one. */
export function cut(line: string, width: number | undefined): string {
  if (width === undefined || stringWidth(line) <= width) return line
  let out = line
  while (out.length > 0 && stringWidth(out) > width - 1) out = out.slice(0, -1)
  return `${out}…`
}
