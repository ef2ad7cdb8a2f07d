import {STAGES, stageOfKind} from './stages/index.js'

// People read stages (discovery, research, contacts); the runtime and the database say task kinds (lead-list,
// company, contact). Output for people goes through these; `rvx worker` takes either name (`kindsFor`).

/** A task kind as people name it: its stage (discovery, research, contacts); anything else as it is. */
export function stageWord(kind: string): string {
  return stageOfKind(kind)?.name ?? kind
}

/** A worker's task kinds as its stages, "all" when it takes every stage. */
export function workerStages(kinds: string[]): string {
  return STAGES.every((s) => kinds.includes(s.kind)) ? 'all' : kinds.map(stageWord).join(',')
}
