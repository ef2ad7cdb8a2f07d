import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'

import {EmbeddedServer} from '../../src/db/embedded.js'
import {runScope} from '../../src/pipeline/run-options.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {insertRun, insertTask, surviving} from '../helpers/retention-world.js'

describe('retention, runs prune and db stats (e2e)', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate tasks, task_events, runs cascade`.execute(t.db)
  })

  it('rvx monitor --retention deletes old finished tasks and events, and keeps live ones and the runs', async () => {
    const old = runScope(await insertRun(t.db, 'completed', 20))
    const gone = [await insertTask(t.db, {status: 'completed', scope: old, createdDaysAgo: 21, finishedDaysAgo: 21})]
    gone.push(await insertTask(t.db, {status: 'completed', createdDaysAgo: 20, finishedDaysAgo: 20}))
    const kept = [
      await insertTask(t.db, {status: 'queued', createdDaysAgo: 20}),
      await insertTask(t.db, {status: 'completed', createdDaysAgo: 1, finishedDaysAgo: 1}),
    ]

    const r = await rvx(['monitor', '--once', '--retention', '14d'], {env: {DATABASE_URL: t.url, SMTP_URL: ''}})
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr + r.stdout, /retention: removed 2 finished task\(s\) and 4 event\(s\)/)
    assert.deepEqual(await surviving(t.db, gone), {tasks: [], events: 0})
    assert.deepEqual(await surviving(t.db, kept), {tasks: kept, events: 4})
    assert.equal((await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n, 1)
  })

  it('rvx monitor --retention refuses a duration that is not one, naming the flag', async () => {
    const r = await rvx(['monitor', '--once', '--retention', 'fortnight'], {env: {DATABASE_URL: t.url}})
    assert.equal(r.code, 2)
    assert.match(r.stderr, /retention/)
    const env = await rvx(['monitor', '--once'], {env: {DATABASE_URL: t.url, RVX_RETENTION: '10s'}})
    assert.equal(env.code, 2)
    assert.match(env.stderr, /RVX_RETENTION|retention/)
  })

  it('rvx runs prune says what it would remove, and removes whole finished runs only with --yes', async () => {
    const oldId = await insertRun(t.db, 'completed', 40)
    const failedId = await insertRun(t.db, 'failed', 35)
    const recentId = await insertRun(t.db, 'completed', 2)
    const runningId = await insertRun(t.db, 'running', null)
    const {rows} = await sql<{id: string}>`
      insert into companies (run_id, domain, name, discovered_by) values (${oldId}, 'a.example', 'A', 'test') returning id`.execute(t.db)
    await sql`insert into contacts (run_id, company_id, full_name) values (${oldId}, ${rows[0].id}, 'Ada')`.execute(t.db)
    await sql`insert into llm_calls (run_id, provider, model, outcome) values (${oldId}, 'simulated', 'sim', 'ok')`.execute(t.db)
    const oldTask = await insertTask(t.db, {status: 'completed', scope: runScope(oldId), createdDaysAgo: 41, finishedDaysAgo: 41})
    const runningTask = await insertTask(t.db, {status: 'completed', scope: runScope(runningId), createdDaysAgo: 41, finishedDaysAgo: 41})
    const runIds = async () => (await sql<{id: string}>`select id from runs order by id`.execute(t.db)).rows.map((r) => Number(r.id))

    const dry = await rvx(['runs', 'prune', '--older-than', '30d', '--json'], {env: {DATABASE_URL: t.url}})
    assert.equal(dry.code, 0, dry.stderr)
    const plan = JSON.parse(dry.stdout) as {dryRun: boolean; runs: Array<{id: number; companies: number; contacts: number; llmCalls: number; removed: boolean}>}
    assert.equal(plan.dryRun, true)
    assert.deepEqual(
      plan.runs.map((r) => [r.id, r.companies, r.contacts, r.llmCalls, r.removed]),
      [
        [oldId, 1, 1, 1, false],
        [failedId, 0, 0, 0, false],
      ],
    )
    assert.deepEqual(await runIds(), [oldId, failedId, recentId, runningId])

    const human = await rvx(['runs', 'prune', '--older-than', '30d'], {env: {DATABASE_URL: t.url}})
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stderr, /Would remove 2 runs .*--yes/)

    const done = await rvx(['runs', 'prune', '--older-than', '30d', '--yes', '--json'], {env: {DATABASE_URL: t.url}})
    assert.equal(done.code, 0, done.stderr)
    assert.deepEqual(
      (JSON.parse(done.stdout) as typeof plan).runs.map((r) => [r.id, r.removed]),
      [
        [oldId, true],
        [failedId, true],
      ],
    )
    assert.deepEqual(await runIds(), [recentId, runningId])
    for (const table of ['companies', 'contacts', 'llm_calls']) {
      const n = await sql<{n: number}>`select count(*)::int as n from ${sql.table(table)} where run_id = ${oldId}`.execute(t.db)
      assert.equal(n.rows[0].n, 0, table)
    }

    assert.deepEqual(await surviving(t.db, [oldTask, runningTask]), {tasks: [runningTask], events: 2})
  })

  it('rvx runs prune needs --older-than', async () => {
    const r = await rvx(['runs', 'prune'], {env: {DATABASE_URL: t.url}})
    assert.equal(r.code, 2)
    assert.match(r.stderr, /older-than/)
  })

  it('rvx db stats lists the tables with their sizes, dead rows and autovacuum settings', async () => {
    await insertTask(t.db, {status: 'completed', createdDaysAgo: 1, finishedDaysAgo: 1})
    await sql`analyze tasks`.execute(t.db)
    const r = await rvx(['db', 'stats', '--json'], {env: {DATABASE_URL: t.url}})
    assert.equal(r.code, 0, r.stderr)
    const {tables} = JSON.parse(r.stdout) as {
      tables: Array<{
        table: string
        tableBytes: number
        indexBytes: number
        liveTuples: number
        lastAnalyze: string | null
        settings: string[]
        indexes: Array<{name: string}>
      }>
    }
    const names = tables.map((x) => x.table)
    for (const name of ['tasks', 'task_events', 'workers', 'runs', 'companies']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`)
    const tasks = tables.find((x) => x.table === 'tasks')!
    assert.ok(tasks.tableBytes > 0 && tasks.indexBytes > 0)
    assert.equal(tasks.liveTuples, 1)
    assert.notEqual(tasks.lastAnalyze, null)
    assert.ok(tasks.indexes.some((i) => i.name === 'tasks_claim_idx'))
    assert.ok(tasks.settings.includes('autovacuum_vacuum_scale_factor=0.01'), tasks.settings.join(' '))

    const table = await rvx(['db', 'stats'], {env: {DATABASE_URL: t.url}})
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /task_events/)
    assert.match(table.stdout, /dead rows/i)
  })

  it('rvx db stats works on the embedded server too (its schema applied first, as any command does)', async () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-db-stats-'))
    try {
      const r = await rvx(['db', 'stats', '--json'], {env: {RVX_HOME: home}, timeoutMs: 110_000})
      assert.equal(r.code, 0, r.stderr)
      const names = (JSON.parse(r.stdout) as {tables: Array<{table: string}>}).tables.map((x) => x.table)
      for (const name of ['tasks', 'task_events', 'workers']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`)
    } finally {
      await new EmbeddedServer({home, env: process.env}).destroy().catch(() => {})
      fs.rmSync(home, {recursive: true, force: true})
    }
  })
})
