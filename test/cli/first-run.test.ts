import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {openDatabase} from '../../src/db/connect.js'
import {EmbeddedServer} from '../../src/db/embedded.js'
import {migrationStatus} from '../../src/db/migrator.js'
import {createDatabase, dropDatabase, urlFor} from '../helpers/db.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'

const APPLIED = /^rvx: applied \d+ migrations? to the embedded database/

describe('a first run: the embedded database migrates itself, an external one does not', function () {
  this.timeout(180_000)
  const homes: string[] = []
  const databases: string[] = []

  function newHome(): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-first-run-'))
    homes.push(dir)
    return dir
  }

  after(async () => {
    for (const dir of homes) {
      await new EmbeddedServer({home: dir, env: process.env}).destroy().catch(() => {})
      fs.rmSync(dir, {recursive: true, force: true})
    }

    for (const name of databases) await dropDatabase(name)
  })

  it('orchestrate on a fresh RVX_HOME applies the schema itself, says so once on stderr, and completes', async () => {
    const home = newHome()
    const out = path.join(home, 'exports')
    const env = {RVX_HOME: home, OPENAI_API_KEY: ''}
    const res = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '3', '--output-dir', out, '--json'], {
      env,
      timeoutMs: 150_000,
    })
    assert.equal(res.code, 0, res.stderr)
    assert.equal(JSON.parse(res.stdout).status, 'completed')
    assert.equal(lines(res.stderr).filter((l) => APPLIED.test(l)).length, 1, res.stderr)

    // Later commands find the schema current and say nothing about it.
    const list = await rvx(['runs', 'list', '--json'], {env})
    assert.equal(list.code, 0, list.stderr)
    assert.equal(JSON.parse(list.stdout).runs.length, 1)
    assert.doesNotMatch(list.stderr, /applied/)
  })

  it('two commands at once on a fresh RVX_HOME: both succeed, the schema is applied once', async () => {
    const env = {RVX_HOME: newHome()}
    const [a, b] = await Promise.all([rvx(['runs', 'list', '--json'], {env}), rvx(['workers', 'status', '--json'], {env})])
    assert.equal(a.code, 0, a.stderr)
    assert.equal(b.code, 0, b.stderr)
    assert.equal([a.stderr, b.stderr].flatMap((e) => lines(e)).filter((l) => APPLIED.test(l)).length, 1, a.stderr + b.stderr)
  })

  it('an external DATABASE_URL still has to be migrated on purpose: exit 3, one line, nothing applied', async () => {
    const name = await createDatabase('first')
    databases.push(name)
    const url = urlFor(name)
    const res = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '3'], {env: {DATABASE_URL: url}})
    assert.equal(res.code, 3, res.stderr)
    assert.equal(lines(res.stderr).length, 1, res.stderr)
    assert.match(res.stderr, /^Error: the database schema is not up to date .*run rvx migrate/)
    assert.equal(hasStackTrace(res.stderr), false)

    const handle = await openDatabase(url)
    try {
      assert.ok(
        (await migrationStatus(handle.db)).every((m) => m.status === 'pending'),
        'no migration was applied to the external database',
      )
    } finally {
      await handle.close()
    }
  })
})
