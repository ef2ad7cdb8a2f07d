import type {RunProgress} from './run-views.js'
import {stageNamed} from './stages/index.js'

/** Companies researched before the qualification rate so far is taken to say anything about the rest. */
export const MIN_RESEARCHED_FOR_ETA = 10

/**
 * Seconds left at the pace so far, or null when there is nothing it could
 * stand on ("no estimate yet"): before MIN_RESEARCHED_FOR_ETA companies were
 * researched, while none has qualified (no rate to project), or when the run
 * is not running. The work left is counted in tasks: those queued or running,
 * the research the qualification rate says the target still needs beyond
 * what is queued, and a contact search per company still to select; the
 * pace is the tasks finished per second so far.
 */
export function etaSeconds(p: Pick<RunProgress, 'status' | 'pausedAt' | 'quantity' | 'companies' | 'tasks'>, elapsedS: number): number | null {
  if (p.status !== 'running' || p.pausedAt !== null) return null
  const c = p.companies
  const researched = c.qualified + c.disqualified + c.selected
  const qualified = c.qualified + c.selected
  if (researched < MIN_RESEARCHED_FOR_ETA || qualified === 0) return null
  const research = p.tasks[stageNamed('research').kind]
  const contacts = p.tasks[stageNamed('contacts').kind]
  const live = (t: RunProgress['tasks'][string] | undefined) => (t ? t.queued + t.running : 0)
  const finished = Object.values(p.tasks).reduce((n, t) => n + t.completed + t.failed, 0)
  if (finished === 0 || elapsedS <= 0) return null
  const wanted = Math.max(0, p.quantity - qualified)
  const moreResearch = Math.max(0, Math.ceil((wanted * researched) / qualified) - live(research))
  const moreContacts = Math.max(0, p.quantity - c.selected - live(contacts))
  const left = Object.values(p.tasks).reduce((n, t) => n + t.queued + t.running, 0) + moreResearch + moreContacts
  return left === 0 ? 0 : (left * elapsedS) / finished
}
