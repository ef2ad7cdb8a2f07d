import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {revokeToken} from '../../db/api-tokens.js'

export default class TokensRevoke extends BaseCommand<typeof TokensRevoke> {
  static override summary = 'Revoke an API token: requests that carry it are refused from now on.'
  static override examples = ['<%= config.bin %> tokens revoke crm', '<%= config.bin %> tokens revoke 3']
  static override enableJsonFlag = true
  static override args = {token: Args.string({description: 'Token id or name (rvx tokens list shows them).', required: true})}

  async run(): Promise<{id: number; name: string}> {
    const db = await this.database({schema: true})
    const t = await revokeToken(db, this.args.token)
    this.info(`Token ${t.id} (${t.name}) revoked.`)
    return {id: t.id, name: t.name}
  }
}
