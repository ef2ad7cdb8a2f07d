import {EmbeddedServerCommand} from '../../cli/embedded-server-command.js'
import {EmbeddedServer} from '../../db/embedded.js'

export default class DbStop extends EmbeddedServerCommand<typeof DbStop> {
  static override summary = 'Stop the embedded PostgreSQL server.'
  static override description =
    'Open connections are closed (fast shutdown); the data stays where rvx db status shows it. The next rvx command that needs a database starts it again.'
  static override examples = ['<%= config.bin %> db stop']
  static override enableJsonFlag = true

  async run(): Promise<{stopped: boolean}> {
    const stopped = await new EmbeddedServer({env: this.env}).stop()
    this.info(stopped ? 'Embedded PostgreSQL stopped.' : 'Embedded PostgreSQL was not running.')
    return {stopped}
  }
}
