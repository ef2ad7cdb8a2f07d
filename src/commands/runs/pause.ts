import {BaseCommand} from '../../cli/base-command.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {pauseRun} from '../../pipeline/pause.js'
import {runScope} from '../../pipeline/run-options.js'
import {taskCounts} from '../../runtime/scopes.js'

export default class RunsPause extends BaseCommand<typeof RunsPause> {
  static override summary = 'Pause a run fleet-wide: no worker takes its tasks until rvx runs resume ID (tasks already running finish).'
  static override description =
    'Nothing is paid for after the tasks already running: a task a worker had claimed but not started goes back to the queue. The run shows as paused in runs show, runs watch and the dashboard; rvx runs resume ID lifts the pause, rvx runs cancel ID drops the run.'
  static override examples = ['<%= config.bin %> runs pause 12', '<%= config.bin %> runs resume 12']
  static override enableJsonFlag = true
  static override args = {id: runIdArg}

  async run(): Promise<{id: number; status: string; paused: true; running: number}> {
    const db = await this.database({schema: true})
    const run = await pauseRun(db, parseRunId(this.args.id))
    const running = (await taskCounts(db, runScope(run.id))).filter((t) => t.status === 'running').reduce((n, t) => n + t.count, 0)
    this.info(`Run ${run.id} paused${running > 0 ? ` (${running} tasks already running finish)` : ''}; rvx runs resume ${run.id} goes on.`)
    return {id: run.id, status: run.status, paused: true, running}
  }
}
