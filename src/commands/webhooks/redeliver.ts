import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {parseId} from '../../cli/id-arg.js'
import {redeliver} from '../../monitor/webhooks.js'

export default class WebhooksRedeliver extends BaseCommand<typeof WebhooksRedeliver> {
  static override summary = 'Send a delivery again (delivered or given up): the active monitor sends it within an interval.'
  static override examples = ['<%= config.bin %> webhooks redeliver 2 41']
  static override enableJsonFlag = true
  static override args = {
    id: Args.string({description: 'Webhook ID.', required: true}),
    delivery: Args.string({description: 'Delivery ID (rvx webhooks deliveries ID shows them).', required: true}),
  }

  async run(): Promise<{id: number; delivery: number}> {
    const id = parseId(this.args.id, 'webhook', 'rvx webhooks list')
    const delivery = parseId(this.args.delivery, 'delivery', `rvx webhooks deliveries ${id}`)
    const db = await this.database({schema: true})
    await redeliver(db, id, delivery)
    this.info(`Delivery ${delivery} of webhook ${id} is queued again.`)
    return {id, delivery}
  }
}
