import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {type PrunableRun, prunableRuns, pruneRun} from '../../pipeline/retention.js'
import {formatAge, parseDuration} from '../../shared/duration.js'

/** Ten years: well inside PostgreSQL's interval range. */
const MAX_AGE_MS = 3650 * 86_400_000

export default class RunsPrune extends BaseCommand<typeof RunsPrune> {
  static override summary = 'Remove whole finished runs (completed, failed or canceled) that finished longer ago than --older-than.'
  static override description = `A run goes with everything it holds: its companies, contacts and verdicts, its model calls and their cost, its alerts, and its tasks and their events. Without --yes it only says what it would remove.`
  static override examples = [
    '<%= config.bin %> runs prune --older-than 90d',
    '<%= config.bin %> runs prune --older-than 90d --yes',
    '<%= config.bin %> runs prune --older-than 30d --json',
  ]
  static override enableJsonFlag = true
  static override flags = {
    'older-than': Flags.string({summary: 'How long ago the run finished, e.g. 30d, 12h (at most 3650d).', required: true}),
    yes: Flags.boolean({summary: 'Remove them (without it: a dry run that lists what would go).'}),
  }

  async run(): Promise<{
    dryRun: boolean
    runs: Array<PrunableRun & {removed: boolean}>
  }> {
    const ms = parseDuration(this.flags['older-than'], 'older_than', {max: MAX_AGE_MS})
    const db = await this.database({schema: true})
    const candidates = await prunableRuns(db, ms)
    const dryRun = !this.flags.yes
    const runs: Array<PrunableRun & {removed: boolean}> = []
    for (const r of candidates) {
      // One run at a time: each removal is short, and an interrupted prune leaves whole runs.
      const removed = dryRun ? false : (await pruneRun(db, r.id)).removed
      runs.push({...r, removed})
    }

    if (runs.length > 0)
      this.table(runs, [
        {header: 'id', get: (r) => r.id},
        {header: 'status', get: (r) => r.status, status: true},
        {header: 'finished', get: (r) => `${formatAge((Date.now() - r.finishedAt.getTime()) / 1000)} ago`},
        {header: 'companies', get: (r) => r.companies},
        {header: 'contacts', get: (r) => r.contacts},
        {header: 'model calls', get: (r) => r.llmCalls},
        ...(dryRun ? [] : [{header: 'removed', get: (r: PrunableRun & {removed: boolean}) => (r.removed ? 'yes' : 'no (resumed meanwhile)')}]),
      ])
    const n = (k: number) => `${k} run${k === 1 ? '' : 's'}`
    if (runs.length === 0) this.info(`No finished run is older than ${this.flags['older-than']}.`)
    else if (dryRun) this.info(`Would remove ${n(runs.length)} and everything they hold; run again with --yes to remove them.`)
    else this.info(`Removed ${n(runs.filter((r) => r.removed).length)}.`)
    return {dryRun, runs}
  }
}
