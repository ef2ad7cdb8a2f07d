import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {removeSchedule, type ScheduleView} from '../../monitor/schedules.js'

export default class SchedulesRemove extends BaseCommand<typeof SchedulesRemove> {
  static override summary = 'Remove a schedule (the runs it made stay).'
  static override examples = ['<%= config.bin %> schedules remove weekly-tx', '<%= config.bin %> schedules remove 3']
  static override enableJsonFlag = true
  static override args = {schedule: Args.string({description: 'Schedule id or name (rvx schedules list shows them).', required: true})}

  async run(): Promise<ScheduleView> {
    const db = await this.database({schema: true})
    const s = await removeSchedule(db, this.args.schedule)
    this.info(`Schedule ${s.id}${s.name ? ` (${s.name})` : ''} removed.`)
    return s
  }
}
