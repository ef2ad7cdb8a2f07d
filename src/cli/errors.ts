import {UsageError} from '../shared/errors.js'
import {scrub} from '../shared/secrets.js'

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
 * ("--contacts-min", "--interval"). Other errors pass through.
 */
export function flagWording(error: unknown, flagNames: string[]): unknown {
  if (!(error instanceof UsageError) || !error.field) return error
  const flagFor = new Map(flagNames.map((name) => [name.replaceAll('-', '_'), `--${name}`]))
  const field = error.field.replaceAll(/[ -]/g, '_')
  if (!flagFor.has(field)) return error
  // Other inputs the detail mentions ("must not exceed contacts_max") are flags too.
  const detail = error.detail.replaceAll(/\b[a-z][a-z0-9_]*\b/g, (word) => (word.includes('_') && flagFor.has(word) ? flagFor.get(word)! : word))
  return new UsageError(detail, {field: flagFor.get(field), cause: error.cause, code: error.code})
}
