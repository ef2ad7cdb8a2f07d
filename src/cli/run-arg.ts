import {Args} from '@oclif/core'

import {UsageError} from '../shared/errors.js'

/** The ID argument of the runs commands: a positive whole number. */
export const runIdArg = Args.string({description: 'Run ID (rvx runs list shows them).', required: true})

export function parseRunId(value: string): number {
  const id = Number(value)
  if (!Number.isInteger(id) || id < 1) throw new UsageError(`"${value}" is not a run ID: use the number rvx runs list shows`)
  return id
}
