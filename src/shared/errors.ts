import {ExitCode} from './exit-codes.js'

/**
 * An error meant for a person: `message` says in one line what went wrong and
 * what to do about it, `code` names the failure for machines, `exitCode` is
 * what an rvx command exits with. Anything else that reaches the top of a
 * command is a bug and is reported as such.
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

/**
 * Bad input (exit 2). When the input has a name (`field`: "quantity",
 * "criteria", "interval"), the message is that name followed by `detail`; the
 * command layer says the same with its flag instead ("--quantity ...").
 */
export class UsageError extends RvxError {
  readonly field?: string
  readonly detail: string

  constructor(detail: string, options: {cause?: unknown; field?: string; code?: string} = {}) {
    super(options.field ? `${options.field} ${detail}` : detail, {cause: options.cause, code: options.code ?? 'usage', exitCode: ExitCode.Usage})
    this.name = 'UsageError'
    this.field = options.field
    this.detail = detail
  }
}

/** The database cannot be used: unreachable, refused, missing, or its schema is behind (exit 3). */
export class DatabaseUnavailableError extends RvxError {
  constructor(message: string, options: {cause?: unknown; code?: string} = {}) {
    super(message, {cause: options.cause, code: options.code ?? 'database_unavailable', exitCode: ExitCode.DatabaseUnavailable})
    this.name = 'DatabaseUnavailableError'
  }
}
