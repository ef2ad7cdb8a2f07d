import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {parseDuration} from '../../shared/duration.js'

/** Ten years: older than any worker row, well inside PostgreSQL's interval range. */
const MAX_AGE_MS = 3650 * 86_400_000
import {pruneWorkers} from '../../runtime/index.js'

export default class WorkersPrune extends BaseCommand<typeof WorkersPrune> {
  static override summary = 'Remove stopped and dead workers whose last heartbeat is older than --older-than.'
  static override examples = ['<%= config.bin %> workers prune --older-than 1h', '<%= config.bin %> workers prune --older-than 7d --json']
  static override enableJsonFlag = true
  static override flags = {
    'older-than': Flags.string({summary: 'Age of the last heartbeat, e.g. 30m, 1h, 7d (at most 3650d).', default: '1h'}),
  }

  async run(): Promise<{removed: string[]}> {
    const ms = parseDuration(this.flags['older-than'], 'older_than', {max: MAX_AGE_MS})
    const removed = await pruneWorkers(await this.database({schema: true}), ms)
    this.info(`Removed ${removed.length} worker row${removed.length === 1 ? '' : 's'}.`)
    return {removed}
  }
}
