import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {hasStackTrace, lines, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {type Pooler, startPgbouncer} from '../helpers/pgbouncer.js'

const REFUSAL = /^Error: PostgreSQL at .+ does not keep a session per connection \(.+: a transaction-mode pooler\?\)\. .*session-mode pooler/

describe('e2e: behind pgbouncer, in transaction and in session mode', function () {
  this.timeout(180_000)
  // Migrated through the pooler, by the first test.
  const t = useFreshDatabase({migrate: false})
  let pooler: Pooler
  const runCount = async () => (await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n

  before(async () => {
    pooler = await startPgbouncer(t.url)
  })

  after(async () => {
    await pooler?.stop()
  })

  it('one-shot commands work through transaction mode: migrate, orchestrate --detach, runs list, workers status', async () => {
    const env = {DATABASE_URL: pooler.transactionUrl}
    const migrated = await rvx(['migrate', '--json'], {env})
    assert.equal(migrated.code, 0, migrated.stderr + pooler.log())
    assert.ok(JSON.parse(migrated.stdout).applied.length > 0)
    assert.equal(JSON.parse((await rvx(['migrate', '--status', '--json'], {env})).stdout).pending, 0)

    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '2', '--detach', '--json'], {env})
    assert.equal(created.code, 0, created.stderr)
    const {runId} = JSON.parse(created.stdout)

    const list = await rvx(['runs', 'list', '--json'], {env})
    assert.equal(list.code, 0, list.stderr)
    assert.ok(
      JSON.parse(list.stdout).runs.some((r: {id: number}) => r.id === runId),
      list.stdout,
    )
    const status = await rvx(['workers', 'status', '--json'], {env})
    assert.equal(status.code, 0, status.stderr)
    assert.ok(Array.isArray(JSON.parse(status.stdout).queue))
  })

  it('refuses a worker, a monitor and in-process workers (orchestrate, runs resume) with one line and exit 3', async () => {
    const env = {DATABASE_URL: pooler.transactionUrl}
    const runs = await runCount()
    for (const args of [
      ['worker', 'all'],
      ['monitor', '--once'],
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '2'],
      ['runs', 'resume', '1'],
    ]) {
      const r = await rvx(args, {env, timeoutMs: 30_000})
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(lines(r.stderr).length, 1, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, REFUSAL)
      assert.ok(!hasStackTrace(r.stderr))
      assert.doesNotMatch(r.stderr, new RegExp(new URL(t.url).password), 'the password is never printed')
    }

    assert.equal(await runCount(), runs, 'orchestrate created no run it could not drive')
    const registered = await sql<{n: number}>`select count(*)::int as n from workers`.execute(t.db)
    assert.equal(registered.rows[0].n, 0, 'no worker registered')
    const json = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '2', '--json'], {env})
    assert.equal(json.code, 3)
    assert.equal(JSON.parse(json.stdout).error.code, 'session_not_kept')
  })

  it('a worker and a monitor work through session mode: the run completes', async () => {
    const env = {DATABASE_URL: pooler.sessionUrl}
    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"FL"}', '--quantity', '2', '--detach', '--json'], {env})
    assert.equal(created.code, 0, created.stderr)
    const {runId} = JSON.parse(created.stdout)
    const worker = await rvx(['worker', 'all', '--run', String(runId), '--exit-when-idle', '--concurrency', '2'], {env, timeoutMs: 120_000})
    assert.equal(worker.code, 0, worker.stderr)
    const run = await sql<{status: string}>`select status from runs where id = ${runId}`.execute(t.db)
    assert.equal(run.rows[0].status, 'completed')

    const monitor = await rvx(['monitor', '--once'], {env})
    assert.equal(monitor.code, 0, monitor.stderr)
    assert.match(monitor.stderr, /"active":true/)
  })
})
