import type {Kysely} from 'kysely'

import {formatRunCost} from '../shared/money.js'
import type {AlertRow, Database} from '../db/schema.js'
import {renderRun} from '../pipeline/export.js'
import {runProgress} from '../pipeline/run-views.js'
import type {MailMessage} from './mail.js'

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
    `Companies: ${p.companies.delivered} of ${p.quantity} wanted (${p.companies.total} looked at)`,
    `Contacts: ${p.contacts}`,
    `Cost: ${formatRunCost(p.usage.costUsd, p.simulated)} (${p.usage.inputTokens + p.usage.outputTokens} tokens)`,
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
