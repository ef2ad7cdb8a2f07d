import {EmbeddedServerCommand} from '../../cli/embedded-server-command.js'
import {EmbeddedServer} from '../../db/embedded.js'

export default class DbStart extends EmbeddedServerCommand<typeof DbStart> {
  static override summary = 'Start the embedded PostgreSQL server (initializing it on first use).'
  static override description = `The server runs in the background and outlives this command, so every rvx process on this machine shares it. Data lives under $RVX_HOME/pg (default ~/.rvx/pg); as root, the server runs as an unprivileged OS user and its data and a copy of the PostgreSQL programs live where only that user and root can read them, in /var/lib/rvx/<home>-<hash> (RVX_PG_SYSTEM_DIR), and rvx db status says where. It listens on 127.0.0.1 only, on a port chosen once (or RVX_PG_PORT), with a generated password kept in a 0600 file. Any rvx command that needs a database starts it on its own, so this command is only needed to start it ahead of time.`
  static override examples = ['<%= config.bin %> db start', 'RVX_HOME=/srv/rvx <%= config.bin %> db start --json']
  static override enableJsonFlag = true

  async run(): Promise<{started: boolean; port: number; pid: number | null; dataDir: string}> {
    const server = new EmbeddedServer({env: this.env})
    const s = await this.spin('Starting the embedded PostgreSQL server')
    try {
      const result = await server.start()
      for (const notice of result.notices) this.notice(notice)
      const where = `127.0.0.1:${result.port} (pid ${result.pid}, data in ${server.dataDir})`
      s.succeed(result.started ? `Embedded PostgreSQL started on ${where}` : `Embedded PostgreSQL is already running on ${where}`)
      return {started: result.started, port: result.port, pid: result.pid, dataDir: server.dataDir}
    } catch (error) {
      s.fail('The embedded PostgreSQL server did not start')
      throw error
    }
  }
}
