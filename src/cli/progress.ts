import type {RunProgress} from '../pipeline/runs.js'

/** One line of run progress: what each stage has done and what is in flight. */
export function describeProgress(p: RunProgress): string {
  const t = p.tasks
  const inFlight = (k: string) => (t[k] ? t[k].queued + t[k].running : 0)
  const researched = p.companies.qualified + p.companies.disqualified + p.companies.selected
  return [
    `run ${p.id} ${p.status} (${p.stage})`,
    `discovery: ${p.companies.total} found${inFlight('lead-list') ? ', searching' : ''}`,
    `research: ${researched}/${p.companies.total} (${p.companies.qualified + p.companies.selected} qualified)`,
    `contacts: ${p.contacts} for ${p.companies.selected}/${p.quantity} selected${inFlight('contact') ? `, ${inFlight('contact')} searching` : ''}`,
  ].join(' · ')
}
