import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {parseId} from '../../cli/id-arg.js'
import {createLogger} from '../../cli/logger.js'
import {deliverWebhooks, type DeliveryView, listDeliveries, privateWebhooksAllowed, queueTestEvent, TEST_EVENT} from '../../monitor/webhooks.js'
import {RvxError} from '../../shared/errors.js'

export default class WebhooksTest extends BaseCommand<typeof WebhooksTest> {
  static override summary = `Send a ${TEST_EVENT} event to a webhook now, signed like every event, and say how it went.`
  static override description = 'Exit 0 when the receiver answered 2xx; 1 otherwise (the delivery stays in the log, and the monitor retries it).'
  static override examples = ['<%= config.bin %> webhooks test 2']
  static override enableJsonFlag = true
  static override args = {id: Args.string({description: 'Webhook ID (rvx webhooks list shows them).', required: true})}

  async run(): Promise<DeliveryView> {
    const id = parseId(this.args.id, 'webhook', 'rvx webhooks list')
    const db = await this.database({schema: true})
    const deliveryId = await queueTestEvent(db, id)
    await deliverWebhooks(db, createLogger('silent', 'rvx-webhooks', this.env), {
      ids: [deliveryId],
      allowPrivate: privateWebhooksAllowed(this.env),
      dnsServer: this.env.RVX_DNS_SERVER,
      tries: 1,
    })
    const [delivery] = await listDeliveries(db, id, {limit: 1, beforeId: deliveryId + 1})
    if (delivery.status !== 'delivered')
      throw new RvxError(`webhook ${id} did not take the test event: ${delivery.lastError ?? 'not sent'} (rvx webhooks deliveries ${id} shows the log)`)
    this.info(`Webhook ${id} answered HTTP ${delivery.lastStatus} to ${TEST_EVENT} (delivery ${delivery.id}).`)
    return delivery
  }
}
