import type {RunRow} from '../../db/schema.js'
import {UsageError} from '../../shared/errors.js'
import {runOptions} from '../run-options.js'
import {contacts} from './contacts.js'
import {discovery} from './discovery.js'
import {enrich} from './enrich.js'
import {research} from './research.js'
import type {Stage, StageName, Trigger} from './stage.js'

/**
 * The pipeline, in order: the one table that worker arguments, progress
 * lines, status tables, cache kinds, metrics, exports, the run page and docs
 * read. A stage's task kind is what the runtime calls it; either name selects
 * it for `rvx worker`. A new stage is a file in this folder and a line here.
 */
export const STAGES: readonly Stage<any, any, any>[] = checkedRegistry([discovery, research, contacts, enrich])

export type {Stage, StageName} from './stage.js'

/**
 * The registry as the database no longer checks it: names and task kinds unique ('done' is no stage's name), and a
 * stage to lead the run (one with `advance`, not opt-in) for each trigger: a new stage that breaks one fails at load.
 */
export function checkedRegistry<T extends Stage<any, any, any>>(stages: T[]): T[] {
  const names = stages.map((s) => s.name)
  const kinds = stages.map((s) => s.kind)
  const twice = (list: string[]) => list.find((x, i) => list.indexOf(x) !== i)
  if (twice(names) ?? twice(kinds)) throw new Error(`stage registry: "${twice(names) ?? twice(kinds)}" names two stages`)
  if (names.includes('done')) throw new Error('stage registry: "done" is what a finished run\'s stage says, not a stage')
  for (const trigger of ['run', 'discovered', 'selected'] as const)
    if (!stages.some((s) => s.trigger === trigger && s.advance && !s.optIn))
      throw new Error(`stage registry: no stage with the ${trigger} trigger leads the run (one with advance, not opt-in)`)
  return stages
}

/** The stage of this name; an unknown name (a row written by another version of rvx, say) is an error naming it. */
export function stageNamed(name: StageName): Stage<any, any, any> {
  const stage = STAGES.find((s) => s.name === name)
  if (!stage) throw new Error(`"${name}" is not a stage of this rvx (${STAGES.map((s) => s.name).join(', ')})`)
  return stage
}

/** Stages a run may opt into (`--<name>` on rvx orchestrate and rvx runs resume). */
export const OPT_IN_STAGES: readonly Stage<any, any, any>[] = STAGES.filter((s) => s.optIn)

/** The stages a run has: every stage but the opt-in ones it did not ask for. */
export function stagesOf(run: Pick<RunRow, 'options'>): Stage<any, any, any>[] {
  const asked = new Set(runOptions(run as RunRow).stages ?? [])
  return STAGES.filter((s) => !s.optIn || asked.has(s.name))
}

/** The run's stages with this trigger, in pipeline order. */
export function stagesOn(run: Pick<RunRow, 'options'>, trigger: Trigger): Stage<any, any, any>[] {
  return stagesOf(run).filter((s) => s.trigger === trigger)
}

/** Stages whose answers are cached: their names are the cache's kinds. */
export const CACHE_KINDS: readonly string[] = STAGES.filter((s) => s.cached).map((s) => s.name)

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
