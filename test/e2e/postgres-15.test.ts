import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {STAGES} from '../../src/pipeline/stages/index.js'
import {rvx} from '../helpers/cli.js'

// Debian's package (apt-get install postgresql-15; .ci/run installs it when missing).
const PROGRAMS = '/usr/lib/postgresql/15'
const BIN = path.join(PROGRAMS, 'bin')

/** rvx on the oldest PostgreSQL the suite runs, beside the embedded 18 every other test uses. */
describe("e2e: Debian's PostgreSQL 15", function () {
  this.timeout(240_000)
  let home: string
  let server: EmbeddedServer
  let url: string

  before(async function () {
    this.timeout(120_000)
    if (!fs.existsSync(path.join(BIN, 'postgres'))) throw new Error(`PostgreSQL 15 is not installed (${BIN}): apt-get install postgresql-15 (.ci/run does)`)
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-pg15-'))
    server = new EmbeddedServer({
      home,
      env: {...process.env, RVX_PG_PORT: ''},
      settings: {fsync: 'off'},
      programsDir: PROGRAMS,
    })
    url = (await server.start()).url
  })

  after(async () => {
    await server?.stop().catch(() => {})
    if (home) fs.rmSync(home, {recursive: true, force: true})
  })

  it('migrates, drives a run with in-process workers, shows the fleet, and runs the monitor', async () => {
    const client = new pg.Client({connectionString: url})
    await client.connect()
    const version = (await client.query<{v: string}>(`select current_setting('server_version_num') as v`)).rows[0].v
    await client.end()
    assert.match(version, /^15\d{4}$/)

    const env = {DATABASE_URL: url}
    const migrated = await rvx(['migrate', '--json'], {env})
    assert.equal(migrated.code, 0, migrated.stderr)
    assert.equal(JSON.parse(migrated.stdout).pending, 0)

    const run = await rvx(
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '3', '--output-dir', path.join(home, 'exports'), '--json'],
      {env, timeoutMs: 180_000},
    )
    assert.equal(run.code, 0, run.stderr)
    const report = JSON.parse(run.stdout)
    assert.equal(report.status, 'completed')
    assert.equal(report.progress.companies.selected, 3)
    assert.ok(fs.existsSync(report.export.files.contacts))

    const status = await rvx(['workers', 'status', '--json', '--all'], {env})
    assert.equal(status.code, 0, status.stderr)
    const fleet = JSON.parse(status.stdout).fleet as Array<{type: string; tasksDone: number; stopped: number}>
    // Its workers take every stage; the run asked for none of the opt-in ones, so only the others did work.
    assert.deepEqual(
      fleet.map((f) => f.type),
      STAGES.map((s) => s.kind).sort(),
    )
    const ran = new Set(STAGES.filter((s) => !s.optIn).map((s) => s.kind))
    assert.ok(
      fleet.every((f) => f.stopped === 1 && f.tasksDone > 0 === ran.has(f.type)),
      JSON.stringify(fleet),
    )

    const monitor = await rvx(['monitor', '--once'], {env})
    assert.equal(monitor.code, 0, monitor.stderr)
    assert.match(monitor.stderr, /fleet: 0 live/)
  })
})
