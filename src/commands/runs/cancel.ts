import {BaseCommand} from '../../cli/base-command.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {cancelRun} from '../../pipeline/runs.js'

export default class RunsCancel extends BaseCommand<typeof RunsCancel> {
  static override summary = 'Cancel a run: its queued and running tasks stop (no further paid work).'
  static override examples = ['<%= config.bin %> runs cancel 12']
  static override enableJsonFlag = true
  static override args = {id: runIdArg}

  async run(): Promise<{id: number; status: string}> {
    const db = await this.database({schema: true})
    const run = await cancelRun(db, parseRunId(this.args.id))
    this.info(`Run ${run.id} canceled.`)
    return {id: run.id, status: run.status}
  }
}
