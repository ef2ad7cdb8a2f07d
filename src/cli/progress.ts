import type {RunProgress} from '../pipeline/runs.js'
import {STAGES} from '../pipeline/stages/index.js'

/** One line of run progress: what each stage has done and what is in flight. */
export function describeProgress(p: RunProgress): string {
  const inFlight = (kind: string) => (p.tasks[kind] ? p.tasks[kind].queued + p.tasks[kind].running : 0)
  return [`run ${p.id} ${p.status} (${p.stage})`, ...STAGES.map((s) => `${s.name}: ${s.describe(p, inFlight(s.kind))}`)].join(' · ')
}
