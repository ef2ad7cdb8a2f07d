import {Flags} from '@oclif/core'

import {PROVIDERS} from '../../agents/index.js'
import {BaseCommand} from '../../cli/base-command.js'
import {ranged, usdFlag} from '../../cli/flags.js'
import {readCriteriaText} from '../../cli/inputs.js'
import {parseCriteria} from '../../pipeline/criteria.js'
import {addSchedule, type ScheduleRequest, type ScheduleView} from '../../monitor/schedules.js'
import {formatTime} from '../../web/format.js'

export default class SchedulesAdd extends BaseCommand<typeof SchedulesAdd> {
  static override summary = 'Add a schedule: the active rvx monitor creates a run at each slot of a cron pattern.'
  static override description = `Each run is what orchestrate --detach would create with the same flags, done by rvx workers; as delivered companies are kept out by default, each brings only companies no earlier run delivered. A slot fires once even with several monitors; slots missed while no monitor ran fire once (the latest), not one by one; a slot whose previous run is still running is skipped (rvx schedules list says so). --cron has five fields (minute hour day month weekday) read in --tz (DST handled).`
  static override examples = [
    `<%= config.bin %> schedules add --cron "0 8 * * MON" --tz America/Chicago --criteria '{"pms":"Buildium","state":"TX"}' --quantity 25 --max-usd 5 --name weekly-tx`,
    `<%= config.bin %> schedules add --cron "*/30 * * * *" --criteria @criteria.json --quantity 10 --provider simulated`,
  ]
  static override enableJsonFlag = true
  static override flags = {
    cron: Flags.string({summary: 'When: minute hour day month weekday, e.g. "0 8 * * MON".', required: true}),
    tz: Flags.string({summary: 'Time zone the pattern is read in (IANA name).', default: 'UTC'}),
    name: Flags.string({summary: 'A unique name for the schedule.'}),
    criteria: Flags.string({summary: 'What to look for: JSON, @file.json, or - for stdin.', required: true}),
    quantity: Flags.integer(ranged({summary: 'How many qualified companies each run delivers.', required: true, min: 1, max: 10_000})),
    'contacts-min': Flags.integer(ranged({summary: 'Decision makers required per company.', default: 1, min: 1, max: 10})),
    'contacts-max': Flags.integer(ranged({summary: 'Decision makers kept per company.', default: 3, min: 1, max: 10})),
    provider: Flags.option({options: PROVIDERS, summary: 'Who does the research. Default: openai when OPENAI_API_KEY is set.'})(),
    'max-usd': usdFlag('Budget of each run for model calls in US dollars.'),
    'accept-unknown': Flags.string({summary: 'Criteria whose "unknown" verdict still qualifies a company (comma-separated).'}),
    'notify-email': Flags.string({summary: 'Mail this address when each run completes or needs a decision (the monitor, with SMTP_URL).'}),
    fresh: Flags.boolean({summary: 'Research again even what the cache has.', helpGroup: 'CACHE'}),
    'cache-ttl': Flags.string({summary: 'Reuse research younger than this (e.g. 7d).', default: '30d', helpGroup: 'CACHE'}),
    'include-delivered': Flags.boolean({summary: 'Allow companies that earlier completed runs delivered.', helpGroup: 'CACHE'}),
  }

  async run(): Promise<ScheduleView> {
    const {flags} = this
    const request: ScheduleRequest = {
      cron: flags.cron,
      tz: flags.tz,
      name: flags.name,
      criteria: parseCriteria(await readCriteriaText(flags.criteria)),
      quantity: flags.quantity,
      contacts_min: flags['contacts-min'],
      contacts_max: flags['contacts-max'],
      provider: flags.provider,
      max_usd: flags['max-usd'],
      accept_unknown: flags['accept-unknown']?.split(','),
      notify_email: flags['notify-email'],
      fresh: flags.fresh || undefined,
      cache_ttl: flags['cache-ttl'],
      include_delivered: flags['include-delivered'] || undefined,
    }
    const db = await this.database({schema: true})
    const s = await addSchedule(db, request, this.env)
    this.info(`Schedule ${s.id}${s.name ? ` (${s.name})` : ''} added: next run ${formatTime(s.nextAt)} (${s.tz}); a running rvx monitor creates it.`)
    return s
  }
}
