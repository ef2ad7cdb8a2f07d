import {Flags} from '@oclif/core'

import {EmbeddedServerCommand} from '../../cli/embedded-server-command.js'
import {EmbeddedServer} from '../../db/embedded.js'

export default class DbUrl extends EmbeddedServerCommand<typeof DbUrl> {
  static override summary = 'Print the connection URL of the embedded PostgreSQL server (starting it if needed).'
  static override description =
    'The URL carries the password: it is for psql and other tools on this machine (psql "$(rvx db url)"). Give it to workers elsewhere only with care: the server listens on 127.0.0.1 only.'
  static override examples = ['psql "$(<%= config.bin %> db url)"', 'export DATABASE_URL=$(<%= config.bin %> db url)']
  static override enableJsonFlag = true
  static override flags = {
    database: Flags.string({summary: 'Database name to put in the URL.', default: 'rvx'}),
  }

  async run(): Promise<{url: string}> {
    const server = new EmbeddedServer({env: this.env})
    const result = await server.start()
    for (const notice of result.notices) this.notice(notice)
    if (result.started) this.notice(`started the embedded PostgreSQL server on 127.0.0.1:${result.port}`)
    const url = (await server.url(this.flags.database)) ?? result.url
    this.out(url)
    return {url}
  }
}
