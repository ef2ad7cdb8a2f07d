import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {ranged} from '../../cli/flags.js'
import type {RunStatus} from '../../db/schema.js'
import {shownStatus} from '../../pipeline/pause.js'
import {listRunsWithSpend, RUN_STATUSES} from '../../pipeline/run-listing.js'
import type {RunUsage} from '../../pipeline/usage.js'
import {formatCriteria} from '../../web/format.js'
import {formatAge} from '../../shared/duration.js'
import {formatCost, formatRunCost} from '../../shared/money.js'

export default class RunsList extends BaseCommand<typeof RunsList> {
  static override summary = 'List runs, newest first.'
  static override description =
    'On a terminal the table fits its width: long criteria are cut with …, then the less important columns (cache hits, calls, provider) are left out; piped, every column is printed in full (or fitted to COLUMNS when that is set). --json has everything.'
  static override examples = [
    '<%= config.bin %> runs list',
    '<%= config.bin %> runs list --status needs_decision',
    '<%= config.bin %> runs list --limit 5 --json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    limit: Flags.integer(ranged({summary: 'How many runs to show.', default: 20, min: 1, max: 1000})),
    status: Flags.option({options: RUN_STATUSES, summary: 'Only runs in this status.'})(),
  }

  async run(): Promise<{
    runs: Array<{
      id: number
      status: string
      paused: boolean
      stage: string
      quantity: number
      provider: string
      criteria: unknown
      createdAt: Date
      finishedAt: Date | null
      selected: number
      /** Companies delivered (the export's), and their contacts; contacts found for companies dropped later are apart. */
      delivered: number
      contacts: number
      contactsDropped: number
      maxUsd: number | null
      usage: RunUsage
      costPerLead: number | null
      simulated: boolean
    }>
  }> {
    const db = await this.database({schema: true})
    const runs = (await listRunsWithSpend(db, {status: this.flags.status as RunStatus | undefined, limit: this.flags.limit})).map((r) => ({
      id: r.id,
      status: r.status,
      paused: r.paused_at !== null,
      stage: r.stage,
      quantity: r.quantity,
      provider: r.provider,
      criteria: r.criteria,
      createdAt: r.created_at,
      finishedAt: r.finished_at,
      selected: r.counts.companies.selected,
      delivered: r.counts.companies.delivered,
      contacts: r.counts.contacts.delivered,
      contactsDropped: r.counts.contacts.dropped,
      maxUsd: r.max_usd === null ? null : Number(r.max_usd),
      usage: r.usage,
      costPerLead: r.costPerLead,
      simulated: r.simulated,
    }))
    if (runs.length === 0)
      this.info(
        this.flags.status ? `No ${this.flags.status} runs (rvx runs list without --status shows them all).` : 'No runs yet: start one with rvx orchestrate.',
      )
    else
      this.table(runs, [
        {header: 'id', get: (r) => r.id},
        {header: 'status', get: (r) => shownStatus(r.status, r.paused), status: true},
        {header: 'stage', get: (r) => r.stage, drop: 4},
        {header: 'leads', get: (r) => `${r.delivered}/${r.quantity}`, align: 'right'},
        {header: 'contacts', get: (r) => r.contacts, align: 'right', drop: 2},
        {
          header: 'cost',
          get: (r) => formatRunCost(r.usage.costUsd, r.simulated) + (r.maxUsd === null ? '' : ` of ${formatCost(r.maxUsd)}`),
          align: 'right',
        },
        {header: '$/lead', get: (r) => (r.costPerLead === null ? '-' : formatCost(r.costPerLead)), align: 'right', drop: 5},
        {header: 'calls', get: (r) => `${r.usage.calls}${r.usage.rateLimited ? ` (+${r.usage.rateLimited} 429)` : ''}`, align: 'right', drop: 7},
        {header: 'cache hits', get: (r) => r.usage.cacheHits, drop: 8},
        {header: 'provider', get: (r) => r.provider, drop: 6},
        {header: 'created', get: (r) => `${formatAge((Date.now() - r.createdAt.getTime()) / 1000)} ago`, drop: 3},
        {header: 'criteria', get: (r) => formatCriteria(r.criteria), wide: true},
      ])
    return {runs}
  }
}
