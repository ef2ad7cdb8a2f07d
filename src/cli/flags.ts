import {Flags} from '@oclif/core'

import {OPT_IN_STAGES} from '../pipeline/stages/index.js'
import {parseUsd} from '../shared/money.js'

/**
 * A whole-number flag's options with its range in the help ("(1-64)", or
 * "(env X; 1-64)" after a parenthesis), from the same min and max that
 * oclif enforces, so the two never disagree:
 * `Flags.integer(ranged({summary: 'In-process workers per stage.', min: 1, max: 64}))`.
 */
export function ranged<const T extends {summary: string; min: number; max: number}>(options: T): T {
  const summary = options.summary.replace(/\.$/, '')
  const range = `${options.min}-${options.max}`
  return {...options, summary: summary.endsWith(')') ? `${summary.slice(0, -1)}; ${range}).` : `${summary} (${range}).`}
}

/** Whether `--name` is on the command line itself (not from its env var or default). */
export function onCommandLine(argv: string[], name: string): boolean {
  return argv.some((a) => a === `--${name}` || a.startsWith(`--${name}=`))
}

/** A budget flag in US dollars (parseUsd: from $0.0001 to $1,000,000). */
export const usdFlag = (summary: string) => Flags.custom<number>({summary, helpValue: 'USD', parse: async (input, _ctx, opts) => parseUsd(input, opts.name)})()

/** `--<name>` for each opt-in stage of the registry (rvx orchestrate, rvx runs resume): `--enrich`, ... */
export function optInStageFlags(): Record<string, ReturnType<typeof Flags.boolean>> {
  return Object.fromEntries(OPT_IN_STAGES.map((s) => [s.name, Flags.boolean({summary: s.optIn!.summary, helpGroup: 'STAGES'})]))
}

/** The opt-in stages a command line asked for, by name. */
export function optedInStages(flags: Record<string, unknown>): string[] {
  return OPT_IN_STAGES.filter((s) => flags[s.name] === true).map((s) => s.name)
}
