import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {clearCache} from '../../pipeline/cache.js'
import {parseDuration} from '../../shared/duration.js'

export default class CacheClear extends BaseCommand<typeof CacheClear> {
  static override summary = 'Forget cached research and contacts: all of it, or what is older than --older-than.'
  static override description =
    'Runs after this pay for research again. Leads already delivered keep their data (and earlier runs still keep them out of new ones).'
  static override examples = ['<%= config.bin %> cache clear --older-than 7d', '<%= config.bin %> cache clear --json']
  static override enableJsonFlag = true
  static override flags = {
    'older-than': Flags.string({summary: 'Only entries older than this, e.g. 12h, 7d (1m-3650d).'}),
  }

  async run(): Promise<{removed: number}> {
    const olderThan = this.flags['older-than']
    const ms = olderThan === undefined ? undefined : parseDuration(olderThan, 'older-than', {min: 60_000, max: 3650 * 86_400_000})
    const removed = await clearCache(await this.database({schema: true}), ms)
    this.info(`Removed ${removed} cached answer${removed === 1 ? '' : 's'}${olderThan ? ` older than ${olderThan}` : ''}.`)
    return {removed}
  }
}
