import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {addWebhook, checkWebhookUrl, parseEvents, privateWebhooksAllowed, WEBHOOK_EVENTS} from '../../monitor/webhooks.js'

export default class WebhooksAdd extends BaseCommand<typeof WebhooksAdd> {
  static override summary = 'Add a webhook: the active monitor POSTs the events to URL, signed (Standard Webhooks).'
  static override description = `Events: ${WEBHOOK_EVENTS.join(', ')}. The signing secret (whsec_...) is printed once on stdout (--json: {"id", "secret"}); a receiver checks webhook-signature with it (any Standard Webhooks library). URL must reach public addresses only (RVX_ALLOW_PRIVATE_WEBHOOKS=1 allows private and loopback ones, e.g. for tests); it is checked again at every delivery.`
  static override examples = [
    '<%= config.bin %> webhooks add https://crm.example.com/hooks/rvx --events run.completed,run.needs_decision,run.failed',
    '<%= config.bin %> webhooks add https://hooks.example.com/leads --events lead.selected --json',
  ]
  static override enableJsonFlag = true
  static override args = {url: Args.string({description: 'Where to POST events (http or https).', required: true})}
  static override flags = {events: Flags.string({summary: `Comma-separated events: ${WEBHOOK_EVENTS.join(', ')}.`, required: true})}

  async run(): Promise<{id: number; secret: string}> {
    const events = parseEvents(this.flags.events)
    const url = await checkWebhookUrl(this.args.url, privateWebhooksAllowed(this.env))
    const db = await this.database({schema: true})
    const {id, secret} = await addWebhook(db, {url, events})
    this.out(secret)
    this.info(`Webhook ${id} added for ${events.join(', ')}: its signing secret is shown this once. rvx webhooks test ${id} sends a test event.`)
    return {id, secret}
  }
}
