import {BaseCommand} from '../../cli/base-command.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {acceptRun} from '../../pipeline/runs.js'

export default class RunsAccept extends BaseCommand<typeof RunsAccept> {
  static override summary = 'Accept a run that needs a decision as it is: it becomes completed with what it has.'
  static override examples = ['<%= config.bin %> runs accept 12 && <%= config.bin %> runs export 12']
  static override enableJsonFlag = true
  static override args = {id: runIdArg}

  async run(): Promise<{id: number; status: string}> {
    const db = await this.database({schema: true})
    const run = await acceptRun(db, parseRunId(this.args.id))
    this.info(`Run ${run.id} accepted and completed: export it with rvx runs export ${run.id}`)
    return {id: run.id, status: run.status}
  }
}
