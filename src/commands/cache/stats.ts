import {BaseCommand} from '../../cli/base-command.js'
import {cacheStats, type CacheStats} from '../../pipeline/cache.js'
import {CACHE_KINDS} from '../../pipeline/stages/index.js'
import {formatCost} from '../../shared/money.js'

export default class CacheStatsCommand extends BaseCommand<typeof CacheStatsCommand> {
  static override summary = 'Show the research cache: entries, hits, and what reusing them saved.'
  static override description =
    'rvx keeps what each paid research and contact search found, per domain, provider, model and criteria, and reuses it in later runs within --cache-ttl (default 30 days) at no cost.'
  static override examples = ['<%= config.bin %> cache stats', '<%= config.bin %> cache stats --json']
  static override enableJsonFlag = true

  async run(): Promise<{cache: CacheStats[]}> {
    const cache = await cacheStats(await this.database({schema: true}), CACHE_KINDS)
    const day = (d: Date | null) => (d ? d.toISOString().slice(0, 10) : '-')
    this.table(cache, [
      {header: 'kind', get: (c) => c.kind},
      {header: 'entries', get: (c) => c.entries},
      {header: 'within 30 days', get: (c) => c.fresh},
      {header: 'hits', get: (c) => c.hits},
      {header: 'saved', get: (c) => formatCost(c.savedUsd), align: 'right'},
      {header: 'oldest', get: (c) => day(c.oldest), drop: 1},
      {header: 'newest', get: (c) => day(c.newest)},
    ])
    return {cache}
  }
}
