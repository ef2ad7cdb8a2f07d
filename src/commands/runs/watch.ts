import {Flags} from '@oclif/core'
import type {Kysely} from 'kysely'

import {BaseCommand} from '../../cli/base-command.js'
import {ranged} from '../../cli/flags.js'
import {parseRunId, runIdArg} from '../../cli/run-arg.js'
import {tableMode} from '../../cli/output.js'
import {cut, describeEvent, type RunLook, renderRunLook, runLookLine} from '../../cli/run-watch.js'
import type {Database} from '../../db/schema.js'
import {activeMonitor} from '../../monitor/leader.js'
import {describeEnding, type RunEnding, runEnding} from '../../pipeline/run-endings.js'
import {runScope} from '../../pipeline/run-options.js'
import {runProgress, runsOverview} from '../../pipeline/run-views.js'
import {sleep} from '../../runtime/backoff.js'
import {scopeEvents} from '../../runtime/scopes.js'
import {parseDuration} from '../../shared/duration.js'
import {ExitCode} from '../../shared/exit-codes.js'

/** How long, at most, to wait at the end for an active monitor that writes exports (--export-dir) to write this one. */
const EXPORT_WAIT_MAX_MS = 30_000

export default class RunsWatch extends BaseCommand<typeof RunsWatch> {
  static override summary = 'Follow a run to its end: stage bars, selected vs target, cost, 429s, ETA and the last events.'
  static override description = `On a terminal the view redraws in place, fitted to its width; piped, it prints a line each time the figures change, and each new event. It exits when the run ends, with the exit code rvx orchestrate would give (0 completed, 4 needs a decision, 1 failed or canceled), naming where the export is or the command that writes it (when the active monitor writes exports, --export-dir, it waits up to 30 s for it). A paused run is waited on. Ctrl-C stops watching (exit 130); the run goes on. --json prints only the end.`
  static override examples = [
    '<%= config.bin %> runs watch 12',
    '<%= config.bin %> runs watch 12 --interval 5s > run-12.log',
    '<%= config.bin %> runs watch 12 --json',
  ]
  static override enableJsonFlag = true
  static override args = {id: runIdArg}
  static override flags = {
    interval: Flags.string({summary: 'How often to look (200ms-24d).', default: '1s'}),
    events: Flags.integer(ranged({summary: 'How many of the latest task events to show.', default: 5, min: 0, max: 50})),
  }

  async run(): Promise<(RunEnding & {exitCode: number}) | undefined> {
    const id = parseRunId(this.args.id)
    const intervalMs = parseDuration(this.flags.interval, 'interval', {min: 200})
    const db = await this.database({schema: true})
    const stop = new AbortController()
    await this.untilSignal(
      () => stop.abort(),
      () => this.follow(db, id, intervalMs, stop.signal),
    )
    if (stop.signal.aborted) return undefined

    const ended = (await runEnding(db, id))!
    const exitCode = ended.status === 'completed' ? ExitCode.Ok : ended.status === 'needs_decision' ? ExitCode.Partial : ExitCode.Failure
    this.exitCode = exitCode
    const exportPath = ended.exportPath ?? (ended.status === 'completed' || ended.status === 'needs_decision' ? await this.exportFromMonitor(db, id) : null)
    const width = tableMode(this.env).width
    this.out(cut(describeEnding(ended), width))
    // The notes in full, wrapped under their key on a narrow terminal.
    if (ended.notes) this.pairs([['notes', ended.notes]])
    if (exportPath) this.out(`export: ${exportPath}`)
    else if (ended.status === 'completed' || ended.status === 'needs_decision')
      this.out(cut(`no export written yet: rvx runs export ${id} writes its CSVs`, width))
    return {...ended, exportPath, exitCode}
  }

  /** Looks every interval, showing what it sees, until the run is no longer running. */
  private async follow(db: Kysely<Database>, id: number, intervalMs: number, signal: AbortSignal): Promise<void> {
    const tty = Boolean(process.stdout.isTTY) && !this.jsonEnabled()
    // A terminal's width, or COLUMNS when piped (none: lines in full).
    const width = tableMode(this.env).width
    let drawn = 0
    let lastLine = ''
    let lastEvent = 0
    while (!signal.aborted) {
      const [progress, [summary], events] = await Promise.all([
        runProgress(db, id),
        runsOverview(db, {id, limit: 1}),
        scopeEvents(db, runScope(id), this.flags.events),
      ])
      const look: RunLook = {progress, summary, events}
      const running = progress.status === 'running'
      if (this.jsonEnabled()) {
        // Only the end is printed.
      } else if (tty) {
        // The frame is redrawn in place: up over the last one, then erase to the end of the screen.
        const frame = renderRunLook(look, width)
        if (running || drawn > 0) {
          process.stdout.write(`${drawn > 0 ? `\u001B[${drawn}A\r\u001B[J` : ''}${frame}\n`)
          drawn = frame.split('\n').length
        }
      } else {
        const line = runLookLine(look, width)
        if (line !== lastLine) process.stdout.write(`${line}\n`)
        lastLine = line
        for (const e of [...events].reverse()) if (e.id > lastEvent) process.stdout.write(`${cut(`  ${describeEvent(e)}`, width)}\n`)
      }

      lastEvent = Math.max(lastEvent, ...events.map((e) => e.id))
      if (!running) break
      await sleep(intervalMs, signal)
    }
  }

  /** The export path an active monitor with --export-dir writes, waited for (bounded); null when none does. */
  private async exportFromMonitor(db: Kysely<Database>, id: number): Promise<string | null> {
    const monitor = await activeMonitor(db)
    if (!monitor?.exports) return null
    const until = Date.now() + Math.min(EXPORT_WAIT_MAX_MS, 3 * monitor.intervalMs)
    while (Date.now() < until) {
      const path = (await runEnding(db, id))?.exportPath
      if (path) return path
      await sleep(500)
    }

    return null
  }
}
