import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'

import {assertSchemaCurrent, MIGRATION_TABLE, migrationStatus, migrator} from '../../src/db/migrator.js'
import {openDatabase} from '../../src/db/connect.js'
import {EmbeddedServer} from '../../src/db/embedded.js'
import {createDatabase, dropDatabase, urlFor} from '../helpers/db.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'

describe('rvx migrate', function () {
  this.timeout(120_000)
  const created: string[] = []

  async function fresh(): Promise<string> {
    const name = await createDatabase('mig')
    created.push(name)
    return urlFor(name)
  }

  after(async () => {
    for (const name of created) await dropDatabase(name)
  })

  it('applies pending migrations, then has nothing to do', async () => {
    const url = await fresh()
    const before = await rvx(['migrate', '--status', '--json'], {env: {DATABASE_URL: url}})
    assert.equal(before.code, 0, before.stderr)
    const status = JSON.parse(before.stdout)
    assert.ok(status.pending > 0)
    assert.ok(status.migrations.every((m: {status: string}) => m.status === 'pending'))

    const first = await rvx(['migrate', '--json'], {env: {DATABASE_URL: url}})
    assert.equal(first.code, 0, first.stderr)
    const applied = JSON.parse(first.stdout)
    assert.deepEqual(
      applied.applied,
      status.migrations.map((m: {name: string}) => m.name),
    )
    assert.equal(applied.pending, 0)

    const second = await rvx(['migrate'], {env: {DATABASE_URL: url}})
    assert.equal(second.code, 0)
    assert.match(second.stderr, /Nothing to migrate/)

    const after = JSON.parse((await rvx(['migrate', '--status', '--json'], {env: {DATABASE_URL: url}})).stdout)
    assert.equal(after.pending, 0)
    assert.ok(after.migrations.every((m: {status: string; appliedAt: string}) => m.status === 'applied' && !Number.isNaN(Date.parse(m.appliedAt))))
  })

  it('is safe when two processes run it at once', async () => {
    const url = await fresh()
    const [a, b] = await Promise.all([rvx(['migrate', '--json'], {env: {DATABASE_URL: url}}), rvx(['migrate', '--json'], {env: {DATABASE_URL: url}})])
    assert.equal(a.code, 0, a.stderr)
    assert.equal(b.code, 0, b.stderr)
    const total = JSON.parse(a.stdout).applied.length + JSON.parse(b.stdout).applied.length
    const handle = await openDatabase(url)
    try {
      const all = await migrationStatus(handle.db)
      assert.equal(total, all.length, 'each migration applied exactly once across both processes')
      const rows = await handle.db
        .selectFrom(MIGRATION_TABLE as any)
        .select('name' as any)
        .execute()
      assert.equal(rows.length, all.length)
    } finally {
      await handle.close()
    }
  })

  it('refuses an unmigrated database with "run rvx migrate" (exit 3)', async () => {
    const url = await fresh()
    const handle = await openDatabase(url)
    try {
      await assert.rejects(assertSchemaCurrent(handle.db), (error: Error & {exitCode?: number}) => {
        assert.equal(error.exitCode, 3)
        assert.match(error.message, /run rvx migrate/)
        return true
      })
    } finally {
      await handle.close()
    }
  })

  /** Takes back the newest migration of the database at `url`: its schema is one behind this rvx. */
  async function oneBehind(url: string): Promise<string> {
    const handle = await openDatabase(url)
    try {
      const {error, results} = await migrator(handle.db).migrateDown()
      if (error) throw error
      assert.equal(results?.length, 1)
      assert.equal((await migrationStatus(handle.db)).filter((m) => m.status === 'pending').length, 1)
      return results![0].migrationName
    } finally {
      await handle.close()
    }
  }

  it('an external database one migration behind is refused (exit 3, one line) and left as it is', async () => {
    const url = await fresh()
    assert.equal((await rvx(['migrate'], {env: {DATABASE_URL: url}})).code, 0)
    const behind = await oneBehind(url)
    for (const args of [
      ['runs', 'list'],
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '1', '--detach'],
    ]) {
      const res = await rvx(args, {env: {DATABASE_URL: url}})
      assert.equal(res.code, 3, res.stderr)
      assert.equal(lines(res.stderr).length, 1, res.stderr)
      assert.match(res.stderr, /^Error: the database schema is not up to date .*run rvx migrate/)
    }

    const handle = await openDatabase(url)
    try {
      assert.deepEqual(
        (await migrationStatus(handle.db)).filter((m) => m.status === 'pending').map((m) => m.name),
        [behind],
        'nothing applied',
      )
    } finally {
      await handle.close()
    }
  })

  it('the embedded database one migration behind is upgraded by the next command, which says so once', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-behind-'))
    const server = new EmbeddedServer({home, env: process.env})
    try {
      assert.equal((await rvx(['runs', 'list'], {env: {RVX_HOME: home}})).code, 0)
      const url = (await server.url())!
      await oneBehind(url)
      const res = await rvx(['runs', 'list', '--json'], {env: {RVX_HOME: home}})
      assert.equal(res.code, 0, res.stderr)
      assert.deepEqual(
        lines(res.stderr).filter((l) => /applied/.test(l)),
        ['rvx: applied 1 migration to the embedded database (its schema follows rvx)'],
      )
      const handle = await openDatabase(url)
      try {
        assert.ok((await migrationStatus(handle.db)).every((m) => m.status === 'applied'))
      } finally {
        await handle.close()
      }
    } finally {
      await server.destroy().catch(() => {})
      fs.rmSync(home, {recursive: true, force: true})
    }
  })

  it('exits 3 with one line on stderr when DATABASE_URL is unreachable', async () => {
    const res = await rvx(['migrate'], {env: {DATABASE_URL: 'postgres://x:y@127.0.0.1:1/z'}})
    assert.equal(res.code, 3)
    assert.equal(lines(res.stderr).length, 1, res.stderr)
    assert.match(res.stderr, /^Error: cannot connect to PostgreSQL at x@127\.0\.0\.1:1\/z: connection refused/)
    assert.doesNotMatch(res.stderr + res.stdout, /:y@/, 'the password is never printed')
    assert.equal(res.stdout, '')
  })

  it('keeps exit 3 under --json and prints the error as JSON', async () => {
    const res = await rvx(['migrate', '--json'], {env: {DATABASE_URL: 'postgres://x:y@127.0.0.1:1/z'}})
    assert.equal(res.code, 3)
    const out = JSON.parse(res.stdout)
    assert.equal(out.error.exitCode, 3)
    assert.equal(out.error.code, 'database_unreachable')
  })

  it('exits 3 with one line on a wrong password, without printing it', async () => {
    const u = new URL(await fresh())
    u.password = 'definitely-wrong'
    const res = await rvx(['migrate'], {env: {DATABASE_URL: u.toString()}})
    assert.equal(res.code, 3)
    assert.equal(lines(res.stderr).length, 1, res.stderr)
    assert.match(res.stderr, /refused the credentials: check the user name and password in DATABASE_URL/)
    assert.doesNotMatch(res.stderr, /definitely-wrong/)
  })

  describe('as a role that does not own the schema', () => {
    const role = `rvx_limited_${randomBytes(4).toString('hex')}`
    const password = 'limited pass'
    const admin = async (statement: string, database = 'postgres') => {
      const client = new pg.Client({connectionString: urlFor(database)})
      await client.connect()
      try {
        await client.query(statement)
      } finally {
        await client.end()
      }
    }

    const as = (url: string) => {
      const u = new URL(url)
      u.username = role
      u.password = password
      return u.toString()
    }

    before(async () => {
      await admin(`create role ${role} login password '${password}'`)
    })

    after(async () => {
      for (const name of created.splice(0)) await dropDatabase(name)
      await admin(`drop role if exists ${role}`)
    })

    it('says on a fresh database which migration could not start, and that the role needs CREATE on the schema', async () => {
      const url = await fresh()
      const owner = decodeURIComponent(new URL(url).username)
      const r = await rvx(['migrate'], {env: {DATABASE_URL: as(url)}})
      assert.equal(r.code, 1, r.stderr)
      assert.deepEqual(lines(r.stderr).slice(0, -1), ['Applying migrations...'], 'one line of error')
      assert.ok(!hasStackTrace(r.stderr))
      assert.match(
        lines(r.stderr).at(-1)!,
        /^Error: migration 0001_meta \(creating the table rvx_migration before it\) failed: permission denied for schema public: /,
      )
      assert.match(
        r.stderr,
        new RegExp(
          `role ${role} may not create tables in schema public: run rvx migrate as ${owner}, or have it grant the privilege \\(GRANT CREATE ON SCHEMA public TO ${role}\\)`,
        ),
      )
      assert.doesNotMatch(r.stderr, /unknown/)
    })

    it("names the migration that failed and the role to run it as, when rvx's tables belong to another role", async () => {
      const url = await fresh()
      const owner = decodeURIComponent(new URL(url).username)
      const handle = await openDatabase(url)
      let failing: string
      let pending: number
      try {
        // Installed by its owner up to the one before a migration that alters a table it made (0019 drops CHECKs; a
        // migration that only creates tables would pass); the limited role may create tables and use these.
        const all = await migrationStatus(handle.db)
        const at = all.findIndex((m) => m.name === '0019_stage_names_checked_in_code')
        assert.ok(at > 0)
        failing = all[at].name
        pending = all.length - at
        const {error} = await migrator(handle.db).migrateTo(all[at - 1].name)
        assert.equal(error, undefined)
      } finally {
        await handle.close()
      }

      const database = new URL(url).pathname.slice(1)
      await admin(`grant create on schema public to ${role}; grant all on all tables in schema public to ${role}`, database)
      const r = await rvx(['migrate'], {env: {DATABASE_URL: as(url)}})
      assert.equal(r.code, 1, r.stderr)
      assert.deepEqual(lines(r.stderr).slice(0, -1), ['Applying migrations...'], 'one line of error')
      assert.match(
        lines(r.stderr).at(-1)!,
        new RegExp(
          `^Error: migration ${failing} failed: must be owner of (table|relation|function) \\w+: role ${role} does not own rvx's tables \\(${owner} does\\): run rvx migrate as ${owner}\\. Nothing of it was applied\\.`,
        ),
      )
      const after = await rvx(['migrate', '--status', '--json'], {env: {DATABASE_URL: url}})
      assert.equal(JSON.parse(after.stdout).pending, pending, 'nothing of it (or after it) was applied')
    })
  })

  it('exits 3 on a malformed DATABASE_URL and 2 on an unknown flag, one line each, no stack trace', async () => {
    const bad = await rvx(['migrate'], {env: {DATABASE_URL: 'mysql://nope'}})
    assert.equal(bad.code, 3)
    assert.equal(lines(bad.stderr).length, 1)
    assert.match(bad.stderr, /must start with postgres:\/\//)

    const usage = await rvx(['migrate', '--bogus'])
    assert.equal(usage.code, 2)
    assert.equal(lines(usage.stderr).length, 1)
    assert.match(usage.stderr, /Nonexistent flag: --bogus\. See rvx migrate --help\./)
    for (const r of [bad, usage]) assert.equal(hasStackTrace(r.stderr), false)
  })
})
