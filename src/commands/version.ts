import {BaseCommand} from '../cli/base-command.js'
import {type DatabaseVersions, databaseVersions} from '../db/versions.js'

export default class Version extends BaseCommand<typeof Version> {
  static override summary = 'Show the versions of rvx, Node.js, the PostgreSQL server and the schema.'
  static override description = `rvx --version prints the same. The PostgreSQL server is the one rvx would use (--database-url, DATABASE_URL, or the embedded server); the schema level is how many of the migrations this rvx knows are applied there. Nothing is started: when the server is not running or cannot be reached, it says so (exit 0).`
  static override examples = ['<%= config.bin %> --version', '<%= config.bin %> version --json']
  static override enableJsonFlag = true

  async run(): Promise<{rvx: string; node: string; platform: string} & DatabaseVersions> {
    const db = await databaseVersions({url: this.flags['database-url'], env: this.env})
    const result = {rvx: this.config.version, node: process.version, platform: `${process.platform}-${process.arch}`, ...db}
    const {postgres, schema} = db
    const where = postgres.database === 'embedded' ? `embedded server, ${postgres.target}` : `DATABASE_URL: ${postgres.target}`
    this.out(`rvx ${result.rvx}`)
    this.out(`Node.js ${result.node} (${result.platform})`)
    this.out(postgres.reachable ? `PostgreSQL ${postgres.version} (${where})` : `PostgreSQL: ${postgres.note}`)
    this.out(`schema: ${schema.applied ?? 'unknown'} of ${schema.latest} migrations applied${schema.applied === null ? ' (no database to ask)' : ''}`)
    return result
  }
}
