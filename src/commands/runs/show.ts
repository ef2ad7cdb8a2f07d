import {BaseCommand} from '../../cli/base-command.js'
import {describeCalls, describeContacts, describeSpend, describeSuppression} from '../../cli/progress.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {leadContacts, runLeads} from '../../pipeline/leads.js'
import {describeDrops} from '../../pipeline/drops.js'
import {shownStatus} from '../../pipeline/pause.js'
import {type RunProgress, runProgress} from '../../pipeline/run-views.js'
import {STAGES} from '../../pipeline/stages/index.js'
import {verdictLabel} from '../../pipeline/verification.js'
import {formatAge} from '../../shared/duration.js'
import {formatCriteria, formatTime} from '../../web/format.js'

export default class RunsShow extends BaseCommand<typeof RunsShow> {
  static override summary = 'Show one run: status, stage, counts per stage, usage and cost, then its selected companies.'
  static override description =
    'One line per fact (a long value wraps under itself on a terminal), then a table of the selected companies: name, domain, ICP score, property management software and contacts found. --json has the facts only (rvx runs export writes the companies and contacts).'
  static override examples = ['<%= config.bin %> runs show 12', '<%= config.bin %> runs show 12 --json']
  static override enableJsonFlag = true
  static override args = {id: runIdArg}

  async run(): Promise<RunProgress> {
    const db = await this.database({schema: true})
    const p = await runProgress(db, parseRunId(this.args.id))
    if (this.jsonEnabled()) return p
    const took = ((p.finishedAt ?? new Date()).getTime() - p.createdAt.getTime()) / 1000
    this.pairs([
      ['run', p.id],
      ['status', shownStatus(p.status, p.pausedAt !== null)],
      ['stage', p.stage],
      ['criteria', formatCriteria(p.criteria)],
      ['quantity', p.quantity],
      ['provider', p.provider],
      ['started', formatTime(p.createdAt)],
      p.finishedAt ? ['finished', `${formatTime(p.finishedAt)} (took ${formatAge(took)})`] : ['running for', formatAge(took)],
      ...(p.pausedAt ? [['paused', `since ${formatTime(p.pausedAt)}: rvx runs resume ${p.id} goes on`] as [string, unknown]] : []),
      ['export', p.exportPath ?? `not written yet: rvx runs export ${p.id} writes it`],
      // The same words and numbers as --json: selected companies are counted apart from those qualified but not selected.
      [
        'companies',
        `${p.companies.total} found: ${p.companies.selected} selected, ${p.companies.qualified} qualified (not selected), ${p.companies.disqualified} disqualified, ${p.companies.candidate} not yet researched`,
      ],
      ['contacts', describeContacts(p)],
      ['dropped', describeDrops(p.drops)],
      ...Object.entries(p.verdicts).map(
        ([key, v]) =>
          [
            `verified ${verdictLabel(key)}`,
            `${key === 'portfolio' ? '' : `selected: ${v.selectedMatch} match, ${v.selectedUnknown} unknown; `}kept ${v.disqualified} out`,
          ] as [string, unknown],
      ),
      ...STAGES.filter((s) => p.tasks[s.kind]).map((s) => {
        const t = p.tasks[s.kind]
        return [
          `${s.name} tasks`,
          `${t.completed} completed, ${t.queued} queued, ${t.running} running, ${t.failed} failed, ${t.quarantined} quarantined, ${t.canceled} canceled`,
        ] as [string, unknown]
      }),
      ['cost', describeSpend(p)],
      ['model calls', describeCalls(p.usage)],
      ['kept out', describeSuppression(p.suppression)],
      ['notes', p.notes],
    ])

    const selected = await runLeads(db, p.id, 'selected', Math.max(p.companies.selected, 1))
    const contacts = await leadContacts(
      db,
      selected.map((c) => c.id),
    )
    this.out('')
    if (selected.length === 0) this.out('No companies selected yet.')
    else
      this.table(selected, [
        {header: 'company', get: (c) => c.name, wide: true},
        {header: 'domain', get: (c) => c.domain},
        {header: 'score', get: (c) => c.icpScore},
        {header: 'pms', get: (c) => c.pms, drop: 1},
        {header: 'contacts', get: (c) => contacts.get(c.id)?.length ?? 0},
      ])
    return p
  }
}
