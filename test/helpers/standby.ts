import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'

import {type OsUser, serverOsUser} from '../../src/db/os-user.js'
import {freePort} from '../../src/db/ports.js'
import {isAlive, isPostgresProcess, lastLine, quoteSetting, readPidSync, run} from '../../src/db/server-process.js'
import {waitFor} from './processes.js'
import {TcpProxy} from './tcp-proxy.js'

/**
 * A primary and an asynchronous streaming standby (Debian's PostgreSQL 15,
 * which has pg_basebackup; apt-get install postgresql-15) on 127.0.0.1, for
 * failover tests. Everything lives in one temp dir, removed by stop() and, with
 * the servers stopped, at exit. As root the servers run as the embedded
 * server's unprivileged OS user (src/db/os-user.ts), otherwise as the caller.
 *
 * Two tcp-proxies sit in the paths a test wants to break:
 * - `replication`: the standby's WAL stream from the primary. freeze() it and
 *   the primary still acknowledges commits (replication is asynchronous) that
 *   the standby never receives: forced lag.
 * - `endpoint`: where clients connect (url()); starts at the primary, and
 *   failover() (or endpoint.retarget) points it at the promoted standby.
 *
 * The database user is `rvx` (password in `password`, scram-sha-256); the
 * database `postgres` exists on both, like any fresh cluster. A process
 * killed by SIGKILL leaves its servers running: the next start() of any
 * process stops them and removes their dir once that process is gone.
 */

const PG15 = '/usr/lib/postgresql/15'
const USER = 'rvx'
const SLOT = 'rvxt_standby'
/** Temp dirs are named rvx-standby-<owner pid>-<random>: what a killed process left is found by its pid. */
const DIR_PREFIX = 'rvx-standby-'

export interface StandbyPairOptions {
  /** Where the client endpoint listens: 127.0.0.1 (default), or a veth's hostIp for clients in a namespace. */
  endpointHost?: string
  /** Extra settings for both servers (`-c name=value`), e.g. max_connections. */
  settings?: Record<string, string>
  /** A PostgreSQL install with bin/pg_basebackup; default Debian's 15. */
  programsDir?: string
}

/** Where the WAL stream stands; an LSN is null when its server cannot be asked (dead, not yet up). */
export interface ReplicationLag {
  /** The primary's current WAL position (pg_current_wal_lsn). */
  primaryLsn: string | null
  /**
   * What the primary's walsender sent and what the standby reported flushed (pg_stat_replication). Sent counts what
   * reached the replication proxy: a frozen stream shows it ahead of everything the standby has.
   */
  sentLsn: string | null
  flushLsn: string | null
  /** What the standby received and replayed (pg_last_wal_receive_lsn, pg_last_wal_replay_lsn). */
  receiveLsn: string | null
  replayLsn: string | null
  /** primaryLsn - replayLsn, in bytes: committed on the primary, not yet visible on the standby. */
  lagBytes: number | null
}

const live = new Set<StandbyPair>()

export class StandbyPair {
  readonly password = randomBytes(18).toString('base64url')
  primaryPort = 0
  standbyPort = 0
  /** The standby's connection to the primary. */
  replication!: TcpProxy
  /** The clients' connection: the primary until failover(). */
  endpoint!: TcpProxy
  private readonly bin: string
  private readonly primaryData: string
  private readonly standbyData: string
  private stopped = false

  private constructor(
    readonly dir: string,
    private readonly osUser: OsUser | null,
    private readonly options: StandbyPairOptions,
  ) {
    this.bin = path.join(options.programsDir ?? PG15, 'bin')
    this.primaryData = path.join(dir, 'primary')
    this.standbyData = path.join(dir, 'standby')
  }

  /** Initializes the primary, clones the standby from it (pg_basebackup, a physical slot), starts both, waits until the standby streams. */
  static async start(options: StandbyPairOptions = {}): Promise<StandbyPair> {
    const bin = path.join(options.programsDir ?? PG15, 'bin')
    if (!fs.existsSync(path.join(bin, 'pg_basebackup'))) throw new Error(`PostgreSQL 15 is not installed (${bin}): apt-get install postgresql-15`)
    const root = process.getuid?.() === 0
    const osUser = root ? serverOsUser(process.env.RVX_PG_OS_USER?.trim() || undefined, undefined) : null
    await removeStandbyLeftovers()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${DIR_PREFIX}${process.pid}-`))
    fs.chmodSync(dir, 0o700)
    if (osUser) fs.chownSync(dir, osUser.uid, osUser.gid)
    const pair = new StandbyPair(dir, osUser, options)
    live.add(pair)
    try {
      await pair.setUp()
    } catch (error) {
      await pair.stop()
      throw error
    }

    return pair
  }

  /** A URL through the client endpoint. */
  url(database = 'postgres'): string {
    return this.urlAt(this.endpoint.host, this.endpoint.port, database)
  }

  /** Straight to the primary, bypassing every proxy. */
  primaryUrl(database = 'postgres'): string {
    return this.urlAt('127.0.0.1', this.primaryPort, database)
  }

  /** Straight to the standby (read-only until promote()). */
  standbyUrl(database = 'postgres'): string {
    return this.urlAt('127.0.0.1', this.standbyPort, database)
  }

  async lag(): Promise<ReplicationLag> {
    const primary = await this.ask<{current: string; sent: string | null; flush: string | null}>(
      this.primaryUrl(),
      `select pg_current_wal_lsn()::text as current, r.sent_lsn::text as sent, r.flush_lsn::text as flush
         from (select 1) one left join pg_stat_replication r on r.application_name = 'standby'`,
    )
    const standby = await this.ask<{receive: string | null; replay: string | null}>(
      this.standbyUrl(),
      `select pg_last_wal_receive_lsn()::text as receive, pg_last_wal_replay_lsn()::text as replay`,
    )
    const primaryLsn = primary?.current ?? null
    const replayLsn = standby?.replay ?? null
    return {
      primaryLsn,
      sentLsn: primary?.sent ?? null,
      flushLsn: primary?.flush ?? null,
      receiveLsn: standby?.receive ?? null,
      replayLsn,
      lagBytes: primaryLsn && replayLsn ? Number(lsnBytes(primaryLsn) - lsnBytes(replayLsn)) : null,
    }
  }

  /** Waits until the standby has replayed everything the primary had written when called. */
  async waitCaughtUp(timeoutMs = 30_000): Promise<void> {
    const target = (await this.ask<{lsn: string}>(this.primaryUrl(), 'select pg_current_wal_lsn()::text as lsn'))?.lsn
    if (!target) throw new Error('the primary does not answer: nothing to catch up with')
    await waitFor(
      `the standby to replay up to ${target}`,
      async () => {
        const replay = (await this.ask<{lsn: string | null}>(this.standbyUrl(), 'select pg_last_wal_replay_lsn()::text as lsn'))?.lsn
        return replay !== null && replay !== undefined && lsnBytes(replay) >= lsnBytes(target)
      },
      timeoutMs,
      50,
    )
  }

  /** The primary's machine dies: SIGKILL to the postmaster and every process of it, so no backend finishes anything. */
  killPrimary(): void {
    const pid = readPidSync(path.join(this.primaryData, 'postmaster.pid'))
    if (pid === null || !isAlive(pid)) return
    const children = childrenOf(pid)
    for (const p of [pid, ...children]) {
      try {
        process.kill(p, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }

  /** Promotes the standby (pg_ctl promote) and waits until it accepts writes. */
  async promote(timeoutMs = 60_000): Promise<void> {
    const result = await run(path.join(this.bin, 'pg_ctl'), ['promote', '-D', this.standbyData, '-w', '-t', String(Math.ceil(timeoutMs / 1000))], this.osUser)
    if (result.code !== 0) throw new Error(`pg_ctl promote failed: ${lastLine(result.output)} (log: ${this.logFile('standby')})`)
    await waitFor(
      'the promoted standby to accept writes',
      async () => (await this.ask<{xid: string}>(this.standbyUrl(), 'select txid_current()::text as xid')) !== null,
      timeoutMs,
      100,
    )
  }

  /** Promotes the standby, points the endpoint at it and resets the endpoint's open connections (a managed failover). */
  async failover(): Promise<void> {
    await this.promote()
    this.endpoint.retarget('127.0.0.1', this.standbyPort)
    this.endpoint.cutAll()
  }

  /** Stops both servers and both proxies and removes the temp dir. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    await Promise.all([this.endpoint?.close(), this.replication?.close()])
    for (const data of [this.standbyData, this.primaryData]) {
      if (readPidSync(path.join(data, 'postmaster.pid')) === null) continue
      await run(path.join(this.bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '30'], this.osUser).catch(() => undefined)
    }

    this.stopNowSync()
    live.delete(this)
  }

  /** For exit handlers: immediate shutdown of whatever still runs, then the temp dir goes. */
  stopNowSync(): void {
    for (const data of [this.standbyData, this.primaryData]) {
      const pid = readPidSync(path.join(data, 'postmaster.pid'))
      if (pid === null || !isAlive(pid)) continue
      try {
        process.kill(pid, 'SIGQUIT')
      } catch {
        // already gone
      }
    }

    fs.rmSync(this.dir, {recursive: true, force: true, maxRetries: 5, retryDelay: 100})
  }

  logFile(server: 'primary' | 'standby'): string {
    return path.join(this.dir, `${server}.log`)
  }

  private async setUp(): Promise<void> {
    const passfile = path.join(this.dir, 'pgpass')
    const pwfile = path.join(this.dir, 'pwfile')
    this.writeOwned(pwfile, this.password + '\n')
    this.writeOwned(passfile, `127.0.0.1:*:*:${USER}:${this.password}\n`)

    await this.pg('initdb', [
      '-D',
      this.primaryData,
      '-U',
      USER,
      `--pwfile=${pwfile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--no-locale',
      '--no-instructions',
    ])
    fs.rmSync(pwfile)
    this.primaryPort = await freePort()
    await this.startServer('primary', this.primaryData, this.primaryPort)

    this.replication = await TcpProxy.start({target: {host: '127.0.0.1', port: this.primaryPort}})
    const conninfo = `host=127.0.0.1 port=${this.replication.port} user=${USER} passfile=${passfile} application_name=standby`
    await this.pg('pg_basebackup', ['-d', conninfo, '-D', this.standbyData, '-X', 'stream', '-C', '-S', SLOT, '--no-sync'])
    fs.appendFileSync(path.join(this.standbyData, 'postgresql.auto.conf'), `primary_conninfo = ${quoteSetting(conninfo)}\nprimary_slot_name = '${SLOT}'\n`)
    this.writeOwned(path.join(this.standbyData, 'standby.signal'), '')
    this.standbyPort = await freePort()
    await this.startServer('standby', this.standbyData, this.standbyPort)

    this.endpoint = await TcpProxy.start({host: this.options.endpointHost, target: {host: '127.0.0.1', port: this.primaryPort}})
    await waitFor(
      'the standby to stream from the primary',
      async () =>
        (await this.ask<{state: string}>(this.primaryUrl(), `select state from pg_stat_replication where application_name = 'standby' and state = 'streaming'`))
          ?.state,
      30_000,
      100,
    )
  }

  private async startServer(name: 'primary' | 'standby', data: string, port: number): Promise<void> {
    const settings: Record<string, string> = {listen_addresses: '127.0.0.1', unix_socket_directories: '', fsync: 'off', ...this.options.settings}
    const serverArgs = [`-p ${port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${quoteSetting(v)}`)].join(' ')
    await this.pg('pg_ctl', ['start', '-D', data, '-l', this.logFile(name), '-w', '-t', '60', '-o', serverArgs])
  }

  private async pg(program: string, args: string[]): Promise<void> {
    const result = await run(path.join(this.bin, program), args, this.osUser)
    if (result.code !== 0) throw new Error(`${program} failed: ${lastLine(result.output)} (see ${this.dir})`)
  }

  private writeOwned(file: string, text: string): void {
    fs.writeFileSync(file, text, {mode: 0o600})
    if (this.osUser) fs.chownSync(file, this.osUser.uid, this.osUser.gid)
  }

  private urlAt(host: string, port: number, database: string): string {
    return `postgres://${USER}:${encodeURIComponent(this.password)}@${host}:${port}/${database}`
  }

  /** One row of `sql` on a fresh connection, or null when the server cannot be reached or refuses (bounded: 5 s). */
  private async ask<T>(url: string, sql: string): Promise<T | null> {
    const client = new pg.Client({connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 5000})
    client.on('error', () => {})
    try {
      await client.connect()
      return ((await client.query(sql)).rows[0] as T | undefined) ?? null
    } catch {
      return null
    } finally {
      await client.end().catch(() => undefined)
    }
  }
}

/** An LSN ("16/B374D848") as a byte position. */
export function lsnBytes(lsn: string): bigint {
  const [high, low] = lsn.split('/')
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`)
}

/** Stops the servers of pairs whose process no longer exists (killed by SIGKILL) and removes their dirs. */
export async function removeStandbyLeftovers(): Promise<void> {
  for (const entry of fs.readdirSync(os.tmpdir())) {
    const owner = Number(entry.match(/^rvx-standby-(\d+)-/)?.[1])
    if (!owner || owner === process.pid || isAlive(owner)) continue
    const dir = path.join(os.tmpdir(), entry)
    try {
      for (const server of ['primary', 'standby']) {
        const pid = readPidSync(path.join(dir, server, 'postmaster.pid'))
        if (pid !== null && isAlive(pid) && (await isPostgresProcess(pid))) process.kill(pid, 'SIGQUIT')
      }

      fs.rmSync(dir, {recursive: true, force: true, maxRetries: 5, retryDelay: 100})
    } catch {
      // Another user's (we are not root): theirs to sweep.
    }
  }
}

function childrenOf(pid: number): number[] {
  const children: number[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      // The ppid is the 2nd field after the parenthesized command name, which may itself hold spaces.
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) children.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }

  return children
}

process.on('exit', () => {
  for (const pair of live) pair.stopNowSync()
})
