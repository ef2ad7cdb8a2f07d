import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {parseId} from '../../cli/id-arg.js'
import {removeWebhook} from '../../monitor/webhooks.js'

export default class WebhooksRemove extends BaseCommand<typeof WebhooksRemove> {
  static override summary = 'Remove a webhook and its delivery log (what it had pending is not sent).'
  static override examples = ['<%= config.bin %> webhooks remove 2']
  static override enableJsonFlag = true
  static override args = {id: Args.string({description: 'Webhook ID (rvx webhooks list shows them).', required: true})}

  async run(): Promise<{id: number}> {
    const id = parseId(this.args.id, 'webhook', 'rvx webhooks list')
    const db = await this.database({schema: true})
    await removeWebhook(db, id)
    this.info(`Webhook ${id} removed.`)
    return {id}
  }
}
