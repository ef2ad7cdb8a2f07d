import type {Kysely} from 'kysely'

import {formatCost} from '../cli/progress.js'
import type {AlertRow, Database} from '../db/schema.js'
import type {Logger} from '../runtime/logger.js'
import {renderRun} from '../pipeline/export.js'
import {runProgress} from '../pipeline/runs.js'
import {recordConditions, runNotice} from './conditions.js'
import {deliverPending} from './delivery.js'
import type {Mailer, MailMessage} from './mail.js'

/**
 * The mail for a run notice: a completed run's summary with its two CSVs
 * attached, or a short "needs your decision" with the options.
 */
export async function runNoticeMail(db: Kysely<Database>, notice: AlertRow): Promise<MailMessage> {
  const runId = notice.run_id!
  const p = await runProgress(db, runId)
  const criteria = JSON.stringify(p.criteria)
  const facts = [
    `Criteria: ${criteria}`,
    `Companies: ${p.companies.selected} of ${p.quantity} wanted (${p.companies.total} looked at)`,
    `Contacts: ${p.contacts}`,
    `Cost: ${formatCost(p.usage.costUsd)} (${p.usage.inputTokens + p.usage.outputTokens} tokens)`,
  ]
  if (notice.kind === 'run_completed_notice') {
    const rendered = await renderRun(db, runId, 'csv')
    return {
      to: notice.recipient!,
      subject: `rvx run ${runId} completed: ${rendered.companies} companies, ${rendered.contacts} contacts`,
      text: [`Run ${runId} completed. The companies and their decision makers are attached.`, '', ...facts].join('\n'),
      attachments: [
        {filename: `run-${runId}-companies.csv`, content: rendered.files.companies, contentType: 'text/csv'},
        {filename: `run-${runId}-contacts.csv`, content: rendered.files.contacts, contentType: 'text/csv'},
      ],
    }
  }

  return {
    to: notice.recipient!,
    subject: `rvx run ${runId} needs your decision`,
    text: [
      `Run ${runId} stopped short: ${p.notes ?? 'the search ran out of new companies'}.`,
      '',
      ...facts,
      '',
      'Your options:',
      `  rvx runs accept ${runId}                 deliver the ${p.companies.selected} companies found (mailed to you when done)`,
      `  rvx runs resume ${runId} --quantity N    ask for fewer, or change --criteria to widen the search`,
      `  rvx runs cancel ${runId}                 stop here`,
      '',
      `What it has so far: rvx runs export ${runId}`,
    ].join('\n'),
  }
}

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
