import assert from 'node:assert/strict'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {isAlive} from '../../src/db/server-process.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'

describe('rvx db (embedded PostgreSQL, spawned processes)', function () {
  this.timeout(120_000)
  let home: string
  const homes: string[] = []

  function newHome(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-db-test-'))
    homes.push(dir)
    return dir
  }

  beforeEach(() => {
    home = newHome()
  })

  after(async () => {
    // Never leave a server behind, even when an assertion failed mid-test.
    for (const dir of homes) {
      await new EmbeddedServer({home: dir, env: process.env}).stop().catch(() => {})
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })

  it('starts, reports status, prints a working URL, and stops without leaving a server behind', async () => {
    const env = {RVX_HOME: home}
    const start = await rvx(['db', 'start', '--json'], {env})
    assert.equal(start.code, 0, start.stderr)
    const started = JSON.parse(start.stdout)
    assert.equal(started.started, true)
    assert.ok(isAlive(started.pid), 'postmaster should be running after db start returns')

    // A second start finds it running.
    const again = JSON.parse((await rvx(['db', 'start', '--json'], {env})).stdout)
    assert.equal(again.started, false)
    assert.equal(again.pid, started.pid)

    const status = await rvx(['db', 'status', '--json'], {env})
    assert.equal(status.code, 0)
    const s = JSON.parse(status.stdout)
    assert.equal(s.running, true)
    assert.equal(s.pid, started.pid)
    assert.match(s.url, /^postgres:\/\/rvx:\*\*\*\*@127\.0\.0\.1:\d+\/rvx$/, 'status masks the password')

    const url = await rvx(['db', 'url'], {env})
    assert.equal(url.code, 0)
    const connection = url.stdout.trim()
    assert.match(connection, /^postgres:\/\/rvx:[^*@]+@127\.0\.0\.1:\d+\/rvx$/)
    const client = new pg.Client({connectionString: connection})
    await client.connect()
    const {rows} = await client.query("select current_user as user, host(inet_server_addr()) as addr, current_setting('listen_addresses') as listen")
    await client.end()
    assert.equal(rows[0].user, 'rvx')
    assert.equal(rows[0].addr, '127.0.0.1')
    assert.equal(rows[0].listen, '127.0.0.1', 'listens on loopback only')

    const stateMode = fs.statSync(path.join(home, 'pg', 'server.json')).mode & 0o777
    assert.equal(stateMode, 0o600, 'credentials file is private')

    const stop = await rvx(['db', 'stop', '--json'], {env})
    assert.equal(stop.code, 0)
    assert.deepEqual(JSON.parse(stop.stdout), {stopped: true})
    assert.equal(isAlive(started.pid), false, 'no postgres process left after db stop')
    const after = JSON.parse((await rvx(['db', 'status', '--json'], {env})).stdout)
    assert.equal(after.running, false)
  })

  it('starts once when two commands need it at the same time, and says so on stderr', async () => {
    const env = {RVX_HOME: home}
    const [a, b] = await Promise.all([rvx(['migrate', '--json'], {env}), rvx(['migrate', '--json'], {env})])
    assert.equal(a.code, 0, a.stderr)
    assert.equal(b.code, 0, b.stderr)
    const notices = [a.stderr, b.stderr].filter((e) => /started the embedded PostgreSQL server/.test(e))
    assert.equal(notices.length, 1, 'exactly one process started the server')
    JSON.parse(a.stdout)
    JSON.parse(b.stdout)
    await rvx(['db', 'stop'], {env})
  })

  it('exits 3 with one line when the port is taken', async () => {
    const blocker = net.createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const {port} = blocker.address() as net.AddressInfo
    try {
      const res = await rvx(['db', 'start'], {env: {RVX_HOME: home, RVX_PG_PORT: String(port)}})
      assert.equal(res.code, 3)
      const errors = lines(res.stderr).filter((l) => l.startsWith('Error:'))
      assert.equal(errors.length, 1)
      assert.match(errors[0], new RegExp(`port ${port} on 127.0.0.1 is already in use.*RVX_PG_PORT`))
      assert.equal(hasStackTrace(res.stderr), false)
    } finally {
      blocker.close()
    }
  })

  it('exits 3 with one line on a stale lock file', async () => {
    const env = {RVX_HOME: home}
    assert.equal((await rvx(['db', 'start'], {env})).code, 0)
    assert.equal((await rvx(['db', 'stop'], {env})).code, 0)
    // A lock naming a live process that is not PostgreSQL (this test runner).
    const {dataDir} = JSON.parse((await rvx(['db', 'status', '--json'], {env})).stdout)
    fs.writeFileSync(path.join(dataDir, 'postmaster.pid'), `${process.pid}\n${dataDir}\n`)
    const res = await rvx(['db', 'start'], {env})
    assert.equal(res.code, 3)
    assert.equal(lines(res.stderr).filter((l) => l.startsWith('Error:')).length, 1)
    assert.match(res.stderr, /Error: stale lock file .*postmaster\.pid.*delete the file/)
    assert.equal(hasStackTrace(res.stderr), false)
  })

  it('refuses RVX_PG_OS_USER naming no OS user: one line, exit 3, no server started as anyone else', async () => {
    const env = {RVX_HOME: home, RVX_PG_OS_USER: 'nosuchuser'}
    const text = await rvx(['runs', 'list'], {env})
    assert.equal(text.code, 3, text.stderr)
    assert.equal(lines(text.stderr).length, 1, text.stderr)
    assert.match(text.stderr, /^Error: RVX_PG_OS_USER=nosuchuser names no such OS user: .*unset RVX_PG_OS_USER/)
    assert.equal(hasStackTrace(text.stderr), false)

    const json = await rvx(['db', 'start', '--json'], {env})
    assert.equal(json.code, 3)
    assert.equal(JSON.parse(json.stdout).error.code, 'embedded_os_user')

    assert.equal(fs.existsSync(path.join(home, 'pg', 'server.json')), false, 'nothing was initialized')
    assert.equal(JSON.parse((await rvx(['db', 'status', '--json'], {env: {RVX_HOME: home}})).stdout).running, false)
  })

  it('exits 3 with one line when the data directory cannot be written', async () => {
    const file = path.join(home, 'not-a-dir')
    fs.writeFileSync(file, '')
    const res = await rvx(['db', 'start', '--json'], {env: {RVX_HOME: path.join(file, 'rvx')}})
    assert.equal(res.code, 3)
    const out = JSON.parse(res.stdout)
    assert.equal(out.error.code, 'data_dir_not_writable')
    assert.match(out.error.message, /not writable.*set RVX_HOME/)
  })
})
