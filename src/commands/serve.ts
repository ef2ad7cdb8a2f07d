import {Flags} from '@oclif/core'

import {ranged} from '../cli/flags.js'
import {privateWebhooksAllowed} from '../monitor/webhooks.js'
import DashboardCommand from './dashboard.js'

export default class ServeCommand extends DashboardCommand {
  static override summary = 'Serve the HTTP API under /api/v1 (runs, fleet, webhooks, schedules) and the dashboard.'
  static override description = `The dashboard's server (the same pages, with the same --host and token rules) plus the API: every API request needs an API token (rvx tokens create --scope read|write; GETs need read, the rest write) sent as Authorization: Bearer TOKEN, also on loopback. The OpenAPI 3.1 document is at /api/v1/openapi.json. Errors are problem details (application/problem+json) worded as the CLI words them. Request bodies are capped at 1 MiB and each token is held to --rate-limit requests a minute. Runs created here are done by rvx workers, as with orchestrate --detach.`
  static override examples = ['<%= config.bin %> serve', 'RVX_DASHBOARD_TOKEN=$(openssl rand -hex 16) <%= config.bin %> serve --host 0.0.0.0 --port 8080']
  static override flags = {
    ...DashboardCommand.flags,
    token: Flags.string({
      summary: "Secret of the dashboard's pages (API requests carry API tokens instead; prefer the env var: flags show in ps).",
      env: 'RVX_DASHBOARD_TOKEN',
    }),
    'rate-limit': Flags.integer(ranged({summary: 'API requests per minute per token.', default: 600, min: 1, max: 1_000_000, env: 'RVX_API_RATE_LIMIT'})),
  }

  override async run(): Promise<void> {
    const flags = this.flags as typeof this.flags & {'rate-limit': number}
    await this.serve({ratePerMinute: flags['rate-limit'], allowPrivateWebhooks: privateWebhooksAllowed(this.env), env: this.env})
  }
}
