import assert from 'node:assert/strict'
import {Kysely, PostgresDialect, sql} from 'kysely'
import pg from 'pg'

import {createPool} from '../../src/db/connect.js'
import type {Database} from '../../src/db/schema.js'
import {
  claimTasks,
  completeTask,
  completeTasks,
  enqueue,
  failTask,
  queueStats,
  ResourceSampler,
  retryTask,
  snoozeTask,
  sweep,
  workerStats,
  type ClaimFilter,
} from '../../src/runtime/index.js'
import {releaseTasks} from '../../src/runtime/lease.js'
import {heartbeat} from '../../src/runtime/registry.js'
import {useFreshDatabase} from '../helpers/db.js'

const base: Omit<ClaimFilter, 'workerId' | 'limit'> = {
  kinds: ['k'],
  leaseMs: 30_000,
  pool: 'default',
  capabilities: [],
  memoryAvailableGb: 8,
  gpuVramAvailableGb: 0,
}

describe('runtime: enqueue, claim and fencing', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
  })

  it('enqueues one or many, honours idempotency keys, and returns ids in input order', async () => {
    const [one] = await enqueue(t.db, {kind: 'k', payload: {n: 1}, idempotencyKey: 'a'})
    assert.equal(one.created, true)
    const again = await enqueue(t.db, [
      {kind: 'k', payload: {n: 2}},
      {kind: 'k', idempotencyKey: 'a'},
      {kind: 'k', payload: {n: 3}},
    ])
    assert.equal(again[1].id, one.id)
    assert.equal(again[1].created, false)
    const rows = await t.db.selectFrom('tasks').select(['id', 'payload']).where('id', 'in', [again[0].id, again[2].id]).orderBy('id').execute()
    assert.deepEqual(
      rows.map((r) => r.payload),
      [{n: 2}, {n: 3}],
    )
    assert.ok(again[0].id < again[2].id)
    assert.equal(
      (
        await t.db
          .selectFrom('tasks')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
      3,
    )
  })

  it('settling writes and heartbeats find their tasks by primary key, never by the status index, whatever the statistics say', async () => {
    // Statistics of a queue analyzed while it waits: nothing is running. The index's entries for 'running' then look
    // like a handful to the planner, but hold one for every task run since the last vacuum: a deep queue's drain
    // would walk more of them with every batch (and a heartbeat would hold the leases it renews while it walks).
    await enqueue(
      t.db,
      Array.from({length: 20_000}, () => ({kind: 'k'})),
    )
    await sql`analyze tasks`.execute(t.db)
    const claimed = await claimTasks(t.db, {...base, workerId: 'w', limit: 400})
    assert.equal(claimed.length, 400)
    const lease = (i: number) => ({taskId: claimed[i].id, epoch: claimed[i].epoch, workerId: 'w'})
    const metrics = await new ResourceSampler().sample()

    const scans = await t.db.transaction().execute(async (trx) => {
      // Rows read by sequential scans of tasks so far in this session (the counters include statements not yet flushed).
      const seqRead = async () => Number((await sql<{n: string}>`select pg_stat_get_xact_tuples_returned('tasks'::regclass) as n`.execute(trx)).rows[0].n)
      const seqReadBefore = await seqRead()
      const beat = await heartbeat(trx, 'w', {
        status: 'busy',
        metrics,
        leaseMs: 30_000,
        counts: {},
        held: claimed.map((c) => ({id: c.id, epoch: c.epoch})),
        releaseOrphans: false,
      })
      assert.equal(beat.leases.size, 400, 'the heartbeat found every lease it holds')
      const batch = await completeTasks(
        trx,
        'w',
        claimed.slice(0, 300).map((c) => ({taskId: c.id, epoch: c.epoch})),
      )
      assert.equal(batch.completed.size, 300)
      assert.equal(await completeTask(trx, lease(300)), true)
      assert.equal(await failTask(trx, lease(301), 'no', {permanent: false, retryInMs: 0}), 'retry_scheduled')
      assert.equal(await snoozeTask(trx, lease(302), 1000, 'slow down'), true)
      assert.equal(
        await releaseTasks(
          trx,
          claimed.slice(303).map((_, i) => lease(303 + i)),
          'stopping',
        ),
        97,
      )
      const {rows} = await sql<{status_index: string; primary_key: string}>`
        select pg_stat_get_xact_numscans('tasks_active_idx'::regclass) as status_index,
               pg_stat_get_xact_numscans('tasks_pkey'::regclass) as primary_key`.execute(trx)
      return {...rows[0], seqRead: (await seqRead()) - seqReadBefore}
    })
    assert.equal(Number(scans.status_index), 0, 'no statement walked the status index')
    // Nor the whole table: a batch completion planned as a scan of every task matched against every item of its batch
    // (164 ms for 1,000 at 50,000 queued) when its input told the planner the batch's true size.
    assert.ok(scans.seqRead < 1000, `no statement scanned the whole table of 20,000 tasks (${scans.seqRead} rows read by sequential scans)`)
    assert.ok(Number(scans.primary_key) > 0, 'they went by primary key')
  })

  it('claims by priority, then age (oldest runnable first), and not before run_after', async () => {
    const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000)
    // Ids run against age within a priority: the newest task has the lowest id.
    await enqueue(t.db, [
      {kind: 'k', payload: 'low, new'},
      {kind: 'k', payload: 'high, new', priority: 10},
      {kind: 'k', payload: 'later', priority: 100, runAfter: 60_000},
      {kind: 'other', payload: 'other kind', priority: 50},
    ])
    await enqueue(t.db, [
      {kind: 'k', payload: 'low, oldest', runAfter: minutesAgo(10)},
      {kind: 'k', payload: 'high, old', priority: 10, runAfter: minutesAgo(5)},
      {kind: 'k', payload: 'low, old', runAfter: minutesAgo(5)},
    ])
    // One at a time, so the order of the claims is the order of the queue.
    const order: unknown[] = []
    for (let i = 0; i < 10; i++) {
      const [task] = await claimTasks(t.db, {...base, workerId: 'w1', limit: 1})
      if (!task) break
      assert.equal(task.epoch, 1)
      order.push(task.payload)
    }

    assert.deepEqual(order, ['high, old', 'high, new', 'low, oldest', 'low, old', 'low, new'])
  })

  it('a batch claim takes the best of the queue by the same order', async () => {
    await enqueue(t.db, [
      {kind: 'k', payload: 'new'},
      {kind: 'k', payload: 'urgent', priority: 5},
    ])
    await enqueue(t.db, [{kind: 'k', payload: 'old', runAfter: new Date(Date.now() - 60_000)}])
    const claimed = await claimTasks(t.db, {...base, workerId: 'w1', limit: 2})
    assert.deepEqual(claimed.map((c) => c.payload).sort(), ['old', 'urgent'])
  })

  it('8 concurrent claimers over 2,000 tasks never double-claim', async () => {
    await enqueue(
      t.db,
      Array.from({length: 2000}, (_, i) => ({kind: 'k', payload: i})),
    )
    const claimers = Array.from({length: 8}, (_, i) => {
      const db = new Kysely<Database>({dialect: new PostgresDialect({pool: createPool(t.url, {max: 1})})})
      return {db, id: `claimer-${i}`}
    })
    const seen: number[] = []
    try {
      await Promise.all(
        claimers.map(async ({db, id}) => {
          for (let round = 0; round < 1000; round++) {
            const batch = await claimTasks(db, {...base, workerId: id, limit: 1 + (round % 7)})
            if (batch.length === 0) return
            for (const task of batch) {
              seen.push(task.id)
              assert.equal(await completeTask(db, {taskId: task.id, epoch: task.epoch, workerId: id}), true)
            }
          }
        }),
      )
    } finally {
      await Promise.all(claimers.map((c) => c.db.destroy()))
    }

    assert.equal(seen.length, 2000)
    assert.equal(new Set(seen).size, 2000, 'no task was claimed twice')
    const {rows} = await sql<{max: number; n: number; workers: number}>`
      select max(c)::int as max, count(*)::int as n, (select count(distinct worker_id)::int from task_events) as workers
      from (select count(*) as c from task_events where event = 'claimed' group by task_id) x`.execute(t.db)
    assert.equal(rows[0].max, 1)
    assert.equal(rows[0].n, 2000)
    assert.ok(rows[0].workers > 1, 'the work was actually shared')
    const left = await t.db.selectFrom('tasks').select('id').where('status', '!=', 'completed').execute()
    assert.equal(left.length, 0)
  })

  it('fences out a stale completion and never applies its writes', async () => {
    const [{id}] = await enqueue(t.db, {kind: 'k'})
    const [first] = await claimTasks(t.db, {...base, workerId: 'stale', limit: 1, leaseMs: 1})
    await new Promise((r) => setTimeout(r, 20))
    // The lease ran out: the sweep's backstop requeues it (a crash, not an attempt).
    const swept = await sweep(t.db, {deadAfterMs: 15_000, sessionGraceMs: 5000, maxCrashes: 3})
    assert.equal(swept.requeued, 1)
    const [second] = await claimTasks(t.db, {...base, workerId: 'fresh', limit: 1})
    assert.equal(second.id, id)
    assert.equal(second.epoch, first.epoch + 1)

    let applied = false
    const stale = await completeTask(
      t.db,
      {taskId: id, epoch: first.epoch, workerId: 'stale'},
      {
        result: {from: 'stale'},
        apply: async () => {
          applied = true
        },
      },
    )
    assert.equal(stale, false)
    assert.equal(applied, false, "a fenced-out worker's writes never run")
    assert.equal(await completeTask(t.db, {taskId: id, epoch: second.epoch, workerId: 'fresh'}, {result: {from: 'fresh'}}), true)

    const task = await t.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    assert.equal(task.status, 'completed')
    assert.deepEqual(task.result, {from: 'fresh'})
    assert.equal(task.crash_count, 1)
    assert.equal(task.attempts, 0)
    const events = await t.db.selectFrom('task_events').select(['event', 'worker_id', 'lease_epoch']).where('task_id', '=', id).orderBy('id').execute()
    assert.deepEqual(
      events.map((e) => e.event),
      ['claimed', 'requeued_lease_expired', 'claimed', 'fenced_out', 'completed'],
    )
    const fence = events.find((e) => e.event === 'fenced_out')!
    assert.equal(fence.worker_id, 'stale')
    assert.equal(Number(fence.lease_epoch), first.epoch)
  })

  it('fences out a stale completion on the batch path too (completeTasks): only the current epoch completes', async () => {
    const [{id: reLeased}] = await enqueue(t.db, {kind: 'k'})
    // Two workers: "stale" held the task first; its lease ran out, the sweep requeued it, "fresh" holds it now at a newer epoch.
    const [first] = await claimTasks(t.db, {...base, workerId: 'stale', limit: 1, leaseMs: 1})
    assert.equal(first.id, reLeased)
    await new Promise((r) => setTimeout(r, 20))
    assert.equal((await sweep(t.db, {deadAfterMs: 15_000, sessionGraceMs: 5000, maxCrashes: 3})).requeued, 1)
    const [second] = await claimTasks(t.db, {...base, workerId: 'fresh', limit: 1})
    assert.equal(second.id, reLeased)
    assert.equal(second.epoch, first.epoch + 1)
    const [{id: current}] = await enqueue(t.db, {kind: 'k'})
    const [other] = await claimTasks(t.db, {...base, workerId: 'stale', limit: 1})
    assert.equal(other.id, current)

    // The stale worker's batch: its old lease of the re-leased task and its current lease of the other one.
    const batch = await completeTasks(
      t.db,
      'stale',
      [
        {taskId: reLeased, epoch: first.epoch, result: {from: 'stale'}},
        {taskId: current, epoch: other.epoch, result: {from: 'stale'}},
      ],
      {...base, workerId: 'stale', limit: 5},
    )
    assert.deepEqual([...batch.completed], [current], 'only the lease that still holds completes')
    assert.deepEqual(batch.claimed, [], 'nothing else to claim: the re-leased task is not taken back')
    const task = await t.db.selectFrom('tasks').selectAll().where('id', '=', reLeased).executeTakeFirstOrThrow()
    assert.equal(task.status, 'running')
    assert.equal(task.lease_owner, 'fresh')
    assert.equal(task.result, null, "the stale worker's result is not stored")

    assert.deepEqual([...(await completeTasks(t.db, 'fresh', [{taskId: reLeased, epoch: second.epoch, result: {from: 'fresh'}}])).completed], [reLeased])
    assert.deepEqual((await t.db.selectFrom('tasks').select('result').where('id', '=', reLeased).executeTakeFirstOrThrow()).result, {from: 'fresh'})
  })

  it('a claim gives each task as stored, whether it claims alone or with a batch completion (ids and epochs numbers, created_at to the millisecond)', async () => {
    const payload = {name: 'Zürich "Süd" \\ {x}', nested: {list: [1, 'two', null]}, big: 2 ** 40}
    const [{id: first}, {id: second}, {id: done}] = await enqueue(t.db, [
      {kind: 'k', payload, priority: 3, maxAttempts: 7, scope: 'run-1'},
      {kind: 'k', payload: 'plain', priority: 2},
      {kind: 'k', priority: 9},
    ])
    const stored = async (id: number) =>
      t.db.selectFrom('tasks').select(['created_at', 'lease_epoch', 'attempts']).where('id', '=', id).executeTakeFirstOrThrow()

    const [held] = await claimTasks(t.db, {...base, workerId: 'w', limit: 1})
    assert.equal(held.id, done)
    const [alone] = await claimTasks(t.db, {...base, workerId: 'w', limit: 1})
    const {claimed, completed} = await completeTasks(t.db, 'w', [{taskId: held.id, epoch: held.epoch}], {...base, workerId: 'w', limit: 1})
    assert.deepEqual([...completed], [done])
    const [together] = claimed

    for (const [task, id, expected] of [
      [alone, first, {payload, priority: 3, maxAttempts: 7, scope: 'run-1'}],
      [together, second, {payload: 'plain', priority: 2, maxAttempts: 5, scope: null}],
    ] as const) {
      const row = await stored(id)
      assert.equal(task.id, id)
      assert.equal(typeof task.id, 'number')
      assert.equal(task.kind, 'k')
      assert.deepEqual(task.payload, expected.payload)
      assert.equal(task.priority, expected.priority)
      assert.equal(task.maxAttempts, expected.maxAttempts)
      assert.equal(task.scope, expected.scope)
      assert.equal(task.attempts, row.attempts)
      assert.equal(task.crashCount, 0)
      assert.equal(task.snoozes, 0)
      assert.equal(task.epoch, Number(row.lease_epoch))
      assert.equal(typeof task.epoch, 'number')
      assert.ok(task.createdAt instanceof Date)
      assert.equal(task.createdAt.getTime(), row.created_at.getTime())
    }
  })

  it('a batch completion stores each result exactly as the handler gave it (quotes, backslashes, braces, unicode, scalars, none)', async () => {
    const results: unknown[] = [
      {quote: 'say "hi"', slash: 'a\\b\\"c', braces: '{1,2}', comma: 'x, y', unicode: 'Zürich – 東京 😀', nested: {list: [1, null, 'NULL']}},
      'a bare string with "quotes"',
      0,
      false,
      [],
      'NULL',
      undefined,
      null,
    ]
    const enqueued = await enqueue(
      t.db,
      results.map(() => ({kind: 'k'})),
    )
    const claimed = await claimTasks(t.db, {...base, workerId: 'w', limit: results.length})
    const epochOf = new Map(claimed.map((c) => [c.id, c.epoch]))
    const items = enqueued.map((e, i) => ({taskId: e.id, epoch: epochOf.get(e.id)!, result: results[i]}))
    const {completed} = await completeTasks(t.db, 'w', items)
    assert.equal(completed.size, results.length)
    const rows = await t.db.selectFrom('tasks').select(['id', 'result']).orderBy('id').execute()
    // A handler's undefined or null result is stored as no result (SQL null), as the single completion does.
    assert.deepEqual(
      rows.map((r) => r.result),
      results.map((r) => (r === undefined ? null : r)),
    )
  })

  it('a sweeper that has heard from the database only briefly (after an outage) gives a silent worker that long before calling it dead', async () => {
    // A worker silent for 20 s, holding no session lock: dead to a sweeper that could have heard it all along.
    const silent = async (id: string) =>
      t.db
        .insertInto('workers')
        .values({
          id,
          types: ['k'],
          host: 'h',
          pid: 1,
          version: 'test',
          concurrency: 1,
          scope: null,
          lock_key: 1,
          started_at: new Date(Date.now() - 60_000),
          last_heartbeat_at: sql<Date>`now() - interval '20 seconds'` as never,
          resource_metrics: JSON.stringify({}),
          status: 'idle',
        })
        .execute()
    const config = {deadAfterMs: 1000, sessionGraceMs: 500, maxCrashes: 3}
    // Silence counts from the server's start too (this test run's server is young): let that be longer than deadAfterMs.
    const {rows} = await sql<{s: number}>`select extract(epoch from now() - pg_postmaster_start_time())::float8 as s`.execute(t.db)
    await new Promise((r) => setTimeout(r, Math.max(0, 1500 - rows[0].s * 1000)))
    await silent('w-outage')
    // The database was unreachable until 200 ms ago: the worker may not have been able to heartbeat either.
    assert.deepEqual((await sweep(t.db, config, {reachableForMs: 200})).deadWorkers, [])
    assert.equal((await t.db.selectFrom('workers').select('status').where('id', '=', 'w-outage').executeTakeFirstOrThrow()).status, 'idle')
    assert.deepEqual((await sweep(t.db, config)).deadWorkers, ['w-outage'], 'heard from all along: dead')
  })

  it('a worker of two kinds claims the higher-priority task of the other kind before an older one of its own', async () => {
    const [{id: older}] = await enqueue(t.db, {kind: 'a', priority: 0})
    await new Promise((r) => setTimeout(r, 10))
    const [{id: urgent}] = await enqueue(t.db, {kind: 'b', priority: 5})
    const [first] = await claimTasks(t.db, {...base, kinds: ['a', 'b'], workerId: 'both', limit: 1})
    assert.equal(first.id, urgent, 'priority first, whatever the kind')
    const [next] = await claimTasks(t.db, {...base, kinds: ['a', 'b'], workerId: 'both', limit: 1})
    assert.equal(next.id, older)
  })

  it('routes by requirements: capabilities, pool, memory and GPU memory', async () => {
    await enqueue(t.db, [
      {kind: 'k', payload: 'any'},
      {kind: 'k', payload: 'gpu', requirements: {capabilities: ['gpu']}},
      {kind: 'k', payload: 'gpu+browser', requirements: {capabilities: ['gpu', 'browser']}},
      {kind: 'k', payload: 'big-mem', requirements: {minMemoryGb: 64}},
      {kind: 'k', payload: 'vram', requirements: {minGpuVramGb: 20}},
      {kind: 'k', payload: 'eu', requirements: {pool: 'eu'}},
    ])
    const plain = await claimTasks(t.db, {...base, workerId: 'plain', limit: 10})
    assert.deepEqual(
      plain.map((c) => c.payload),
      ['any'],
    )
    const gpu = await claimTasks(t.db, {...base, workerId: 'gpu', limit: 10, capabilities: ['gpu'], gpuVramAvailableGb: 24})
    assert.deepEqual(gpu.map((c) => c.payload).sort(), ['gpu', 'vram'])
    const eu = await claimTasks(t.db, {...base, workerId: 'eu', limit: 10, pool: 'eu', capabilities: ['browser', 'gpu'], memoryAvailableGb: 128})
    assert.deepEqual(eu.map((c) => c.payload).sort(), ['big-mem', 'eu', 'gpu+browser'])
  })

  it('retries a failed task on request', async () => {
    const [{id}] = await enqueue(t.db, {kind: 'k'})
    await sql`update tasks set status = 'failed', attempts = 5, last_error = 'boom' where id = ${id}`.execute(t.db)
    assert.equal(await retryTask(t.db, id), true)
    const task = await t.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    assert.equal(task.status, 'queued')
    assert.equal(task.attempts, 0)
    assert.equal(await retryTask(t.db, id), false, 'a queued task is not retried again')
  })

  it('leases what it picked by primary key: a claim of a few hundred does not read the whole table', async () => {
    // A join from the picked ids let the planner hash the whole table: 13 ms of a 23 ms claim at 50,000 tasks.
    const kinds = Array.from({length: 40_000}, () => ({kind: 'k'}))
    for (let i = 0; i < kinds.length; i += 10_000) await enqueue(t.db, kinds.slice(i, i + 10_000))
    await sql`vacuum analyze tasks`.execute(t.db)
    const statements: Array<{sql: string; parameters: readonly unknown[]}> = []
    const logged = new Kysely<Database>({
      dialect: new PostgresDialect({pool: createPool(t.url, {max: 1})}),
      log: (event) => void statements.push(event.query),
    })
    try {
      await claimTasks(logged, {...base, workerId: 'w', limit: 500})
    } finally {
      await logged.destroy()
    }

    const [claim] = statements
    const client = new pg.Client({connectionString: t.url})
    await client.connect()
    let plan: string
    try {
      await client.query('begin')
      const {rows} = await client.query(`explain (analyze, costs off) ${claim.sql}`, [...claim.parameters])
      plan = rows.map((r: Record<string, string>) => r['QUERY PLAN']).join('\n')
    } finally {
      await client.query('rollback')
      await client.end()
    }

    assert.doesNotMatch(plan, /Seq Scan on tasks/, plan)
    assert.match(plan, /Index Scan using tasks_pkey/, plan)
  })
})

describe('runtime: stats', function () {
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
  })

  // Lifetime counts per type come from workers.kind_counts (migration 0012): w2's two tasks are one of each kind.
  const workers = () =>
    sql`
    insert into workers (id, types, host, pid, version, concurrency, status, lock_key, tasks_done, kind_counts)
    values ('w1', '{a}', 'h', 1, 'v', 4, 'idle', 1, 5, '{"a": {"done": 5}}'),
           ('w2', '{a,b}', 'h', 2, 'v', 4, 'dead', 2, 2, '{"a": {"done": 1}, "b": {"done": 1}}')`.execute(t.db)

  it('reports the queue by kind and status, and the fleet by type', async () => {
    const tasks = await enqueue(t.db, [{kind: 'a'}, {kind: 'a'}, {kind: 'a', runAfter: 60_000}, {kind: 'b'}])
    await sql`update tasks set status = 'failed' where id = ${tasks[1].id}`.execute(t.db)
    await sql`update tasks set attempts = 1 where id = ${tasks[2].id}`.execute(t.db)
    await workers()
    const q = await queueStats(t.db)
    const a = q.find((r) => r.kind === 'a')!
    assert.equal(a.queued, 2)
    assert.equal(a.failed, 1)
    assert.equal(a.retriesWaiting, 1)
    assert.ok(a.oldestQueuedAgeS !== null && a.oldestQueuedAgeS >= 0)
    assert.equal(q.find((r) => r.kind === 'b')!.queued, 1)

    const w = await workerStats(t.db)
    assert.deepEqual(
      w.map((r) => [r.type, r.total, r.idle, r.dead, r.tasksDone]),
      [
        ['a', 2, 1, 1, 6],
        ['b', 1, 0, 1, 1],
      ],
    )
  })

  it('counts done in the last 5 minutes by the kind of task, not once per type of the worker that did it', async () => {
    await workers()
    await enqueue(t.db, [{kind: 'a'}, {kind: 'b'}])
    // w2 works on a and b; it completes one task of kind b.
    const [b] = await claimTasks(t.db, {...base, kinds: ['b'], workerId: 'w2', limit: 1})
    assert.equal(await completeTask(t.db, {taskId: b.id, epoch: b.epoch, workerId: 'w2'}), true)
    const w = await workerStats(t.db)
    assert.deepEqual(
      w.map((r) => [r.type, r.doneLast5m]),
      [
        ['a', 0],
        ['b', 1],
      ],
    )
  })
})
