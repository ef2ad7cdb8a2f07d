import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {ranged} from '../../cli/flags.js'
import {parseId} from '../../cli/id-arg.js'
import {formatTime} from '../../web/format.js'
import {type DeliveryView, listDeliveries} from '../../monitor/webhooks.js'

export default class WebhooksDeliveries extends BaseCommand<typeof WebhooksDeliveries> {
  static override summary = "A webhook's delivery log, newest first: event, status, attempts, last answer, next attempt."
  static override examples = ['<%= config.bin %> webhooks deliveries 2', '<%= config.bin %> webhooks deliveries 2 --limit 200 --json']
  static override enableJsonFlag = true
  static override args = {id: Args.string({description: 'Webhook ID (rvx webhooks list shows them).', required: true})}
  static override flags = {limit: Flags.integer(ranged({summary: 'How many deliveries to show.', default: 50, min: 1, max: 1000}))}

  async run(): Promise<{deliveries: DeliveryView[]}> {
    const id = parseId(this.args.id, 'webhook', 'rvx webhooks list')
    const db = await this.database({schema: true})
    const deliveries = await listDeliveries(db, id, {limit: this.flags.limit})
    if (deliveries.length === 0) this.info(`Webhook ${id} has no deliveries yet.`)
    else
      this.table(deliveries, [
        {header: 'id', get: (d) => d.id},
        {header: 'event', get: (d) => d.type},
        {header: 'run', get: (d) => d.runId ?? '-'},
        {header: 'status', get: (d) => d.status},
        {header: 'attempts', get: (d) => d.attempts, align: 'right'},
        {header: 'last answer', get: (d) => (d.lastStatus ? `HTTP ${d.lastStatus}` : '-')},
        {header: 'next attempt', get: (d) => (d.nextAttemptAt ? formatTime(d.nextAttemptAt) : '-')},
        {header: 'last error', get: (d) => d.lastError ?? '', wide: true},
      ])
    return {deliveries}
  }
}
