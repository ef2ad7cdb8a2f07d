import path from 'node:path'

import {Command, Flags, type Interfaces} from '@oclif/core'
import type {Kysely} from 'kysely'

import {type DatabaseHandle, DEFAULT_SESSION_LIMITS, openDatabase, type SessionLimits} from '../db/connect.js'
import {connectionFailure, isConnectionError} from '../db/connection-errors.js'
import {applyPending, assertSchemaCurrent} from '../db/migrator.js'
import {assertSessionKept} from '../db/session-check.js'
import {embeddedFailure, resolveDatabaseUrl} from '../db/resolve.js'
import type {Database} from '../db/schema.js'
import {type Env, readEnvironment} from '../shared/config.js'
import {parseDuration} from '../shared/duration.js'
import {ExitCode} from '../shared/exit-codes.js'
import {RvxError} from '../shared/errors.js'
import {type FlagFacts, flagWording, isParseError, oneLine, parseErrorLine} from './errors.js'
import {withSignals} from './signals.js'
import type {SpendJournal} from '../pipeline/spend-journal.js'
import {databaseId} from '../db/meta.js'
import {type Column, detectMode, type OutputMode, printable, renderPairs, renderTable, type Spinner, spinner, tableMode} from './output.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type BaseArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/** How often a paying command writes back journaled calls the database lost. */
const JOURNAL_RECONCILE_MS = 30_000

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/**
 * What every rvx command shares: the global flags, the database (opened on
 * first use, closed in finally so the process can exit), output helpers that
 * stay quiet under --json, and one error path that prints a single line and
 * keeps rvx's exit codes, with or without --json.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    'database-url': Flags.string({
      env: 'DATABASE_URL',
      helpGroup: 'GLOBAL',
      summary: 'PostgreSQL connection URL. Default: the embedded server under $RVX_HOME.',
    }),
    'log-level': Flags.option({
      default: 'info' as LogLevel,
      env: 'RVX_LOG_LEVEL',
      helpGroup: 'GLOBAL',
      options: LOG_LEVELS,
      summary: 'How much to log (debug also prints stack traces of unexpected errors).',
    })(),
  }

  protected flags!: BaseFlags<T>
  protected args!: BaseArgs<T>
  /** Every positional argument, for commands that take a variable number (strict = false). */
  protected positional: string[] = []
  /** The environment, read once here at the command's boundary: what runs below gets what it needs from it. */
  protected readonly env: Env = readEnvironment()
  private dbHandle?: DatabaseHandle
  private journal?: {journal: SpendJournal; timer: NodeJS.Timeout}

  public override async init(): Promise<void> {
    await super.init()
    const {args, argv, flags} = await this.parse({
      args: this.ctor.args,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      flags: this.ctor.flags,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
    this.args = args as BaseArgs<T>
    this.positional = argv as string[]
  }

  /** The exit code for a run() that returns normally (e.g. 4 when a run needs a decision); its result still prints. */
  protected set exitCode(code: number) {
    process.exitCode = code
  }

  /**
   * A long-running command's main work (worker, monitor, --watch) with
   * SIGTERM and SIGINT handed to `onSignal` (every one, with its count: a
   * second signal may mean "stop now"); when a signal ended it, the exit code
   * is 143 or 130.
   */
  protected async untilSignal<R>(onSignal: (signal: NodeJS.Signals, count: number) => void, main: () => Promise<R>): Promise<R> {
    const {result, signal} = await withSignals(onSignal, main)
    if (signal) this.exitCode = signal === 'SIGTERM' ? ExitCode.Terminated : ExitCode.Interrupted
    return result
  }

  protected get mode(): OutputMode {
    return detectMode(this.jsonEnabled(), this.env)
  }

  /**
   * The database, opened on first use. `schema: true` needs the current
   * schema: the embedded database (rvx's own) gets pending migrations applied
   * here; an external one (--database-url) is migrated on purpose, with
   * `rvx migrate`, so pending migrations are an error. `session: true`
   * refuses a connection that does not keep its session (in-process workers
   * need one).
   */
  protected async database(options: {schema?: boolean; session?: boolean} = {}): Promise<Kysely<Database>> {
    if (!this.dbHandle) {
      const url = await resolveDatabaseUrl({url: this.flags['database-url'], notice: (m) => this.notice(m), env: this.env})
      try {
        this.dbHandle = await openDatabase(url, {applicationName: `rvx ${this.id ?? ''}`.trim(), limits: this.sessionLimits})
      } catch (error) {
        throw this.flags['database-url'] ? error : await embeddedFailure(error, this.env)
      }
    }

    if (options.schema && this.flags['database-url']) await assertSchemaCurrent(this.dbHandle.db)
    else if (options.schema) {
      const applied = await applyPending(this.dbHandle.db, this.dbHandle.url)
      if (applied.length > 0)
        this.notice(`applied ${applied.length} migration${applied.length === 1 ? '' : 's'} to the embedded database (its schema follows rvx)`)
    }

    if (options.session) await assertSessionKept(this.dbHandle.pool, this.dbHandle.url)
    return this.dbHandle.db
  }

  /**
   * The bounds of every database session this command opens: the defaults,
   * or RVX_DB_STATEMENT_TIMEOUT, RVX_DB_LOCK_TIMEOUT and
   * RVX_DB_IDLE_IN_TRANSACTION_TIMEOUT (durations; 0 turns one off).
   */
  protected get sessionLimits(): SessionLimits {
    const read = (name: string, fallback: number) => {
      const value = this.env[name]?.trim()
      return value ? parseDuration(value, name, {max: 3_600_000}) : fallback
    }

    return {
      ...DEFAULT_SESSION_LIMITS,
      statementTimeoutMs: read('RVX_DB_STATEMENT_TIMEOUT', DEFAULT_SESSION_LIMITS.statementTimeoutMs),
      lockTimeoutMs: read('RVX_DB_LOCK_TIMEOUT', DEFAULT_SESSION_LIMITS.lockTimeoutMs),
      idleInTransactionMs: read('RVX_DB_IDLE_IN_TRANSACTION_TIMEOUT', DEFAULT_SESSION_LIMITS.idleInTransactionMs),
    }
  }

  /**
   * The spend journal of a command that pays for model calls (a worker, an
   * orchestrate that drives its run): written before each call is recorded in
   * the database, reconciled now (journals of processes that died too), every
   * 30 s, and when the command ends.
   */
  protected async spendJournal(warn: (message: string) => void): Promise<SpendJournal> {
    if (this.journal) return this.journal.journal
    const db = await this.database()
    // Loaded here, by the commands that pay for model calls: the others start without them (and the embedded server's module).
    const [{SpendJournal}, {rvxHome}] = await Promise.all([import('../pipeline/spend-journal.js'), import('../db/embedded.js')])
    const journal = new SpendJournal(path.join(rvxHome(this.env), 'spend'), await databaseId(db), warn)
    await journal.reconcile(db).catch((error: unknown) => warn(`could not check the spend journal: ${(error as Error).message}`))
    const timer = setInterval(() => void journal.reconcile(db).catch(() => {}), JOURNAL_RECONCILE_MS)
    timer.unref()
    this.journal = {journal, timer}
    return journal
  }

  protected get databaseUrl(): string | undefined {
    return this.dbHandle?.url
  }

  /** Status chatter for people: stderr, silent under --json. */
  protected info(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(`${printable(message)}\n`)
  }

  /** Something a person must see even under --json (it goes to stderr, so JSON on stdout stays clean). */
  protected notice(message: string): void {
    process.stderr.write(`rvx: ${printable(message)}\n`)
  }

  /** Data for people: stdout, silent under --json (the returned object is the data then). */
  protected out(message: string): void {
    if (!this.jsonEnabled()) process.stdout.write(`${printable(message)}\n`)
  }

  /** A table for people on stdout (see renderTable): fitted to the terminal, complete when piped; silent under --json. */
  protected table<Row>(rows: Row[], columns: Array<Column<Row>>): void {
    if (!this.jsonEnabled()) process.stdout.write(`${renderTable(rows, columns, tableMode(this.env))}\n`)
  }

  /** Key/value lines for one record on stdout (see renderPairs); silent under --json. */
  protected pairs(pairs: Array<[string, unknown]>): void {
    if (!this.jsonEnabled()) process.stdout.write(`${renderPairs(pairs, tableMode(this.env))}\n`)
  }

  protected async spin(text: string): Promise<Spinner> {
    return spinner(text, this.mode)
  }

  protected override async catch(thrown: Error & {exitCode?: number; code?: string; oclif?: {exit?: number}}): Promise<unknown> {
    // this.exit() and oclif's own exits pass through untouched.
    if (thrown.code === 'EEXIT') throw thrown

    // The embedded server failing mid-command (a full disk, a crash) is said from its log, not as a DATABASE_URL problem.
    const embedded = this.dbHandle && !this.flags?.['database-url'] && (isConnectionError(thrown) || thrown.code === '53100')
    const error = embedded ? ((await embeddedFailure(thrown, this.env)) as typeof thrown) : thrown
    const failure = this.describeFailure(error)
    process.exitCode = failure.exitCode
    if (this.jsonEnabled()) {
      this.logJson({error: {code: failure.code, exitCode: failure.exitCode, message: failure.message}})
    } else {
      process.stderr.write(`Error: ${printable(failure.message)}\n`)
    }

    if (failure.unexpected && this.flags?.['log-level'] && ['debug', 'trace'].includes(this.flags['log-level'])) {
      process.stderr.write(`${error.stack}\n`)
    }

    return undefined
  }

  protected override async finally(error: Error | undefined): Promise<unknown> {
    if (this.journal) {
      clearInterval(this.journal.timer)
      const reconciled = this.dbHandle
        ? await this.journal.journal.reconcile(this.dbHandle.db).then(
            () => true,
            () => false,
          )
        : false
      this.journal.journal.close(reconciled)
    }

    await this.dbHandle?.close().catch(() => {})
    this.dbHandle = undefined
    return super.finally(error)
  }

  private describeFailure(thrown: Error & {exitCode?: number; code?: string; oclif?: {exit?: number}}): {
    code: string
    exitCode: number
    message: string
    unexpected: boolean
  } {
    const flags = {...this.ctor.baseFlags, ...this.ctor.flags} as Record<string, FlagFacts>
    const error = flagWording(thrown, flags, this.argv, this.env) as typeof thrown
    if (error instanceof RvxError) {
      return {code: error.code, exitCode: error.exitCode, message: oneLine(error.message), unexpected: false}
    }

    // oclif's parse errors (unknown flag, missing argument or flag, bad value): bad input, exit 2.
    const hint = ` See rvx ${(this.id ?? '').replaceAll(':', ' ')} --help.`
    if (isParseError(error)) {
      return {
        code: 'usage',
        exitCode: ExitCode.Usage,
        message: oneLine(parseErrorLine(error, flags, this.argv, this.env)).replace(/[.:]?$/, '.') + hint,
        unexpected: false,
      }
    }

    if (typeof error.oclif?.exit === 'number') {
      const exitCode = error.oclif.exit
      return {
        code: exitCode === ExitCode.Usage ? 'usage' : 'failure',
        exitCode,
        message: oneLine(error.message).replace(/[.:]?$/, '.') + (exitCode === ExitCode.Usage ? hint : ''),
        unexpected: false,
      }
    }

    if (isConnectionError(error)) {
      const mapped = connectionFailure(error, this.dbHandle?.url ?? this.flags?.['database-url'] ?? '')
      return {code: mapped.code, exitCode: mapped.exitCode, message: oneLine(mapped.message), unexpected: false}
    }

    return {
      code: 'unexpected',
      exitCode: ExitCode.Failure,
      message: `unexpected error: ${oneLine(error.message ?? String(error))} (rerun with --log-level debug for details)`,
      unexpected: true,
    }
  }
}
