import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {setPaused, type ScheduleView} from '../../monitor/schedules.js'

export default class SchedulesResume extends BaseCommand<typeof SchedulesResume> {
  static override summary = 'Resume a schedule: slots from now on fire (those missed while paused do not).'
  static override examples = ['<%= config.bin %> schedules resume weekly-tx', '<%= config.bin %> schedules resume 3']
  static override enableJsonFlag = true
  static override args = {schedule: Args.string({description: 'Schedule id or name (rvx schedules list shows them).', required: true})}

  async run(): Promise<ScheduleView> {
    const db = await this.database({schema: true})
    const s = await setPaused(db, this.args.schedule, false)
    this.info(`Schedule ${s.id}${s.name ? ` (${s.name})` : ''} resumed.`)
    return s
  }
}
