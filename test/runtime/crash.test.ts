import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {Kysely, PostgresDialect, sql} from 'kysely'

import {createPool} from '../../src/db/connect.js'
import {EmbeddedServer} from '../../src/db/embedded.js'
import {migrateToLatest} from '../../src/db/migrator.js'
import type {Database} from '../../src/db/schema.js'
import {enqueue, sweep} from '../../src/runtime/index.js'
import {useFreshDatabase} from '../helpers/db.js'
import {spawnCli, spawnScript, waitFor, type Spawned} from '../helpers/processes.js'
import {FAST} from '../helpers/runtime.js'

const SCRIPT = 'test/fixtures/worker-process.ts'

function startWorker(url: string, id: string, extra: NodeJS.ProcessEnv = {}): Spawned {
  return spawnScript(SCRIPT, {DATABASE_URL: url, WORKER_ID: id, RVX_TEST_RUNTIME_CONFIG: JSON.stringify(FAST), ...extra})
}

async function workerUp(db: Kysely<Database>, id: string): Promise<void> {
  await waitFor(`worker ${id} to register`, async () => {
    const row = await db.selectFrom('workers').select('status').where('id', '=', id).executeTakeFirst()
    return row && ['idle', 'busy'].includes(row.status)
  })
}

describe('runtime: crashes, signals and restarts (real processes)', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()

  before(async () => {
    await sql`create table effects (task_id bigint not null, worker_id text not null)`.execute(t.db)
  })

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers, effects restart identity cascade`.execute(t.db)
  })

  it('SIGKILL mid-task: another worker completes the task, the crash is counted, no attempt used', async () => {
    const a = startWorker(t.url, 'victim')
    await workerUp(t.db, 'victim')
    const tasks = await enqueue(
      t.db,
      [1, 2, 3].map(() => ({kind: 'sleep', payload: {ms: 30_000}})),
    )
    await waitFor('victim to hold all three', async () => {
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where lease_owner = 'victim' and status = 'running'`.execute(t.db)
      return rows[0].n === 3
    })
    // Shorten the work so the rescuer finishes quickly (the payload is read at claim time).
    await sql`update tasks set payload = '{"ms": 50}'`.execute(t.db)
    a.child.kill('SIGKILL')
    assert.equal((await a.exited).signal, 'SIGKILL')

    const b = startWorker(t.url, 'rescuer')
    await waitFor('all tasks completed', async () => {
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where status = 'completed'`.execute(t.db)
      return rows[0].n === 3
    })
    b.child.kill('SIGTERM')
    await b.exited

    for (const {id} of tasks) {
      const task = await t.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
      assert.equal(task.crash_count, 1)
      assert.equal(task.attempts, 0)
      assert.deepEqual(task.result, {by: 'rescuer'})
      const events = await t.db.selectFrom('task_events').select(['event', 'worker_id']).where('task_id', '=', id).orderBy('id').execute()
      assert.deepEqual(
        events.map((e) => `${e.event}:${e.worker_id}`),
        ['claimed:victim', 'requeued_after_death:victim', 'claimed:rescuer', 'completed:rescuer'],
      )
    }

    const {rows} = await sql<{task_id: number; n: number}>`select task_id, count(*)::int as n from effects group by task_id`.execute(t.db)
    assert.equal(rows.length, 3)
    assert.ok(
      rows.every((r) => r.n === 1),
      'each effect applied exactly once',
    )
    const victim = await t.db.selectFrom('workers').select('status').where('id', '=', 'victim').executeTakeFirstOrThrow()
    assert.equal(victim.status, 'dead')
  })

  it('a frozen worker (SIGSTOP) is presumed dead after deadAfter; its late result is fenced out when it wakes', async () => {
    const frozen = startWorker(t.url, 'frozen')
    await workerUp(t.db, 'frozen')
    const [task] = await enqueue(t.db, {kind: 'sleep', payload: {ms: 1500}})
    await waitFor(
      'frozen to hold the task',
      async () => (await t.db.selectFrom('tasks').select('lease_owner').where('id', '=', task.id).executeTakeFirstOrThrow()).lease_owner === 'frozen',
    )
    frozen.child.kill('SIGSTOP')
    // Its session stays open (the process is alive), so only the heartbeat timeout can tell.
    await waitFor('frozen to be presumed dead', async () => {
      const r = await sweep(t.db, {deadAfterMs: FAST.deadAfterMs!, sessionGraceMs: FAST.sessionGraceMs!, maxCrashes: 3})
      return r.deadWorkers.includes('frozen')
    })
    // Its unrenewed lease (1.5 s here) may have run out before the 3 s dead-after: requeued either way, as a crash.
    const requeued = await t.db.selectFrom('tasks').select(['status', 'crash_count', 'attempts']).where('id', '=', task.id).executeTakeFirstOrThrow()
    assert.deepEqual(requeued, {status: 'queued', crash_count: 1, attempts: 0})

    const rescuer = startWorker(t.url, 'rescuer2')
    await waitFor(
      'the rescuer to complete it',
      async () => (await t.db.selectFrom('tasks').select('status').where('id', '=', task.id).executeTakeFirstOrThrow()).status === 'completed',
    )
    frozen.child.kill('SIGCONT')
    await new Promise((r) => setTimeout(r, 2500))
    for (const w of [frozen, rescuer]) w.child.kill('SIGTERM')
    const [exit] = await Promise.all([frozen.exited, rescuer.exited])
    assert.equal(exit.code, 143, 'the frozen worker carried on after waking and stopped cleanly')
    assert.equal(JSON.parse(frozen.stdout().trim()).fencedOut, 1, 'its stale result was rejected: ' + frozen.stderr())

    const effects = await sql<{worker_id: string}>`select worker_id from effects where task_id = ${task.id}`.execute(t.db)
    assert.deepEqual(
      effects.rows.map((r) => r.worker_id),
      ['rescuer2'],
    )
    const row = await t.db.selectFrom('tasks').selectAll().where('id', '=', task.id).executeTakeFirstOrThrow()
    assert.deepEqual(row.result, {by: 'rescuer2'})
    const frozenRow = await t.db.selectFrom('workers').select('status').where('id', '=', 'frozen').executeTakeFirstOrThrow()
    assert.equal(frozenRow.status, 'stopped', 'it registered again after waking, then stopped: ' + frozen.stderr())
  })

  it('quarantines a task after it has crashed its worker 3 times', async () => {
    const [{id}] = await enqueue(t.db, {kind: 'crash'})
    for (let i = 1; i <= 3; i++) {
      const w = startWorker(t.url, `crashy-${i}`, {WORKER_KINDS: 'crash'})
      assert.equal((await w.exited).signal, 'SIGKILL', 'the handler killed its own process')
      // The test process sweeps, like any worker or the monitor would.
      await waitFor(`crash ${i} to be noticed`, async () => {
        await sweep(t.db, {deadAfterMs: FAST.deadAfterMs!, sessionGraceMs: FAST.sessionGraceMs!, maxCrashes: 3})
        const task = await t.db.selectFrom('tasks').select(['crash_count', 'status']).where('id', '=', id).executeTakeFirstOrThrow()
        return task.crash_count === i ? task : undefined
      })
    }

    const task = await t.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    assert.equal(task.status, 'quarantined')
    assert.equal(task.attempts, 0)
    assert.match(task.last_error!, /died under it 3 times/)
    const events = (await t.db.selectFrom('task_events').select('event').where('task_id', '=', id).orderBy('id').execute()).map((e) => e.event)
    assert.deepEqual(events.slice(-2), ['requeued_after_death', 'quarantined'])
  })

  it('SIGTERM: finishes short tasks, releases the rest after the grace period, exits 143', async () => {
    const w = startWorker(t.url, 'draining', {RVX_TEST_RUNTIME_CONFIG: JSON.stringify({...FAST, graceMs: 1500})})
    await workerUp(t.db, 'draining')
    const [short, long] = await enqueue(t.db, [
      {kind: 'sleep', payload: {ms: 500}},
      {kind: 'sleep', payload: {ms: 60_000}},
    ])
    await waitFor('both running', async () => {
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where status = 'running'`.execute(t.db)
      return rows[0].n === 2
    })
    w.child.kill('SIGTERM')
    const exit = await w.exited
    assert.equal(exit.code, 143)

    const s = await t.db.selectFrom('tasks').selectAll().where('id', '=', short.id).executeTakeFirstOrThrow()
    assert.equal(s.status, 'completed')
    const l = await t.db.selectFrom('tasks').selectAll().where('id', '=', long.id).executeTakeFirstOrThrow()
    assert.equal(l.status, 'queued', 'released, runnable at once')
    assert.equal(l.attempts, 0)
    assert.equal(l.crash_count, 0)
    assert.ok(new Date(l.run_after).getTime() <= Date.now() + 1000)
    const ev = (await t.db.selectFrom('task_events').select('event').where('task_id', '=', long.id).orderBy('id').execute()).map((e) => e.event)
    assert.deepEqual(ev, ['claimed', 'released'])
    const summary = JSON.parse(w.stdout().trim())
    assert.equal(summary.completed, 1)
    assert.equal(summary.released, 1)
    const row = await t.db.selectFrom('workers').select('status').where('id', '=', 'draining').executeTakeFirstOrThrow()
    assert.equal(row.status, 'stopped')
  })

  it('a second signal forces the stop at once', async () => {
    const w = startWorker(t.url, 'forced', {RVX_TEST_RUNTIME_CONFIG: JSON.stringify({...FAST, graceMs: 60_000})})
    await workerUp(t.db, 'forced')
    const [task] = await enqueue(t.db, {kind: 'sleep', payload: {ms: 60_000}})
    await waitFor(
      'running',
      async () => (await t.db.selectFrom('tasks').select('status').where('id', '=', task.id).executeTakeFirstOrThrow()).status === 'running',
    )
    w.child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
    w.child.kill('SIGTERM')
    const exit = await w.exited
    assert.equal(exit.code, 143)
    assert.equal(JSON.parse(w.stdout().trim()).reason, 'forced')
    const row = await t.db.selectFrom('tasks').select(['status', 'attempts']).where('id', '=', task.id).executeTakeFirstOrThrow()
    assert.deepEqual(row, {status: 'queued', attempts: 0})
  })
})

describe('runtime: PostgreSQL restarted mid-run (own server)', function () {
  this.timeout(180_000)
  let home: string
  let server: EmbeddedServer
  let db: Kysely<Database>

  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-restart-'))
    server = new EmbeddedServer({home, env: {...process.env, RVX_PG_PORT: ''}, settings: {fsync: 'off'}})
    await server.start()
  })

  after(async () => {
    await db?.destroy()
    await server.stop().catch(() => {})
    fs.rmSync(home, {recursive: true, force: true})
  })

  it('loses nothing and kills nobody: workers reconnect, no worker is presumed dead, every task completes exactly once', async () => {
    const url = (await server.url())!
    db = new Kysely<Database>({dialect: new PostgresDialect({pool: createPool(url)})})
    await migrateToLatest(db, url)
    await sql`create table effects (task_id bigint not null, worker_id text not null)`.execute(db)
    // Leases and dead-after longer than the restart takes: nothing may expire, so any death is the session rule's doing.
    const config = {...FAST, leaseMs: 10_000, deadAfterMs: 10_000}
    const total = 300
    await enqueue(
      db,
      Array.from({length: total}, () => ({kind: 'sleep', payload: {ms: 40}})),
    )
    const workers = [
      startWorker(url, 'r1', {RVX_TEST_RUNTIME_CONFIG: JSON.stringify(config)}),
      startWorker(url, 'r2', {RVX_TEST_RUNTIME_CONFIG: JSON.stringify(config)}),
    ]
    await waitFor('some progress', async () => {
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where status = 'completed'`.execute(db)
      return rows[0].n >= 40
    })
    const registered = await db.selectFrom('workers').select(['id', 'started_at']).orderBy('id').execute()
    assert.deepEqual(
      registered.map((w) => w.id),
      ['r1', 'r2'],
    )

    await server.stop()
    // Every session is gone after a restart, and the workers' last heartbeats are older than the session grace:
    // a sweep that trusted the session rule now would kill them all. This process sweeps from the first moment
    // the server answers (before the workers' next heartbeat), and on until the end, as a monitor would.
    const dead: string[] = []
    let sweeping = true
    const sweeper = (async () => {
      while (sweeping) {
        try {
          dead.push(...(await sweep(db, {deadAfterMs: config.deadAfterMs, sessionGraceMs: config.sessionGraceMs!, maxCrashes: 3})).deadWorkers)
        } catch {
          // the server is down
        }

        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    await new Promise((r) => setTimeout(r, 1500))
    await server.start()

    let last = 'no answer yet'
    try {
      await waitFor(
        'every task completed after the restart',
        async () => {
          try {
            const {rows} = await sql<{status: string; n: number}>`select status, count(*)::int as n from tasks group by status`.execute(db)
            last = JSON.stringify(rows)
            return rows.length === 1 && rows[0].status === 'completed' && rows[0].n === total
          } catch (error) {
            last = (error as Error).message
            return false
          }
        },
        60_000,
        250,
      ).catch((error) => {
        throw new Error(`${error.message}; last: ${last}; workers: ${workers.map((w) => w.stderr().slice(-1500)).join(' | ')}`)
      })
    } finally {
      sweeping = false
      await sweeper
    }

    for (const w of workers) w.child.kill('SIGTERM')
    const exits = await Promise.all(workers.map((w) => w.exited))
    assert.ok(
      exits.every((e) => e.code === 143),
      `workers survived the restart and stopped on SIGTERM: ${JSON.stringify(exits)} ${workers.map((w) => w.stderr().slice(-3000)).join('\n---\n')}`,
    )

    // Nobody was declared dead: no sweep found one, no task was requeued after a death, no crash counted, no worker registered again.
    assert.deepEqual(dead, [], 'no worker presumed dead')
    const {rows: recovered} = await sql<{event: string; n: number}>`
      select event, count(*)::int as n from task_events where event in ('requeued_after_death', 'requeued_lease_expired', 'quarantined') group by event`.execute(
      db,
    )
    assert.deepEqual(recovered, [], 'no task recovered from a worker presumed dead')
    const {rows: crashes} = await sql<{n: number}>`select count(*)::int as n from tasks where crash_count > 0`.execute(db)
    assert.equal(crashes[0].n, 0, 'no crash counted')
    const after = await db.selectFrom('workers').select(['id', 'started_at']).orderBy('id').execute()
    assert.deepEqual(after, registered, 'each worker kept its one registration')
    assert.doesNotMatch(workers[0].stderr() + workers[1].stderr(), /presumed dead/)

    const {rows: effects} = await sql<{dupes: number; n: number}>`
      select count(*) filter (where c > 1)::int as dupes, count(*)::int as n from (select task_id, count(*) as c from effects group by task_id) x`.execute(db)
    assert.equal(effects[0].n, total)
    assert.equal(effects[0].dupes, 0, 'no effect applied twice')
    const {rows: completions} = await sql<{max: number}>`
      select max(c)::int as max from (select count(*) as c from task_events where event = 'completed' group by task_id) x`.execute(db)
    assert.equal(completions[0].max, 1)
    assert.match(workers[0].stderr() + workers[1].stderr(), /database (unavailable|connection lost)|liveness session lost/)
  })
})

describe('runtime: a database outage longer than dead-after and the leases (own server)', function () {
  this.timeout(240_000)
  let home: string
  let server: EmbeddedServer
  let db: Kysely<Database>

  before(async () => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-outage-'))
    server = new EmbeddedServer({home, env: {...process.env, RVX_PG_PORT: ''}, settings: {fsync: 'off'}})
    await server.start()
  })

  after(async () => {
    await db?.destroy()
    await server.stop().catch(() => {})
    fs.rmSync(home, {recursive: true, force: true})
  })

  it('kills nobody: no worker declared dead, nothing requeued or fenced, no alert, every task completed exactly once', async () => {
    const url = (await server.url())!
    db = new Kysely<Database>({dialect: new PostgresDialect({pool: createPool(url)})})
    await migrateToLatest(db, url)
    await sql`create table effects (task_id bigint not null, worker_id text not null)`.execute(db)
    // The outage (12 s) is twice dead-after (6 s, as the monitor's) and eight leases (1.5 s) long.
    const config = {...FAST, deadAfterMs: 6000}
    const outageMs = 12_000
    const total = 200
    await enqueue(
      db,
      Array.from({length: total}, () => ({kind: 'sleep', payload: {ms: 150}})),
    )
    const monitor = spawnCli(['monitor', '--interval', '500ms', '--dead-after', '6s'], {DATABASE_URL: url})
    const workers = ['o1', 'o2'].map((id) => startWorker(url, id, {RVX_TEST_RUNTIME_CONFIG: JSON.stringify(config)}))
    const logs = () => [monitor, ...workers].map((p) => p.stderr().slice(-2000)).join('\n---\n')
    try {
      await waitFor('the monitor to be active', async () => monitor.stderr().includes('"active":true'))
      await waitFor('some progress', async () => {
        const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where status = 'completed'`.execute(db)
        return rows[0].n >= 40
      })
      const registered = await db.selectFrom('workers').select(['id', 'started_at']).orderBy('id').execute()
      assert.deepEqual(
        registered.map((w) => w.id),
        ['o1', 'o2'],
      )

      await server.stop()
      // This process sweeps from the first moment the server answers again, as a worker or a monitor on another machine would.
      const dead: string[] = []
      let sweeping = true
      const sweeper = (async () => {
        while (sweeping) {
          try {
            dead.push(...(await sweep(db, {deadAfterMs: config.deadAfterMs, sessionGraceMs: config.sessionGraceMs!, maxCrashes: 3})).deadWorkers)
          } catch {
            // the server is down
          }

          await new Promise((r) => setTimeout(r, 20))
        }
      })()
      await new Promise((r) => setTimeout(r, outageMs))
      await server.start()

      try {
        await waitFor(
          'every task completed after the outage',
          async () => {
            const {rows} = await sql<{status: string; n: number}>`select status, count(*)::int as n from tasks group by status`
              .execute(db)
              .catch(() => ({rows: []}))
            return rows.length === 1 && rows[0].status === 'completed' && rows[0].n === total
          },
          60_000,
          250,
        ).catch((error) => {
          throw new Error(`${error.message}; ${logs()}`)
        })
        // Two more of the monitor's dead-after windows, sweeping all along: still nobody dead.
        await new Promise((r) => setTimeout(r, 2 * config.deadAfterMs))
      } finally {
        sweeping = false
        await sweeper
      }

      assert.deepEqual(dead, [], 'no sweep of this process found a dead worker')
      const {rows: events} = await sql<{event: string; n: number}>`
        select event, count(*)::int as n from task_events where event not in ('claimed', 'completed') group by event`.execute(db)
      assert.deepEqual(events, [], 'nothing requeued, released, quarantined or fenced out')
      const {rows: crashes} = await sql<{n: number}>`select count(*)::int as n from tasks where crash_count > 0 or attempts > 0`.execute(db)
      assert.equal(crashes[0].n, 0, 'no crash or attempt counted')
      const after = await db.selectFrom('workers').select(['id', 'started_at', 'status']).orderBy('id').execute()
      assert.deepEqual(
        after.map((w) => [w.id, w.started_at, w.status === 'dead']),
        registered.map((w) => [w.id, w.started_at, false]),
        'each worker kept its one registration and is not dead',
      )
      const {rows: alerts} = await sql<{kind: string; subject: string}>`select kind, subject from alerts`.execute(db)
      assert.deepEqual(alerts, [], 'no alert')

      const {rows: effects} = await sql<{dupes: number; n: number}>`
        select count(*) filter (where c > 1)::int as dupes, count(*)::int as n from (select task_id, count(*) as c from effects group by task_id) x`.execute(db)
      assert.deepEqual(effects[0], {dupes: 0, n: total}, 'each effect applied exactly once')

      // The monitor said what happened: it lost the database, not its place to another monitor; then it was active again.
      const said = monitor.stderr()
      assert.match(said, /database unavailable; retrying: this monitor is neither active nor on standby until it answers/)
      assert.doesNotMatch(said, /another monitor is active/)
      const afterwards = said.slice(said.indexOf('database unavailable; retrying'))
      assert.match(afterwards, /"active":true/)
      assert.match(afterwards, /database available again/)
      assert.doesNotMatch(said, /swept \d+ dead worker/)
      for (const w of workers) assert.doesNotMatch(w.stderr(), /presumed dead|fenced out|settling a task failed/)
    } finally {
      for (const p of [monitor, ...workers]) p.child.kill('SIGTERM')
      await Promise.all([monitor, ...workers].map((p) => p.exited))
    }
  })
})
