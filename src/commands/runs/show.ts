import {BaseCommand} from '../../cli/base-command.js'
import {formatCost} from '../../shared/money.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {type RunProgress, runProgress} from '../../pipeline/runs.js'
import {STAGES} from '../../pipeline/stages/index.js'

export default class RunsShow extends BaseCommand<typeof RunsShow> {
  static override summary = 'Show one run: status, stage, counts per stage, usage and cost.'
  static override examples = ['<%= config.bin %> runs show 12', '<%= config.bin %> runs show 12 --json']
  static override enableJsonFlag = true
  static override args = {id: runIdArg}

  async run(): Promise<RunProgress> {
    const db = await this.database({schema: true})
    const p = await runProgress(db, parseRunId(this.args.id))
    const rows: Array<[string, unknown]> = [
      ['status', p.status],
      ['stage', p.stage],
      ['criteria', JSON.stringify(p.criteria)],
      ['quantity', p.quantity],
      ['provider', p.provider],
      // The same words and numbers as --json: selected companies are counted apart from those qualified but not selected.
      [
        'companies',
        `${p.companies.total} found: ${p.companies.selected} selected, ${p.companies.qualified} qualified (not selected), ${p.companies.disqualified} disqualified, ${p.companies.candidate} not yet researched`,
      ],
      ['contacts', p.contacts],
      ...Object.entries(p.verdicts).map(
        ([key, v]) =>
          [
            `verified ${key}`,
            `${key === 'portfolio' ? '' : `selected: ${v.selectedMatch} match, ${v.selectedUnknown} unknown; `}kept ${v.disqualified} out`,
          ] as [string, unknown],
      ),
      ...STAGES.map((s) => {
        const t = p.tasks[s.kind]
        return [
          `${s.name} tasks`,
          `${t.completed} completed, ${t.queued} queued, ${t.running} running, ${t.failed} failed, ${t.quarantined} quarantined, ${t.canceled} canceled`,
        ] as [string, unknown]
      }),
      ['model calls', `${p.usage.calls} (${p.usage.inputTokens} in / ${p.usage.outputTokens} out tokens, ${formatCost(p.usage.costUsd)})`],
      ['notes', p.notes],
    ]
    this.table(rows, [
      {header: `run ${p.id}`, get: (r) => r[0]},
      {header: '', get: (r) => r[1]},
    ])
    return p
  }
}
