import {EmbeddedServerCommand} from '../../cli/embedded-server-command.js'
import {EmbeddedServer, type ServerStatus} from '../../db/embedded.js'

export default class DbStatus extends EmbeddedServerCommand<typeof DbStatus> {
  static override summary = 'Show whether the embedded PostgreSQL server is running, and where.'
  static override description =
    'Exits 0 whether or not the server runs; read "running" (or --json) to tell. The URL is shown with its password masked: rvx db url prints the full one. "data" is where the cluster lives: $RVX_HOME/pg/data, or as root a directory of its own under /var/lib/rvx (RVX_PG_SYSTEM_DIR).'
  static override examples = ['<%= config.bin %> db status', '<%= config.bin %> db status --json']
  static override enableJsonFlag = true

  async run(): Promise<ServerStatus> {
    const status = await new EmbeddedServer({env: this.env}).status()
    this.pairs([
      ['running', status.running ? 'yes' : 'no'],
      ['pid', status.pid],
      ['port', status.port],
      ['version', status.version],
      ['url', status.url],
      ['data', status.dataDir],
      ['log', status.logFile],
      ['programs', status.programsDir],
    ])
    return status
  }
}
