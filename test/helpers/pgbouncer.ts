import {type ChildProcess, spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'

import {lookupUser} from '../../src/db/os-user.js'
import {freePort} from '../../src/db/ports.js'
import {waitFor} from './processes.js'

export interface Pooler {
  /** A URL of `database` through the pooler in transaction mode (pool_mode=transaction). */
  transactionUrl: string
  /** The same database through the pooler in session mode. */
  sessionUrl: string
  /** What pgbouncer said (its log goes to stderr). */
  log(): string
  stop(): Promise<void>
}

/** Where Debian's package puts pgbouncer (sbin is not on every user's PATH). */
function pgbouncerBinary(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    const candidate = path.join(dir, 'pgbouncer')
    if (dir && fs.existsSync(candidate)) return candidate
  }

  throw new Error('pgbouncer is not installed: apt-get install pgbouncer (.ci/run installs it when missing)')
}

/**
 * A real pgbouncer on 127.0.0.1 in front of `url` (the test server and one
 * of its databases), serving that database under two names: one pooled per
 * transaction, one per session. Clients' credentials are not checked
 * (auth_type any); pgbouncer logs in to the server as the URL's user. As
 * root it runs as the embedded server's unprivileged OS user (it refuses root).
 */
export async function startPgbouncer(url: string): Promise<Pooler> {
  const target = new URL(url)
  const database = decodeURIComponent(target.pathname.slice(1))
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-pgbouncer-'))
  const server = (mode: string) =>
    `host=${target.hostname} port=${target.port} dbname=${database} user=${decodeURIComponent(target.username)} password=${decodeURIComponent(target.password)} pool_mode=${mode}`
  const config = path.join(dir, 'pgbouncer.ini')
  fs.writeFileSync(
    config,
    [
      '[databases]',
      `tx_${database} = ${server('transaction')}`,
      `session_${database} = ${server('session')}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = any',
      'max_client_conn = 500',
      'default_pool_size = 60',
      'ignore_startup_parameters = extra_float_digits,options,statement_timeout',
    ].join('\n') + '\n',
    {mode: 0o600},
  )
  const root = process.getuid?.() === 0
  const user = root ? (lookupUser(process.env.RVX_PG_OS_USER || 'postgres') ?? lookupUser('rvx-postgres')) : null
  if (root && !user) throw new Error('pgbouncer refuses to run as root, and neither a postgres nor an rvx-postgres OS user exists to run it as')
  if (user) {
    fs.chownSync(dir, user.uid, user.gid)
    fs.chownSync(config, user.uid, user.gid)
  }

  const child: ChildProcess = spawn(pgbouncerBinary(), [config], {stdio: ['ignore', 'ignore', 'pipe'], ...(user ? {uid: user.uid, gid: user.gid} : {})})
  let log = ''
  child.stderr!.on('data', (d) => (log += d))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stopped = {now: false}
  const killNow = () => child.kill('SIGKILL')
  process.once('exit', killNow)

  const urlFor = (name: string) => `postgres://${target.username}:${target.password}@127.0.0.1:${port}/${name}`
  const pooler: Pooler = {
    transactionUrl: urlFor(`tx_${database}`),
    sessionUrl: urlFor(`session_${database}`),
    log: () => log,
    async stop() {
      if (stopped.now) return
      stopped.now = true
      process.removeListener('exit', killNow)
      child.kill('SIGINT')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      child.kill('SIGKILL')
      fs.rmSync(dir, {recursive: true, force: true})
    },
  }
  try {
    await waitFor(
      'pgbouncer to answer',
      async () => {
        if (child.exitCode !== null) throw new Error(`pgbouncer exited (${child.exitCode}): ${log}`)
        const client = new pg.Client({connectionString: pooler.sessionUrl, connectionTimeoutMillis: 2000})
        client.on('error', () => {})
        try {
          await client.connect()
          await client.query('select 1')
          return true
        } catch {
          return false
        } finally {
          await client.end().catch(() => {})
        }
      },
      15_000,
      100,
    )
  } catch (error) {
    await pooler.stop()
    throw error
  }

  return pooler
}
