import {Args} from '@oclif/core'

import {UsageError} from '../shared/errors.js'

/** The ID argument of the runs commands: a positive whole number. */
export const runIdArg = Args.string({description: 'Run ID (rvx runs list shows them).', required: true})

/**
 * A run ID as typed: decimal digits only (no 0x2, 1e3 or 2.0), from 1 up to
 * the largest integer rvx holds exactly (run IDs are bigint; one beyond this
 * would silently name another run). `field` names a flag that carries it.
 */
export function parseRunId(value: string, field?: string): number {
  const id = /^[1-9]\d*$/.test(value.trim()) ? Number(value.trim()) : Number.NaN
  if (!Number.isSafeInteger(id)) {
    throw new UsageError(`"${value}" is not a run ID: use the number rvx runs list shows (from 1 to ${Number.MAX_SAFE_INTEGER})`, {field})
  }

  return id
}
