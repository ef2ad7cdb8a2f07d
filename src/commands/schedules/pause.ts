import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {setPaused, type ScheduleView} from '../../monitor/schedules.js'

export default class SchedulesPause extends BaseCommand<typeof SchedulesPause> {
  static override summary = 'Pause a schedule: no slot fires until it is resumed.'
  static override examples = ['<%= config.bin %> schedules pause weekly-tx', '<%= config.bin %> schedules pause 3']
  static override enableJsonFlag = true
  static override args = {schedule: Args.string({description: 'Schedule id or name (rvx schedules list shows them).', required: true})}

  async run(): Promise<ScheduleView> {
    const db = await this.database({schema: true})
    const s = await setPaused(db, this.args.schedule, true)
    this.info(`Schedule ${s.id}${s.name ? ` (${s.name})` : ''} paused.`)
    return s
  }
}
