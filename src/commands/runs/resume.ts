import {Flags} from '@oclif/core'

import {parseDuration} from '../../shared/duration.js'
import {checkOutputDir, readCriteriaText} from '../../cli/inputs.js'
import {ranged} from '../../cli/flags.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {type DriveReport, RunDriverCommand} from '../../cli/run-driver.js'
import {advanceRun} from '../../pipeline/advance.js'
import {parseCriteria, validateSize} from '../../pipeline/criteria.js'
import {resumeRun} from '../../pipeline/runs.js'

export default class RunsResume extends RunDriverCommand<typeof RunsResume> {
  static override summary = 'Continue a run that was interrupted or needs a decision, optionally with wider criteria or a new quantity.'
  static override description =
    'Without --detach, drives the run like rvx orchestrate (same exit codes); failed and quarantined tasks of the run get another chance.'
  static override examples = [
    '<%= config.bin %> runs resume 12',
    `<%= config.bin %> runs resume 12 --criteria '{"state":"TX"}'`,
    '<%= config.bin %> runs resume 12 --quantity 15 --detach',
  ]
  static override enableJsonFlag = true
  static override args = {id: runIdArg}
  static override flags = {
    criteria: Flags.string({summary: 'New criteria (JSON, @file.json or -), e.g. wider than before.'}),
    quantity: Flags.integer(ranged({summary: 'New target quantity, not below what the run has already selected.', min: 1, max: 10_000})),
    concurrency: Flags.integer(ranged({summary: 'In-process workers per stage.', default: 4, min: 1, max: 64})),
    detach: Flags.boolean({summary: 'Mark the run running again and return; rvx workers do the work.'}),
    'output-dir': Flags.string({summary: 'Where exports go.', default: './exports'}),
    format: Flags.option({options: ['csv', 'json'] as const, default: 'csv' as const, summary: 'Export format.'})(),
    timeout: Flags.string({summary: 'Stop driving after this long (e.g. 30m; 1s-24d).'}),
  }

  async run(): Promise<Partial<DriveReport> & {runId: number; status: string; detached: boolean}> {
    const id = parseRunId(this.args.id)
    const criteria = this.flags.criteria ? parseCriteria(await readCriteriaText(this.flags.criteria)) : undefined
    if (this.flags.quantity !== undefined) validateSize({quantity: this.flags.quantity, contactsMin: 1, contactsMax: 1})
    const timeoutMs = this.flags.timeout === undefined ? undefined : parseDuration(this.flags.timeout, 'timeout', {min: 1000})
    if (!this.flags.detach) await checkOutputDir(this.flags['output-dir'])
    const db = await this.database({schema: true})
    await resumeRun(db, id, {criteria, quantity: this.flags.quantity})
    const status = await advanceRun(db, id)
    if (this.flags.detach) {
      this.info(
        `Run ${id} is ${status} again; rvx workers will pick it up (rvx runs show ${id} to follow it; when it is done, rvx runs export ${id} writes its CSVs)`,
      )
      return {runId: id, status, detached: true}
    }

    return {
      ...(await this.driveAndReport(id, {concurrency: this.flags.concurrency, outputDir: this.flags['output-dir'], format: this.flags.format, timeoutMs})),
      detached: false,
    }
  }
}
