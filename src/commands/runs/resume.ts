import {Flags} from '@oclif/core'

import {CONCURRENCY, defaultConcurrency} from '../../cli/concurrency.js'

import {parseDuration} from '../../shared/duration.js'
import {checkOutputDir, readCriteriaText} from '../../cli/inputs.js'
import {optedInStages, optInStageFlags, ranged, usdFlag} from '../../cli/flags.js'
import {providerFactory} from '../../agents/index.js'
import {requirePrices} from '../../agents/prices.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {type DriveReport, pauseOnExitFlag, RunDriverCommand} from '../../cli/run-driver.js'
import {advanceRun} from '../../pipeline/advance.js'
import {parseCriteria, validateSize} from '../../pipeline/criteria.js'
import {continueRun} from '../../pipeline/pause.js'
import {getRun} from '../../pipeline/runs.js'

export default class RunsResume extends RunDriverCommand<typeof RunsResume> {
  static override summary = 'Continue a run that was paused, interrupted or needs a decision, optionally with wider criteria or a new quantity.'
  static override description =
    'A paused run (rvx runs pause) has its pause lifted: every worker takes its tasks again. Without --detach, drives the run like rvx orchestrate (same exit codes); failed and quarantined tasks of the run get another chance.'
  static override examples = [
    '<%= config.bin %> runs resume 12',
    `<%= config.bin %> runs resume 12 --criteria '{"state":"TX"}'`,
    '<%= config.bin %> runs resume 12 --quantity 15 --detach',
    '<%= config.bin %> runs resume 12 --max-usd 10',
  ]
  static override enableJsonFlag = true
  static override args = {id: runIdArg}
  static override flags = {
    criteria: Flags.string({summary: 'New criteria (JSON, @file.json or -), e.g. wider than before.'}),
    quantity: Flags.integer(ranged({summary: 'New target quantity, not below what the run has already selected.', min: 1, max: 10_000})),
    concurrency: Flags.integer(
      ranged({summary: 'Tasks in flight per stage in this process; by default sized from free memory, 4 to 64.', min: CONCURRENCY.min, max: CONCURRENCY.max}),
    ),
    'max-usd': usdFlag('New budget for model calls in US dollars, above what the run has spent (e.g. to go on after "budget reached").'),
    detach: Flags.boolean({summary: 'Mark the run running again and return; rvx workers do the work.'}),
    'output-dir': Flags.string({summary: "Where exports go (a run-ID folder inside). Default: ./exports/ and the database's id."}),
    format: Flags.option({options: ['csv', 'json'] as const, default: 'csv' as const, summary: 'Export format.'})(),
    timeout: Flags.string({summary: 'Stop driving after this long (e.g. 30m; 1s-24d).'}),
    'pause-on-exit': pauseOnExitFlag,
    ...optInStageFlags(),
  }

  async run(): Promise<Partial<DriveReport> & {runId: number; status: string; detached: boolean}> {
    const id = parseRunId(this.args.id)
    const criteria = this.flags.criteria ? parseCriteria(await readCriteriaText(this.flags.criteria)) : undefined
    if (this.flags.quantity !== undefined) validateSize({quantity: this.flags.quantity, contactsMin: 1, contactsMax: 1})
    const timeoutMs = this.flags.timeout === undefined ? undefined : parseDuration(this.flags.timeout, 'timeout', {min: 1000})
    if (!this.flags.detach) await checkOutputDir(this.flags['output-dir'])
    const db = await this.database({schema: true, session: !this.flags.detach})
    const maxUsd = this.flags['max-usd']
    if (maxUsd !== undefined) {
      requirePrices((await providerFactory(this.env)(await getRun(db, id))).models)
    }

    const {unpaused} = await continueRun(db, id, {criteria, quantity: this.flags.quantity, maxUsd, stages: optedInStages(this.flags)})
    const status = await advanceRun(db, id)
    if (this.flags.detach) {
      this.info(`Run ${id} is ${status} again${unpaused ? ' (pause lifted)' : ''}; follow it to its end: rvx runs watch ${id}`)
      return {runId: id, status, detached: true}
    }

    return {
      ...(await this.driveAndReport(id, {
        concurrency: this.flags.concurrency ?? defaultConcurrency(),
        outputDir: this.flags['output-dir'],
        format: this.flags.format,
        timeoutMs,
        pauseOnExit: this.flags['pause-on-exit'],
      })),
      detached: false,
    }
  }
}
