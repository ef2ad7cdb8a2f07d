import {stripVTControlCharacters} from 'node:util'

import type {Env} from '../shared/config.js'
import {UsageError} from '../shared/errors.js'
import {scrub} from '../shared/secrets.js'
import {onCommandLine} from './flags.js'

/** First line of an error's message, so nothing multi-line ever reaches the terminal. */
export function oneLine(message: string): string {
  const line =
    scrub(message)
      .split('\n')
      .map((s) => s.trim())
      .find((s) => s.length > 0) ?? 'unknown error'
  return line.length > 500 ? `${line.slice(0, 497)}...` : line
}

/**
 * The same error, worded with the command's flags: the library names an input
 * ("contacts_min", "interval"), the command line names the flag that set it
 * ("--contacts-min", "--interval"), or the environment variable its value came
 * from ("RVX_DASHBOARD_TOKEN") when the flag is not on the command line
 * (`argv`). Other errors pass through.
 */
export function flagWording(error: unknown, flags: Record<string, FlagFacts>, argv: string[], env: Env): unknown {
  if (!(error instanceof UsageError) || !error.field) return error
  const flagFor = new Map(Object.keys(flags).map((name) => [name.replaceAll('-', '_'), inputName(name, flags, argv, env)]))
  const field = error.field.replaceAll(/[ -]/g, '_')
  if (!flagFor.has(field)) return error
  // Other inputs the detail mentions ("must not exceed contacts_max") are flags too.
  const detail = error.detail.replaceAll(/\b[a-z][a-z0-9_]*\b/g, (word) => (word.includes('_') && flagFor.has(word) ? flagFor.get(word)! : word))
  return new UsageError(detail, {field: flagFor.get(field), cause: error.cause, code: error.code})
}

/** What describes a flag of the command, as oclif keeps it. */
export interface FlagFacts {
  env?: string
  min?: number
  max?: number
}

/** How a person set flag `name`: its environment variable when that gave the value, else `--name`. */
function inputName(name: string, flags: Record<string, FlagFacts>, argv: string[], env: Env): string {
  const variable = flags[name]?.env
  return !onCommandLine(argv, name) && variable && env[variable] !== undefined ? variable : `--${name}`
}

/** oclif's parser rejected the command line (a bad or missing flag or argument): a usage error. */
export function isParseError(error: Error): boolean {
  return 'parse' in error || /^Parsing --/.test(error.message)
}

/**
 * oclif's parse errors in one line that keeps what is wrong: oclif puts the
 * reason on the lines after a heading ("Parsing --quantity", "The following
 * error occurred:"), so the first line alone says nothing. `flags` are the
 * command's flags and `argv` its command line: a value that came from an
 * environment variable (in `env`) is named by that variable.
 */
export function parseErrorLine(
  error: Error & {args?: Array<{name: string; description?: string}>},
  flags: Record<string, FlagFacts>,
  argv: string[],
  env: Env,
): string {
  const lines = stripVTControlCharacters(error.message)
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0 && s !== 'See more help with --help')
  const label = (name: string) => inputName(name, flags, argv, env)

  const parsing = /^Parsing --([\w-]+)$/.exec(lines[0] ?? '')
  if (parsing) {
    const name = parsing[1]
    const reason = lines[1] ?? 'is not valid'
    // Lines are trimmed: an empty value leaves "...received:" with nothing after it.
    const integer = /^Expected an integer .*received:\s*(.*)$/.exec(reason)
    if (!integer) return `${label(name)}: ${reason}`
    const {min, max} = flags[name] ?? {}
    const range =
      min !== undefined && max !== undefined
        ? ` from ${min} to ${max}`
        : min !== undefined
          ? ` of at least ${min}`
          : max !== undefined
            ? ` of at most ${max}`
            : ''
    return `${label(name)} must be a whole number${range} (got ${integer[1] === '' ? 'nothing' : integer[1]})`
  }

  const option = /^Expected --([\w-]+)=(.*) to be one of: (.*)$/.exec(lines[0] ?? '')
  if (option) return `${label(option[1])} must be one of ${option[3]} (got ${option[2]})`

  if (/^The following errors? occurred:?$/.test(lines[0] ?? '')) {
    return lines
      .slice(1)
      .map((reason) => reason.replace(/^Missing required flag ([\w-]+)$/, (_, name: string) => `${label(name)} is required`))
      .join('; ')
  }

  if (/^Missing \d+ required args?/.test(lines[0] ?? '') && error.args?.length) {
    const [first, ...rest] = error.args
    if (rest.length > 0) return `missing arguments ${error.args.map((a) => a.name.toUpperCase()).join(', ')}`
    return `missing argument ${first.name.toUpperCase()}${first.description ? `: ${first.description.replace(/\.$/, '')}` : ''}`
  }

  return lines[0] ?? 'the command line is not valid'
}
