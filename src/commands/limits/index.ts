import {BaseCommand} from '../../cli/base-command.js'
import {listRateLimits, type RateLimitView} from '../../runtime/pacing.js'

export default class Limits extends BaseCommand<typeof Limits> {
  static override summary = "Show the fleet's model quotas: each endpoint and model's ceilings and the rate the fleet uses now."
  static override description = `Every rvx process on the database paces its model calls through these shared buckets. A ceiling is configured (rvx limits set, or RVX_LLM_RPM / RVX_LLM_TPM in a process's environment) or learned from the provider's x-ratelimit-* headers; without one, the rate starts low and grows while calls succeed. A 429 cuts the rate for the whole fleet, which then grows back slowly.`
  static override examples = ['<%= config.bin %> limits', '<%= config.bin %> limits --json']
  static override enableJsonFlag = true

  async run(): Promise<{limits: RateLimitView[]}> {
    const limits = await listRateLimits(await this.database({schema: true}))
    if (limits.length === 0) this.info('No model calls paced yet: limits appear with the first call to each model (or set one with rvx limits set).')
    else
      this.table(limits, [
        {header: 'endpoint and model', get: (l) => l.key, wide: true},
        {header: 'rpm now', get: (l) => Math.round(l.rateRpm)},
        {header: 'rpm ceiling', get: (l) => l.limitRpm ?? '-', align: 'right'},
        {header: 'tpm now', get: (l) => (l.rateTpm === null ? '-' : Math.round(l.rateTpm)), align: 'right'},
        {header: 'tpm ceiling', get: (l) => l.limitTpm ?? '-', align: 'right'},
        {header: 'ceiling from', get: (l) => l.limitSource, drop: 1},
        {header: 'met a 429', get: (l) => (l.sawLimit ? 'yes' : 'no')},
      ])
    return {limits}
  }
}
