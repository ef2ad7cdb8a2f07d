import type {RunProgress} from '../pipeline/run-views.js'
import {STAGES} from '../pipeline/stages/index.js'
import type {RunUsage} from '../pipeline/usage.js'
import {formatAge} from '../shared/duration.js'
import {formatCost, formatRunCost} from '../shared/money.js'

/** One line of run progress: what each stage has done and what is in flight. */
export function describeProgress(p: RunProgress): string {
  const inFlight = (kind: string) => p.tasks[kind].queued + p.tasks[kind].running
  // The run's stages: those it has tasks of (an opt-in stage it did not ask for has none).
  const stages = STAGES.filter((s) => p.tasks[s.kind])
  return [`run ${p.id} ${p.status} (${p.stage})`, ...stages.map((s) => `${s.name}: ${s.describe(p, inFlight(s.kind))}`)].join(' · ')
}

/** What a run's model calls cost, per lead (company delivered), against its budget: "$0.4100 for 10 leads ($0.0410 per lead) of a $5.00 budget". */
export function describeSpend(p: Pick<RunProgress, 'usage' | 'maxUsd' | 'costPerLead' | 'simulated'> & {companies: {delivered: number}}): string {
  const perLead = p.costPerLead === null ? '' : ` (${formatCost(p.costPerLead)} per lead)`
  const budget = p.maxUsd === null ? '' : ` of a ${formatCost(p.maxUsd)} budget`
  return `${formatRunCost(p.usage.costUsd, p.simulated)} for ${p.companies.delivered} leads${perLead}${budget}`
}

/** Contacts delivered, and those found for companies dropped later (not delivered): "47 (3 more found for companies dropped later)". */
export function describeContacts(p: Pick<RunProgress, 'contacts' | 'contactsDropped'>): string {
  return p.contactsDropped > 0 ? `${p.contacts} (${p.contactsDropped} more found for companies dropped later)` : String(p.contacts)
}

/** The model calls behind it: calls that did work, tokens, 429s, time spent waiting for the quota, cache hits. */
export function describeCalls(u: RunUsage): string {
  const estimated = u.estimated > 0 ? ` (${u.estimated} calls' usage estimated: the provider's counts were not counts)` : ''
  return `${u.calls} calls, ${u.inputTokens} in / ${u.outputTokens} out tokens${estimated}, ${u.rateLimited} rate-limited (429), ${formatAge(u.quotaWaitS)} waiting for the quota, ${u.cacheHits} from the cache`
}

/** What suppression kept out of a run. */
export function describeSuppression(s: RunProgress['suppression']): string {
  return `${s.delivered} domains delivered by earlier runs, ${s.excluded} excluded; ${s.dropped} found again and dropped`
}
