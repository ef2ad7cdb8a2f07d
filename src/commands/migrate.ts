import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base-command.js'
import {migrateToLatest, type MigrationStatus, migrationStatus} from '../db/migrator.js'

export default class Migrate extends BaseCommand<typeof Migrate> {
  static override summary = 'Apply pending schema migrations, or list them with --status.'
  static override description = `Safe to run from several processes at once: one applies, the others wait and find nothing to do. Run it after installing or upgrading rvx when you use an external database (DATABASE_URL): commands refuse one whose schema is behind. The embedded database is migrated by the commands that use it.`
  static override examples = [
    '<%= config.bin %> migrate',
    '<%= config.bin %> migrate --status',
    'DATABASE_URL=postgres://u:p@db:5432/rvx <%= config.bin %> migrate --json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    status: Flags.boolean({summary: 'List applied and pending migrations instead of applying them.'}),
  }

  async run(): Promise<{applied: string[]; migrations: MigrationStatus[]; pending: number}> {
    const db = await this.database()
    if (this.flags.status) {
      const migrations = await migrationStatus(db)
      this.table(migrations, [
        {header: 'migration', get: (m) => m.name},
        {header: 'status', get: (m) => m.status},
        {header: 'applied at', get: (m) => m.appliedAt},
      ])
      const pending = migrations.filter((m) => m.status === 'pending').length
      this.info(pending === 0 ? 'The schema is up to date.' : `${pending} pending: run rvx migrate to apply.`)
      return {applied: [], migrations, pending}
    }

    const s = await this.spin('Applying migrations')
    const results = await migrateToLatest(db, this.databaseUrl!)
    const applied = results.filter((r) => r.status === 'Success').map((r) => r.migrationName)
    const migrations = await migrationStatus(db)
    if (applied.length === 0) {
      s.succeed(`Nothing to migrate: the schema is up to date (${migrations.length} applied).`)
    } else {
      s.succeed(`Applied ${applied.length} migration${applied.length === 1 ? '' : 's'}: ${applied.join(', ')}`)
    }

    return {applied, migrations, pending: migrations.filter((m) => m.status === 'pending').length}
  }
}
