import {Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base-command.js'
import {checkOutputDir} from '../../cli/inputs.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {exportRun, type ExportResult} from '../../pipeline/export.js'

export default class RunsExport extends BaseCommand<typeof RunsExport> {
  static override summary = "Write a run's companies.csv and contacts.csv (again: it is idempotent)."
  static override description = 'Files go to OUTPUT-DIR/run-ID/, so runs never overwrite each other. A run that stopped short exports what it has.'
  static override examples = ['<%= config.bin %> runs export 12', '<%= config.bin %> runs export 12 --output-dir ~/leads --format json --json']
  static override enableJsonFlag = true
  static override args = {id: runIdArg}
  static override flags = {
    'output-dir': Flags.string({summary: 'Folder for the export (a run-ID folder inside).', default: './exports'}),
    format: Flags.option({options: ['csv', 'json'] as const, default: 'csv' as const, summary: 'File format.'})(),
  }

  async run(): Promise<ExportResult> {
    const id = parseRunId(this.args.id)
    await checkOutputDir(this.flags['output-dir'])
    const db = await this.database({schema: true})
    const result = await exportRun(db, id, this.flags['output-dir'], this.flags.format)
    this.out(result.files.companies)
    this.out(result.files.contacts)
    this.info(`${result.companies} companies, ${result.contacts} contacts (run ${result.runId} is ${result.status})`)
    return result
  }
}
