import {stageWord, workerStages} from '../pipeline/stage-words.js'
import {formatAge} from '../shared/duration.js'
import {formatCost, formatRunCost} from '../shared/money.js'

/** How values read on the dashboard (the same words as the terminal tables where there are some). */

export {formatAge, formatCost, formatRunCost, stageWord, workerStages}

/** "2024-05-01 12:00:03 UTC". */
export function formatTime(at: Date | null | undefined): string {
  return at ? `${at.toISOString().replace('T', ' ').slice(0, 19)} UTC` : '-'
}

/** Criteria as "pms: Buildium, state: TX" (values that are lists joined). */
export function formatCriteria(criteria: unknown): string {
  if (!criteria || typeof criteria !== 'object') return '-'
  return Object.entries(criteria as Record<string, unknown>)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)}`)
    .join('; ')
}

export function formatGb(v: unknown): string {
  return typeof v === 'number' ? `${v.toFixed(1)} GB` : '-'
}
