import {BaseCommand} from '../../cli/base-command.js'
import {listSchedules, type ScheduleView} from '../../monitor/schedules.js'
import {formatCriteria, formatTime} from '../../web/format.js'

export default class SchedulesList extends BaseCommand<typeof SchedulesList> {
  static override summary = 'List schedules: pattern, next fire time, and what the last slot made (a run, or why it was skipped).'
  static override examples = ['<%= config.bin %> schedules list', '<%= config.bin %> schedules list --json']
  static override enableJsonFlag = true

  async run(): Promise<{schedules: ScheduleView[]}> {
    const db = await this.database({schema: true})
    const schedules = await listSchedules(db)
    if (schedules.length === 0) this.info('No schedules: rvx schedules add --cron ... adds one.')
    else
      this.table(schedules, [
        {header: 'id', get: (s) => s.id},
        {header: 'name', get: (s) => s.name ?? '-'},
        {header: 'cron', get: (s) => `${s.cron} (${s.tz})`},
        {header: 'next', get: (s) => (s.paused ? 'paused' : formatTime(s.nextAt))},
        {header: 'last', get: (s) => (s.last ? `${formatTime(s.last.slot)}: ${s.last.runId ? `run ${s.last.runId}` : `skipped (${s.last.skipped})`}` : '-')},
        {header: 'leads', get: (s) => s.quantity, align: 'right'},
        {header: 'criteria', get: (s) => formatCriteria(s.criteria), wide: true},
      ])
    return {schedules}
  }
}
