import {Command, Flags} from '@oclif/core'

import {UsageError} from '../shared/errors.js'
import {BaseCommand} from './base-command.js'
import {onCommandLine} from './flags.js'

/**
 * The rvx db commands work on the embedded server under $RVX_HOME only, so
 * --database-url does not apply: given on the command line it is refused
 * (never silently ignored), and DATABASE_URL in the environment is left alone.
 */
export abstract class EmbeddedServerCommand<T extends typeof Command> extends BaseCommand<T> {
  static override baseFlags = {
    ...BaseCommand.baseFlags,
    'database-url': Flags.string({hidden: true, helpGroup: 'GLOBAL', summary: 'Does not apply: the db commands work on the embedded server.'}),
  }

  public override async init(): Promise<void> {
    await super.init()
    if (onCommandLine(this.argv, 'database-url')) {
      throw new UsageError(
        `--database-url does not apply here: rvx ${(this.id ?? 'db').replaceAll(':', ' ')} works on the embedded server under RVX_HOME, not on another PostgreSQL`,
      )
    }
  }
}
