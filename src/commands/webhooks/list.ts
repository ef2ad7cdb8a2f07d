import {BaseCommand} from '../../cli/base-command.js'
import {formatTime} from '../../web/format.js'
import {listWebhooks, type WebhookView} from '../../monitor/webhooks.js'

export default class WebhooksList extends BaseCommand<typeof WebhooksList> {
  static override summary = 'List webhooks: URL and events (never their secrets).'
  static override examples = ['<%= config.bin %> webhooks list']
  static override enableJsonFlag = true

  async run(): Promise<{webhooks: WebhookView[]}> {
    const db = await this.database({schema: true})
    const webhooks = await listWebhooks(db)
    if (webhooks.length === 0) this.info('No webhooks: rvx webhooks add URL --events ... adds one.')
    else
      this.table(webhooks, [
        {header: 'id', get: (w) => w.id},
        {header: 'url', get: (w) => w.url, wide: true},
        {header: 'events', get: (w) => w.events.join(',')},
        {header: 'created', get: (w) => formatTime(w.createdAt)},
      ])
    return {webhooks}
  }
}
