import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import stringWidth from 'string-width'

import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {registeredWorker} from '../helpers/runtime.js'
import {STAGE_KINDS} from '../../src/pipeline/stages/index.js'

/**
 * Every table for people fits the terminal: spawned with COLUMNS=80 and 120
 * (the width a pipe is fitted to; a terminal's own width is used the same
 * way), no line of runs list, runs show, workers status, limits, cache stats
 * or db stats is wider; piped without COLUMNS, the output is complete.
 */
describe('e2e: tables fit the terminal', function () {
  this.timeout(180_000)
  // Registered before the database's own hooks, so the worker's session ends before the database is dropped.
  after(async () => {
    await worker?.close()
    fs.rmSync(out, {recursive: true, force: true})
  })
  const t = useFreshDatabase()
  const env = (extra: NodeJS.ProcessEnv = {}) => ({DATABASE_URL: t.url, OPENAI_API_KEY: '', ...extra})
  const REQUEST = 'family-owned firms that manage single-family homes and small multifamily buildings around Austin and Round Rock'
  let out: string
  let runId: number
  let worker: {close(): Promise<void>}

  before(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-tables-'))
    const criteria = JSON.stringify({pms: 'Buildium', state: 'TX', natural_request: REQUEST})
    const run = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', criteria, '--quantity', '3', '--output-dir', out, '--json'], {
      env: env(),
      timeoutMs: 120_000,
    })
    assert.equal(run.code, 0, run.stderr)
    runId = JSON.parse(run.stdout).runId
    const limit = await rvx(
      ['limits', 'set', '--model', 'a-model-with-a-rather-long-name-2026-12-01', '--endpoint', 'http://127.0.0.1:8000/v1', '--rpm', '60'],
      {
        env: env(),
      },
    )
    assert.equal(limit.code, 0, limit.stderr)
    worker = await registeredWorker(t.db, t.url, 'worker-on-a-host-with-a-long-name.example.internal-4242-9f3a', [...STAGE_KINDS])
  })

  const commands = () => [
    ['runs', 'list'],
    ['runs', 'show', String(runId)],
    ['runs', 'watch', String(runId)],
    ['workers', 'status'],
    ['limits'],
    ['cache', 'stats'],
    ['db', 'stats'],
  ]

  for (const width of [80, 120]) {
    it(`no line is wider than ${width} columns`, async () => {
      for (const args of commands()) {
        const r = await rvx(args, {env: env({COLUMNS: String(width)})})
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
        const rows = r.stdout.split('\n').filter((l) => l.trim())
        assert.ok(rows.length >= 2, `${args.join(' ')} printed a table: ${r.stdout}`)
        const widest = Math.max(...rows.map((l) => stringWidth(l)))
        assert.ok(widest <= width, `${args.join(' ')} at ${width} columns has a line of ${widest}:\n${r.stdout}`)
      }
    })
  }

  it('piped without COLUMNS, rows are complete: the full criteria, every column', async () => {
    const list = await rvx(['runs', 'list'], {env: env()})
    assert.equal(list.code, 0, list.stderr)
    assert.ok(list.stdout.includes(REQUEST), list.stdout)
    assert.deepEqual(list.stdout.split('\n')[0].split(/\s{2,}/), [
      'ID',
      'STATUS',
      'STAGE',
      'LEADS',
      'CONTACTS',
      'COST',
      '$/LEAD',
      'CALLS',
      'CACHE HITS',
      'PROVIDER',
      'CREATED',
      'CRITERIA',
    ])
    assert.ok(!list.stdout.includes('…'))

    // At 80 columns the criteria are cut with … and the least important columns left out.
    const narrow = await rvx(['runs', 'list'], {env: env({COLUMNS: '80'})})
    assert.match(narrow.stdout, /…/)
    assert.ok(!narrow.stdout.split('\n')[0].includes('CACHE HITS'), narrow.stdout)
  })

  it('runs list --status S --limit N lists only runs in S, at most N; an unknown status is a usage error naming the flag', async () => {
    const completed = JSON.parse((await rvx(['runs', 'list', '--status', 'completed', '--limit', '1', '--json'], {env: env()})).stdout)
    assert.deepEqual(
      completed.runs.map((r: {id: number; status: string}) => [r.id, r.status]),
      [[runId, 'completed']],
    )
    const failed = await rvx(['runs', 'list', '--status', 'failed'], {env: env()})
    assert.equal(failed.code, 0, failed.stderr)
    assert.equal(failed.stdout, '')
    assert.match(failed.stderr, /^No failed runs \(rvx runs list without --status shows them all\)\.\n$/)
    const bad = await rvx(['runs', 'list', '--status', 'done'], {env: env()})
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /^Error: --status must be one of running, needs_decision, completed, failed, canceled \(got done\)/)
  })

  it('runs show: key/value lines, then the selected companies as a table; workers status says stages', async () => {
    const show = await rvx(['runs', 'show', String(runId)], {env: env()})
    assert.equal(show.code, 0, show.stderr)
    const [facts, companies] = show.stdout.split('\n\n')
    assert.match(facts, /^run\s+\d+\nstatus\s+completed\n/)
    assert.match(facts, /\nfinished\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(took \d+s\)\n/)
    assert.match(facts, /\nverified natural request\s+selected: \d+ match/)
    assert.match(facts, /\nverified residential portfolio\s+kept \d+ out\n/, 'the residential check is not mistaken for the units criterion')
    assert.match(companies, /^COMPANY\s+DOMAIN\s+SCORE\s+PMS\s+CONTACTS\n/)
    assert.ok(companies.trim().split('\n').length >= 2, companies)

    // The registered worker sends no heartbeats of its own: one now, so the sweep of workers status does not find it silent.
    await t.db.updateTable('workers').set({last_heartbeat_at: new Date()}).execute()
    const status = await rvx(['workers', 'status'], {env: env()})
    assert.equal(status.code, 0, status.stderr)
    const fleet = status.stdout.split('\n\n')[0]
    assert.match(fleet, /^FLEET\nSTAGE /)
    for (const stage of ['discovery', 'research', 'contacts']) assert.match(fleet, new RegExp(`\\n${stage}\\s`))
    assert.doesNotMatch(fleet, /\b(lead-list|company|contact)\b/)
    assert.match(status.stdout, /worker-on-a-host-with-a-long-name\.example\.internal-4242-9f3a\s+all\s+default\s+idle/)
  })
})
