import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {ranged} from '../../cli/flags.js'
import {listRuns} from '../../pipeline/runs.js'

export default class RunsList extends BaseCommand<typeof RunsList> {
  static override summary = 'List runs, newest first.'
  static override examples = ['<%= config.bin %> runs list', '<%= config.bin %> runs list --limit 5 --json']
  static override enableJsonFlag = true
  static override flags = {
    limit: Flags.integer(ranged({summary: 'How many runs to show.', default: 20, min: 1, max: 1000})),
  }

  async run(): Promise<{
    runs: Array<{id: number; status: string; stage: string; quantity: number; provider: string; criteria: unknown; createdAt: Date; finishedAt: Date | null}>
  }> {
    const db = await this.database({schema: true})
    const runs = (await listRuns(db, this.flags.limit)).map((r) => ({
      id: r.id,
      status: r.status,
      stage: r.stage,
      quantity: r.quantity,
      provider: r.provider,
      criteria: r.criteria,
      createdAt: r.created_at,
      finishedAt: r.finished_at,
    }))
    if (runs.length === 0) this.info('No runs yet: start one with rvx orchestrate.')
    else
      this.table(runs, [
        {header: 'id', get: (r) => r.id},
        {header: 'status', get: (r) => r.status},
        {header: 'stage', get: (r) => r.stage},
        {header: 'quantity', get: (r) => r.quantity},
        {header: 'provider', get: (r) => r.provider},
        {header: 'criteria', get: (r) => JSON.stringify(r.criteria)},
        {header: 'created', get: (r) => r.createdAt.toISOString().replace('T', ' ').slice(0, 19)},
      ])
    return {runs}
  }
}
