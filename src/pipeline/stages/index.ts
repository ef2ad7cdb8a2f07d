import {UsageError} from '../../shared/errors.js'
import {contacts} from './contacts.js'
import {discovery} from './discovery.js'
import {research} from './research.js'
import type {Stage, StageName} from './stage.js'

/**
 * The pipeline, in order: the one table that worker arguments, progress
 * lines, status tables and docs read. A stage's task kind is what the
 * runtime calls it; either name selects it for `rvx worker`.
 */
export const STAGES: readonly Stage<any, any, any>[] = [discovery, research, contacts]

export type {Stage, StageName} from './stage.js'

export function stageNamed(name: StageName): Stage<any, any, any> {
  return STAGES.find((s) => s.name === name)!
}

/** The stage whose tasks are of this kind, if any. */
export function stageOfKind(kind: string): Stage<any, any, any> | undefined {
  return STAGES.find((s) => s.kind === kind)
}

/** A stage by either of its names (discovery or lead-list, ...). */
export function findStage(word: string): Stage<any, any, any> | undefined {
  return STAGES.find((s) => s.name === word || s.kind === word)
}

/** Every stage's task kind, in pipeline order. */
export const STAGE_KINDS: readonly string[] = STAGES.map((s) => s.kind)

/** Zero for every stage: a record to count into. */
export function perStage<T>(value: () => T): Record<StageName, T> {
  return Object.fromEntries(STAGES.map((s) => [s.name, value()])) as Record<StageName, T>
}

/**
 * Task kinds for worker types given by people: stage names or kinds, or
 * `all`. Unknown words are a usage error naming the choices.
 */
export function kindsFor(words: string[]): string[] {
  const choices = `${STAGES.map((s) => `${s.name} (${s.kind})`).join(', ')} or all`
  if (words.length === 0) throw new UsageError(`is missing: name the stage(s) to work on: ${choices}`, {field: 'worker type'})
  const kinds = new Set<string>()
  for (const word of words) {
    if (word === 'all') for (const s of STAGES) kinds.add(s.kind)
    else {
      const stage = findStage(word)
      if (!stage) throw new UsageError(`"${word}" is not a stage: use ${choices}`, {field: 'worker type'})
      kinds.add(stage.kind)
    }
  }

  return STAGE_KINDS.filter((k) => kinds.has(k))
}

/** "discovery (lead-list), research (company), contacts (contact)": the stages as people may name them. */
export function stageChoices(): string {
  return STAGES.map((s) => `${s.name} (${s.kind})`).join(', ')
}
