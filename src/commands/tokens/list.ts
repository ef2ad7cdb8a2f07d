import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {formatTime} from '../../web/format.js'
import {type ApiToken, listTokens} from '../../db/api-tokens.js'

export default class TokensList extends BaseCommand<typeof TokensList> {
  static override summary = 'List API tokens: name, scope, created, last used (never the tokens themselves).'
  static override examples = ['<%= config.bin %> tokens list', '<%= config.bin %> tokens list --all --json']
  static override enableJsonFlag = true
  static override flags = {all: Flags.boolean({summary: 'Include revoked tokens.'})}

  async run(): Promise<{tokens: ApiToken[]}> {
    const db = await this.database({schema: true})
    const tokens = await listTokens(db, {all: this.flags.all})
    if (tokens.length === 0) this.info('No API tokens: rvx tokens create --name NAME makes one.')
    else
      this.table(tokens, [
        {header: 'id', get: (t) => t.id},
        {header: 'name', get: (t) => t.name, wide: true},
        {header: 'scope', get: (t) => t.scope},
        {header: 'created', get: (t) => formatTime(t.createdAt)},
        {header: 'last used', get: (t) => (t.lastUsedAt ? formatTime(t.lastUsedAt) : 'never')},
        ...(this.flags.all ? [{header: 'revoked', get: (t: ApiToken) => (t.revokedAt ? formatTime(t.revokedAt) : '-')}] : []),
      ])
    return {tokens}
  }
}
