import assert from 'node:assert/strict'
import {sql} from 'kysely'
import pg from 'pg'

import {DEFAULT_SESSION_LIMITS} from '../../src/db/connect.js'
import {currentConditions} from '../../src/monitor/conditions.js'
import {enqueue, sweep, TaskRegistry} from '../../src/runtime/index.js'
import {registerWorker} from '../../src/runtime/registry.js'
import {ResourceSampler, workerLockKey} from '../../src/runtime/index.js'
import {waitFor} from '../helpers/processes.js'
import {useFreshDatabase} from '../helpers/db.js'
import {useTestWorker} from '../helpers/runtime.js'

/**
 * Partial failures inside one process: a settling write the database refuses,
 * a handler's reads failing for want of connections, a worker's own
 * completion holding a row its heartbeat would renew, a sweep facing a locked
 * worker row, a death followed at once by the worker registering again.
 */
describe('runtime: partial failures (in-process, real PostgreSQL)', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
    await sql`delete from rvx_meta where key = 'sweep.last'`.execute(t.db)
  })

  const harness = useTestWorker(t)
  const startWorker = harness.start
  const settled = harness.settled

  it('a result the database refuses to store fails the attempt (counted, with the cause) instead of coming back forever', async () => {
    await sql`create table if not exists poison (name text)`.execute(t.db)
    let calls = 0
    const registry = new TaskRegistry().register('poison', async () => {
      calls++
      // A NUL byte that slipped through: PostgreSQL's text refuses it at settle time, after the (paid) work.
      return {result: {ok: true}, apply: async (trx) => void (await sql`insert into poison values (${'Acme\u0000PM'})`.execute(trx))}
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'poison', maxAttempts: 2})
    const row = await settled(id)
    assert.equal(row.status, 'failed')
    assert.equal(row.attempts, 2)
    assert.equal(calls, 2, 'one handler run per attempt, not one every few seconds forever')
    assert.match(row.last_error ?? '', /could not be saved/)
    const events = await t.db.selectFrom('task_events').select('event').where('task_id', '=', id).orderBy('id').execute()
    assert.deepEqual(
      events.map((e) => e.event),
      ['claimed', 'retry_scheduled', 'claimed', 'failed'],
    )
  })

  it('one refused result in a batch of completions fails only its own task', async () => {
    const registry = new TaskRegistry().register<{bad: boolean}>('batch', async (task) => ({result: task.payload.bad ? {name: 'x\u0000y'} : {ok: 1}}))
    startWorker(registry, {concurrency: 8})
    const tasks = await enqueue(
      t.db,
      Array.from({length: 12}, (_, i) => ({kind: 'batch', payload: {bad: i === 5}, maxAttempts: 1})),
    )
    const rows = await Promise.all(tasks.map((x) => settled(x.id)))
    assert.deepEqual(
      rows.map((r) => r.status),
      rows.map((_, i) => (i === 5 ? 'failed' : 'completed')),
    )
  })

  it('a handler whose reads find no database connection waits in its lease; no attempt is used', async () => {
    let calls = 0
    const registry = new TaskRegistry().register('reads', async () => {
      calls++
      if (calls <= 3) throw Object.assign(new Error('sorry, too many clients already'), {code: '53300', severity: 'FATAL'})
      return {result: {calls}}
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'reads', maxAttempts: 1})
    const row = await settled(id)
    assert.equal(row.status, 'completed')
    assert.equal(row.attempts, 0)
    assert.equal(calls, 4)
  })

  it("a heartbeat never waits for the worker's own completion: leases are renewed while a settling write waits on a lock", async () => {
    await sql`create table if not exists blocker (id int primary key)`.execute(t.db)
    await sql`insert into blocker values (1) on conflict do nothing`.execute(t.db)
    // The test holds the row the completion needs; the completion holds its task row meanwhile.
    const holder = new pg.Client({connectionString: t.url})
    await holder.connect()
    await holder.query('begin')
    await holder.query('select * from blocker where id = 1 for update')
    const registry = new TaskRegistry().register('blocked', async () => ({
      result: {},
      apply: async (trx) => void (await sql`update blocker set id = 1 where id = 1`.execute(trx)),
    }))
    startWorker(registry, {limits: {...DEFAULT_SESSION_LIMITS, lockTimeoutMs: 30_000}})
    const [{id}] = await enqueue(t.db, {kind: 'blocked'})
    await waitFor('the completion to wait on the lock', async () => {
      const {rows} = await sql<{n: number}>`
        select count(*)::int as n from pg_stat_activity
        where wait_event_type = 'Lock' and application_name like 'rvx-worker%' and datname = current_database()`.execute(t.db)
      return rows[0].n > 0 ? true : undefined
    })
    const beat = async () => (await t.db.selectFrom('workers').select('last_heartbeat_at').executeTakeFirstOrThrow()).last_heartbeat_at.getTime()
    const first = await beat()
    // Several heartbeat intervals (300 ms each) while the completion waits: each beat writes a newer time.
    await waitFor('two more heartbeats', async () => ((await beat()) > first + 600 ? true : undefined), 10_000)
    const task = await t.db.selectFrom('tasks').select(['status', 'lease_expires_at']).where('id', '=', id).executeTakeFirstOrThrow()
    assert.equal(task.status, 'running', 'still settling')
    await holder.query('rollback')
    await holder.end()
    assert.equal((await settled(id)).status, 'completed')
  })

  it('a sweep never waits for a locked worker row (it skips it, and does not hold the sweep lock meanwhile)', async () => {
    const sampler = new ResourceSampler()
    const identity = (id: string) => ({
      id,
      types: ['x'],
      pool: 'default',
      capabilities: [],
      concurrency: 1,
      scope: null,
      version: 't',
      lockKey: workerLockKey(id),
    })
    await registerWorker(t.db, identity('silent'), await sampler.sample(), 'idle')
    await sql`update workers set last_heartbeat_at = now() - interval '1 hour'`.execute(t.db)
    const holder = new pg.Client({connectionString: t.url})
    await holder.connect()
    await holder.query('begin')
    await holder.query(`select * from workers where id = 'silent' for update`)
    try {
      // Without SKIP LOCKED the sweep's update would wait here for the holder (until its lock_timeout failed it).
      const result = await Promise.race([
        sweep(t.db, {deadAfterMs: 3000, sessionGraceMs: 1000, maxCrashes: 3}),
        new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 10_000).unref()),
      ])
      if (result === 'waiting') assert.fail('the sweep waited for the locked row')
      assert.equal(result.swept, true)
      assert.deepEqual(result.deadWorkers, [])
    } finally {
      await holder.query('rollback')
      await holder.end()
    }

    const after = await sweep(t.db, {deadAfterMs: 3000, sessionGraceMs: 1000, maxCrashes: 3})
    assert.deepEqual(after.deadWorkers, ['silent'])
  })

  it('a death is alerted even when the worker registers again before the monitor looks, and each death once', async () => {
    const sampler = new ResourceSampler()
    const w = {id: 'flaky', types: ['x'], pool: 'default', capabilities: [], concurrency: 1, scope: null, version: 't', lockKey: workerLockKey('flaky')}
    await registerWorker(t.db, w, await sampler.sample(), 'idle')
    await sql`update workers set last_heartbeat_at = now() - interval '1 hour'`.execute(t.db)
    assert.deepEqual((await sweep(t.db, {deadAfterMs: 3000, sessionGraceMs: 1000, maxCrashes: 3})).deadWorkers, ['flaky'])
    // Back before any monitor tick (a partition that healed): the row says idle again.
    await registerWorker(t.db, w, await sampler.sample(), 'idle')
    const options = {stuckAfterMs: 600_000, lookbackMs: 3_600_000, deadAfterMs: 15_000}
    const first = (await currentConditions(t.db, options)).filter((c) => c.kind === 'worker_dead')
    assert.equal(first.length, 1)
    assert.match(first[0].subject, /died.*registered again/s)
    // A second death is a second alert (another key), not the first one again.
    await sql`update workers set last_heartbeat_at = now() - interval '1 hour'`.execute(t.db)
    await sweep(t.db, {deadAfterMs: 3000, sessionGraceMs: 1000, maxCrashes: 3})
    const second = (await currentConditions(t.db, options)).filter((c) => c.kind === 'worker_dead')
    assert.equal(second.length, 1)
    assert.notEqual(second[0].key, first[0].key)
  })

  it('a live worker silent past dead-after that no sweep declared dead is a stall, alerted; a sweep nobody runs is alerted', async () => {
    const sampler = new ResourceSampler()
    const w = {id: 'stuck', types: ['x'], pool: 'default', capabilities: [], concurrency: 1, scope: null, version: 't', lockKey: workerLockKey('stuck')}
    await registerWorker(t.db, w, await sampler.sample(), 'busy')
    await sql`update workers set last_heartbeat_at = now() - interval '40 seconds'`.execute(t.db)
    await sql`insert into rvx_meta (key, value, updated_at) values ('sweep.last', '{}', now() - interval '2 minutes')
              on conflict (key) do update set updated_at = excluded.updated_at`.execute(t.db)
    const conditions = await currentConditions(t.db, {stuckAfterMs: 600_000, lookbackMs: 3_600_000, deadAfterMs: 1000})
    assert.deepEqual(conditions.map((c) => c.kind).sort(), ['sweep_blocked', 'worker_stalled'])
    // A sweep stamps its time: the blocked-sweep condition clears.
    await sweep(t.db, {deadAfterMs: 3_600_000, sessionGraceMs: 3_600_000, maxCrashes: 3})
    const later = await currentConditions(t.db, {stuckAfterMs: 600_000, lookbackMs: 3_600_000, deadAfterMs: 1000})
    assert.deepEqual(
      later.map((c) => c.kind),
      ['worker_stalled'],
    )
  })

  it('every session rvx opens is bounded: statement, lock and idle-in-transaction timeouts and server keepalives are set', async () => {
    const registry = new TaskRegistry().register('noop', async () => ({result: {}}))
    startWorker(registry)
    await waitFor('the worker to register', async () => ((await t.db.selectFrom('workers').select('id').execute()).length > 0 ? true : undefined))
    const {rows} = await sql<{statement: string; lock: string; idle: string; keepalive: string}>`
      select current_setting('statement_timeout') as statement, current_setting('lock_timeout') as lock,
             current_setting('idle_in_transaction_session_timeout') as idle, current_setting('tcp_keepalives_idle') as keepalive`.execute(t.db)
    assert.deepEqual(rows[0], {statement: '30s', lock: '5s', idle: '5s', keepalive: '10'})
    // The worker's own sessions (its pool and its liveness session) say the same to the server.
    const sessions = await sql<{n: number}>`
      select count(*)::int as n from pg_stat_activity where application_name like 'rvx-worker%' and datname = current_database()`.execute(t.db)
    // Its whole budget, opened at start: 4 pool connections (the default at concurrency 4) and its liveness session.
    assert.equal(sessions.rows[0].n, 5)
  })
})
