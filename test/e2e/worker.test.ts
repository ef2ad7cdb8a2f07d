import assert from 'node:assert/strict'
import {sql} from 'kysely'

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
