import {type Command, Flags} from '@oclif/core'

import {providerFactory} from '../agents/index.js'
import {exportRun, type ExportResult} from '../pipeline/export.js'
import {driveRun} from '../pipeline/orchestrator.js'
import {pauseRun} from '../pipeline/pause.js'
import {runOptions} from '../pipeline/run-options.js'
import {workersForRun} from '../pipeline/run-workers.js'
import type {RunProgress} from '../pipeline/run-views.js'
import {getRun} from '../pipeline/runs.js'
import {mailerFromEnv} from '../monitor/mail.js'
import {notifyRun} from '../monitor/notify.js'
import {errorMessage} from '../runtime/errors.js'
import {silentLogger} from '../runtime/logger.js'
import {BaseCommand} from './base-command.js'
import {oneLine} from './errors.js'
import {ExitCode} from '../shared/exit-codes.js'
import {RvxError} from '../shared/errors.js'
import {describeCalls, describeContacts, describeProgress, describeSpend, describeSuppression} from './progress.js'
import {withSignals} from './signals.js'

/** --pause-on-exit of the commands that drive a run. */
export const pauseOnExitFlag = Flags.boolean({
  summary: 'On Ctrl-C (or --timeout), pause the run fleet-wide (rvx runs resume ID goes on) instead of leaving it to the live workers.',
})

export interface DriveReport {
  runId: number
  status: string
  progress: RunProgress
  export?: ExportResult
  wallTimeS: number
}

/**
 * What orchestrate and runs resume share: drive a run with in-process
 * workers, show progress (spinner on a terminal, plain lines when piped),
 * handle Ctrl-C (drain, then force), export at the end, summarize, and set
 * the exit code from the run's status.
 */
export abstract class RunDriverCommand<T extends typeof Command> extends BaseCommand<T> {
  protected async driveAndReport(
    runId: number,
    o: {concurrency: number; outputDir?: string; format: 'csv' | 'json'; timeoutMs?: number; pauseOnExit?: boolean},
  ): Promise<DriveReport> {
    const db = await this.database({schema: true})
    const started = Date.now()
    const interrupt = new AbortController()
    const force = new AbortController()
    let signal: NodeJS.Signals | undefined
    let leaving: Promise<string> | undefined
    const onSignal = (s: NodeJS.Signals, count: number) => {
      if (count > 1) return force.abort()
      signal = s
      interrupt.abort()
      leaving = this.leaveRun(runId, o.pauseOnExit)
      void leaving.then(
        (next) => this.notice(`stopping: finishing in-flight tasks (Ctrl-C again to stop at once); ${next}`),
        () => {},
      )
    }

    const {result: report} = await withSignals(onSignal, async () => {
      const spinner = await this.spin(`Run ${runId}: starting`)
      let lastLine = ''
      let lastPrinted = 0
      const result = await driveRun({
        db,
        journal: await this.spendJournal((message) => this.notice(message)),
        limits: this.sessionLimits,
        databaseUrl: this.databaseUrl!,
        runId,
        providerFor: providerFactory(this.env),
        concurrency: o.concurrency,
        signal: interrupt.signal,
        forceSignal: force.signal,
        timeoutMs: o.timeoutMs,
        version: this.config.version,
        onProgress: (p) => {
          const line = describeProgress(p)
          if (this.mode.tty) spinner.update(line)
          else if (line !== lastLine && Date.now() - lastPrinted > 2000) {
            this.info(line)
            lastPrinted = Date.now()
          }

          lastLine = line
        },
      })
      const wallTimeS = Math.round((Date.now() - started) / 100) / 10
      const p = result.progress
      if (result.interrupted) {
        const next = await (leaving ?? this.leaveRun(runId, o.pauseOnExit))
        spinner.fail(`Run ${runId} ${result.interrupted === 'timeout' ? 'timed out' : 'interrupted'} (${p.status}): ${next}`)
        this.exitCode = result.interrupted === 'timeout' ? ExitCode.Partial : signal === 'SIGTERM' ? ExitCode.Terminated : ExitCode.Interrupted
        return {runId, status: p.status, progress: p, wallTimeS}
      }

      // The run is paid for: an export that fails now (the directory went away) is said with how to get the files.
      let exportError: unknown
      const exported =
        p.status === 'completed' || p.status === 'needs_decision'
          ? await exportRun(db, runId, o.outputDir, o.format).catch((error: unknown) => void (exportError = error))
          : undefined
      const summary = `${p.companies.delivered} companies, ${describeContacts(p)} contacts, ${describeSpend(p)}, ${wallTimeS}s`
      if (p.status === 'completed') spinner.succeed(`Run ${runId} completed: ${summary}`)
      else spinner.fail(`Run ${runId} ${p.status}: ${summary}${p.notes ? `. ${p.notes}` : ''}`)
      this.info(`Model: ${describeCalls(p.usage)}. Kept out: ${describeSuppression(p.suppression)}.`)
      if (exported) this.info(`Exported ${exported.files.companies} and ${exported.files.contacts}`)
      this.exitCode = p.status === 'completed' ? ExitCode.Ok : p.status === 'needs_decision' ? ExitCode.Partial : ExitCode.Failure
      await this.sendNotice(runId).catch((error: unknown) =>
        this.notice(`could not send the run's mail (${oneLine(errorMessage(error))}); rvx monitor retries it`),
      )
      if (exportError) {
        throw new RvxError(
          `run ${runId} is ${p.status} but its export${o.outputDir === undefined ? '' : ` to ${o.outputDir}`} failed (${oneLine(exportError instanceof RvxError ? exportError.message : errorMessage(exportError))}): rvx runs export ${runId} --output-dir DIR writes the files`,
          {code: 'export_failed', cause: exportError},
        )
      }

      return {runId, status: p.status, progress: p, export: exported, wallTimeS}
    })
    return report
  }

  /**
   * What becomes of a run this process stops driving, said as it will be: paused (--pause-on-exit), going on in
   * the fleet's live workers, or waiting for rvx runs resume.
   */
  private async leaveRun(runId: number, pauseOnExit: boolean | undefined): Promise<string> {
    const db = await this.database({schema: true})
    try {
      if (pauseOnExit) {
        await pauseRun(db, runId)
        return `run ${runId} is paused fleet-wide (rvx runs resume ${runId} goes on)`
      }

      const others = await workersForRun(db, runId, {exceptThisProcess: true})
      if (others.processes > 0)
        return `run ${runId} goes on in ${others.processes} other live worker${others.processes === 1 ? '' : 's'} (rvx runs watch ${runId} follows it; rvx runs pause ${runId} stops it)`
    } catch (error) {
      if (!(error instanceof RvxError)) throw error
      // A run that ended meanwhile cannot be paused: there is nothing left to leave.
      return oneLine(error.message)
    }

    return `the run stays resumable: rvx runs resume ${runId}`
  }

  /** The run's --notify-email mail, if it asked for one; a failure is said and left to the monitor to retry. */
  private async sendNotice(runId: number): Promise<void> {
    const db = await this.database({schema: true})
    const run = await getRun(db, runId)
    const to = runOptions(run).notifyEmail
    if (!to) return
    const mailer = mailerFromEnv(this.env)
    if (!mailer) return this.notice(`not mailing ${to}: SMTP_URL is not set here (a monitor with SMTP_URL will send it)`)
    try {
      const result = await notifyRun(db, runId, mailer, silentLogger)
      if (result.sent) this.info(`Mailed ${to}`)
      else if (result.error) this.notice(`could not mail ${to} (${result.error}); rvx monitor retries it`)
    } finally {
      mailer.close()
    }
  }
}
