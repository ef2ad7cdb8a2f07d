import {ExitCode} from './exit-codes.js'

/**
 * An error meant for the person at the terminal: `message` is one line that
 * says what went wrong and what to do about it. Anything else that reaches the
 * top of a command is a bug and is reported as such.
 */
export class RvxError extends Error {
  readonly exitCode: ExitCode
  readonly code: string

  constructor(message: string, options: {cause?: unknown; code?: string; exitCode?: ExitCode} = {}) {
    super(message, {cause: options.cause})
    this.name = 'RvxError'
    this.exitCode = options.exitCode ?? ExitCode.Failure
    this.code = options.code ?? 'failure'
  }
}

export class UsageError extends RvxError {
  constructor(message: string, options: {cause?: unknown} = {}) {
    super(message, {...options, code: 'usage', exitCode: ExitCode.Usage})
    this.name = 'UsageError'
  }
}

export class DatabaseUnavailableError extends RvxError {
  constructor(message: string, options: {cause?: unknown; code?: string} = {}) {
    super(message, {cause: options.cause, code: options.code ?? 'database_unavailable', exitCode: ExitCode.DatabaseUnavailable})
    this.name = 'DatabaseUnavailableError'
  }
}

/** First line of an error's message, so nothing multi-line ever reaches the terminal. */
export function oneLine(message: string): string {
  const line = message.split('\n').map((s) => s.trim()).find((s) => s.length > 0) ?? 'unknown error'
  return line.length > 500 ? `${line.slice(0, 497)}...` : line
}
