import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {stageWord} from '../../src/pipeline/stage-words.js'
import {hasStackTrace, lines, rvx, spawnRvx} from '../helpers/cli.js'
import {createDatabase, dropDatabase, urlFor, useFreshDatabase} from '../helpers/db.js'
import {waitFor} from '../helpers/processes.js'
import {STAGE_KINDS, stageChoices} from '../../src/pipeline/stages/index.js'

describe('e2e: rvx worker (spawned processes)', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})

  it('two workers finish a detached run and exit when idle', async () => {
    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"NC"}', '--quantity', '6', '--detach', '--json'], {env: env()})
    const {runId} = JSON.parse(created.stdout)
    const [a, b] = await Promise.all([
      rvx(['worker', 'all', '--run', String(runId), '--exit-when-idle', '--id', 'w-a'], {env: env()}),
      rvx(['worker', 'company', 'lead-list', 'contact', '--run', String(runId), '--exit-when-idle', '--id', 'w-b', '--concurrency', '2'], {env: env()}),
    ])
    assert.equal(a.code, 0, a.stderr)
    assert.equal(b.code, 0, b.stderr)
    for (const line of lines(a.stderr)) JSON.parse(line) // JSON lines when not on a terminal
    const show = JSON.parse((await rvx(['runs', 'show', String(runId), '--json'], {env: env()})).stdout)
    assert.equal(show.status, 'completed')
    assert.equal(show.companies.selected, 6)
    const {rows} = await sql<{id: string; status: string; types: string[]}>`select id, status, types from workers order by id`.execute(t.db)
    assert.deepEqual(
      rows.map((r) => [r.id, r.status]),
      [
        ['w-a', 'stopped'],
        ['w-b', 'stopped'],
      ],
    )
    assert.deepEqual(rows[0].types.sort(), [...STAGE_KINDS].sort())
  })

  it('a healthy run logs no warning: research canceled in flight at the target is a debug line naming the stage and why, not a fence', async () => {
    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"NC"}', '--quantity', '10', '--detach', '--json'], {
      env: env(),
    })
    const {runId} = JSON.parse(created.stdout)
    // Twenty candidates researched at once, slowly: when the tenth qualifies, others are still running, and are canceled.
    const worker = await rvx(
      [
        'worker',
        'all',
        '--run',
        String(runId),
        '--exit-when-idle',
        '--id',
        'w-healthy',
        '--concurrency',
        '24',
        '--sim-latency',
        '500ms-2s',
        '--log-level',
        'debug',
      ],
      {env: env()},
    )
    assert.equal(worker.code, 0, worker.stderr)
    const show = JSON.parse((await rvx(['runs', 'show', String(runId), '--json'], {env: env()})).stdout)
    assert.equal(show.status, 'completed')

    // Canceled while running: a cancel right after a claim (a task reopened later, when a company had no contacts, may be
    // canceled in flight again: each time counts).
    const {rows: canceledInFlight} = await sql<{id: number; kind: string}>`
      select e.task_id as id, (select t.kind from tasks t where t.id = e.task_id) as kind from (
        select task_id, event, lag(event) over (partition by task_id order by id) as before from task_events
        where task_id in (select id from tasks where scope = ${`run:${runId}`})) e
      where e.event = 'canceled' and e.before = 'claimed'
      order by 1`.execute(t.db)
    assert.ok(canceledInFlight.length > 0, 'research was canceled while running: the case this is about')
    const logged = lines(worker.stderr).map((l) => JSON.parse(l) as {level: number; msg: string; task?: number})
    assert.deepEqual(
      logged.filter((l) => l.level >= 40),
      [],
      'no WARN line',
    )
    for (const {id, kind} of canceledInFlight) {
      assert.ok(
        logged.some((l) => l.level === 20 && l.msg === `${stageWord(kind)} ${id} canceled: run ${runId} met its target: no further discovery or research`),
        `a debug line for task ${id}`,
      )
    }
    const summary = logged.find((l) => l.msg === 'worker stopped') as unknown as {fencedOut: number; canceled: number}
    assert.deepEqual({fencedOut: summary.fencedOut, canceled: summary.canceled}, {fencedOut: 0, canceled: canceledInFlight.length})
    const {rows: fenced} = await sql<{n: number}>`
      select count(*)::int as n from task_events e join tasks t on t.id = e.task_id where t.scope = ${`run:${runId}`} and e.event = 'fenced_out'`.execute(t.db)
    assert.equal(fenced[0].n, 0, 'rvx_fenced_out_total has nothing to count')
  })

  it('SIGTERM stops it gracefully with exit 143', async () => {
    const child = spawnRvx(['worker', 'all', '--id', 'w-term'], {env: env()})
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    await waitFor(
      'the worker to register',
      async () => (await sql<{n: number}>`select count(*)::int as n from workers where id = 'w-term' and status = 'idle'`.execute(t.db)).rows[0].n === 1,
    )
    child.kill('SIGTERM')
    assert.equal(await exited, 143)
    const {rows} = await sql<{status: string}>`select status from workers where id = 'w-term'`.execute(t.db)
    assert.equal(rows[0].status, 'stopped')
  })

  it('says to run rvx migrate on an unmigrated database (exit 3), and rejects unknown types (exit 2)', async () => {
    const name = await createDatabase('bare')
    try {
      const res = await rvx(['worker', 'all'], {env: {DATABASE_URL: urlFor(name)}})
      assert.equal(res.code, 3)
      assert.equal(lines(res.stderr).length, 1)
      assert.match(res.stderr, /run rvx migrate/)
    } finally {
      await dropDatabase(name)
    }

    const bad = await rvx(['worker', 'researchers'], {env: env()})
    assert.equal(bad.code, 2)
    assert.equal(lines(bad.stderr).length, 1)
    assert.ok(bad.stderr.includes(`worker type "researchers" is not a stage: use ${stageChoices()} or all`), bad.stderr)
    assert.equal(hasStackTrace(bad.stderr), false)
  })
})
