import {UsageError} from '../shared/errors.js'

/** An ID as typed for `what` (webhook, delivery): decimal digits, 1 up to the largest integer held exactly; `list` says where IDs are shown. */
export function parseId(value: string, what: string, list: string): number {
  const id = /^[1-9]\d*$/.test(value.trim()) ? Number(value.trim()) : Number.NaN
  if (!Number.isSafeInteger(id)) throw new UsageError(`"${value}" is not a ${what} ID: use the number ${list} shows`)
  return id
}
