import type {Kysely} from 'kysely'

import type {Database} from '../db/schema.js'
import type {Logger} from '../runtime/logger.js'
import {recordConditions, runNotice} from './conditions.js'
import {deliverPending} from './delivery.js'
import type {Mailer} from './mail.js'

/**
 * Sends the run's notice now if it asked for one (options.notifyEmail) and it
 * has not been sent: used by `rvx orchestrate` when it drove the run itself.
 * The notice is recorded first, so a monitor never sends it a second time;
 * if mailing fails, the monitor retries it.
 */
export async function notifyRun(db: Kysely<Database>, runId: number, mailer: Mailer, log: Logger): Promise<{sent: boolean; error?: string}> {
  const run = await db.selectFrom('runs').select(['id', 'status', 'options']).where('id', '=', runId).executeTakeFirstOrThrow()
  const to = (run.options as {notifyEmail?: string}).notifyEmail
  if (!to || (run.status !== 'completed' && run.status !== 'needs_decision')) return {sent: false}
  const opened = await recordConditions(db, [runNotice(runId, run.status, to)], {deliverNow: false})
  if (opened.length === 0) return {sent: false}
  const result = await deliverPending(db, {channels: [], mailer}, log, {ids: opened.map((o) => o.id)})
  return result.delivered > 0 ? {sent: true} : {sent: false, error: result.errors[0] ?? 'not sent'}
}
