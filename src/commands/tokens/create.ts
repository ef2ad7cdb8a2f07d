import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {createToken, SCOPES} from '../../db/api-tokens.js'

export default class TokensCreate extends BaseCommand<typeof TokensCreate> {
  static override summary = 'Create an API token (rvx serve): printed once, stored only as a hash.'
  static override description =
    'A read token may GET everything under /api/v1; a write token may also create, cancel, resume and accept runs, and manage webhooks and schedules. The token is printed once on stdout (--json: {"token": ...}); keep it in a secret store. Names are unique among live tokens.'
  static override examples = [
    '<%= config.bin %> tokens create --scope write --name crm',
    'TOKEN=$(<%= config.bin %> tokens create --scope read --name dashboards --json | jq -r .token)',
  ]
  static override enableJsonFlag = true
  static override flags = {
    name: Flags.string({summary: 'What the token is for (unique among live tokens).', required: true}),
    scope: Flags.option({options: SCOPES, default: 'read' as const, summary: 'read: GET only; write: everything.'})(),
  }

  async run(): Promise<{token: string; id: number; name: string; scope: string}> {
    const db = await this.database({schema: true})
    const {token, id} = await createToken(db, {name: this.flags.name, scope: this.flags.scope})
    this.out(token)
    this.info(`Token ${id} (${this.flags.name}, ${this.flags.scope}) created: it is shown this once. Revoke it with rvx tokens revoke ${id}.`)
    return {token, id, name: this.flags.name.trim(), scope: this.flags.scope}
  }
}
