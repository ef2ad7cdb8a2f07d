import assert from 'node:assert/strict'
import fs from 'node:fs'
import {sql} from 'kysely'

import {classifyError, enqueue, PermanentError, retryAfterMs, retryTask, SnoozeError, TaskRegistry, TransientError, Worker} from '../../src/runtime/index.js'
import {waitFor} from '../helpers/processes.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FAST, useTestWorker} from '../helpers/runtime.js'

describe('runtime: Worker semantics (in-process, real PostgreSQL)', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
  })

  const harness = useTestWorker(t)
  const startWorker = harness.start
  const settled = harness.settled

  async function events(id: number): Promise<string[]> {
    return (await t.db.selectFrom('task_events').select('event').where('task_id', '=', id).orderBy('id').execute()).map((e) => e.event)
  }

  it('runs a handler and commits its writes with the completion', async () => {
    await sql`create table if not exists effects (task_id bigint, worker_id text)`.execute(t.db)
    const registry = new TaskRegistry().register<{x: number}>('double', async (task) => ({
      result: {y: task.payload.x * 2},
      apply: async (trx) => {
        await sql`insert into effects values (${task.id}, 'w')`.execute(trx)
      },
    }))
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'double', payload: {x: 21}})
    const row = await settled(id)
    assert.equal(row.status, 'completed')
    assert.deepEqual(row.result, {y: 42})
    const {rows} = await sql<{n: number}>`select count(*)::int as n from effects where task_id = ${id}`.execute(t.db)
    assert.equal(rows[0].n, 1)
  })

  it('retries transient errors inside the lease (no attempt used)', async () => {
    let calls = 0
    const registry = new TaskRegistry().register('flaky', async () => {
      calls++
      if (calls < 3) throw Object.assign(new Error('upstream 503'), {status: 503})
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'flaky'})
    const row = await settled(id)
    assert.equal(row.status, 'completed')
    assert.equal(calls, 3)
    assert.equal(row.attempts, 0)
    assert.deepEqual(await events(id), ['claimed', 'completed'])
  })

  it('snoozes on 429 / Retry-After without using an attempt', async () => {
    let calls = 0
    const registry = new TaskRegistry().register('limited', async () => {
      calls++
      if (calls === 1) throw Object.assign(new Error('rate limited'), {status: 429, headers: {'retry-after': '1'}})
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'limited'})
    const snoozed = await waitFor('the snooze', async () => {
      const r = await t.db
        .selectFrom('tasks')
        .select(['status', 'attempts', sql<number>`extract(epoch from run_after - updated_at)`.as('delay')])
        .where('id', '=', id)
        .executeTakeFirstOrThrow()
      return r.status === 'queued' && calls === 1 ? r : undefined
    })
    assert.equal(snoozed.attempts, 0)
    assert.ok(Number(snoozed.delay) > 0.9 && Number(snoozed.delay) < 1.5, `snoozed for Retry-After (got ${snoozed.delay}s)`)
    const row = await settled(id)
    assert.equal(row.status, 'completed')
    assert.equal(row.attempts, 0)
    assert.deepEqual(await events(id), ['claimed', 'snoozed', 'claimed', 'completed'])
  })

  it('fails at once on a permanent error', async () => {
    let calls = 0
    const registry = new TaskRegistry().register('bad', async () => {
      calls++
      throw new PermanentError('401 invalid api key')
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'bad', maxAttempts: 5})
    const row = await settled(id)
    assert.equal(row.status, 'failed')
    assert.equal(row.attempts, 1)
    assert.equal(calls, 1)
    assert.match(row.last_error!, /401 invalid api key/)
  })

  it("runs the kind's onFailed hook in the transaction that fails a task for good", async () => {
    await sql`create table if not exists failures (task_id bigint)`.execute(t.db)
    const registry = new TaskRegistry().register(
      'doomed',
      async () => {
        throw new PermanentError('no such company')
      },
      {
        onFailed: async (trx, task) => {
          await sql`insert into failures values (${task.id})`.execute(trx)
        },
      },
    )
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'doomed'})
    assert.equal((await settled(id)).status, 'failed')
    const {rows} = await sql<{task_id: number}>`select task_id from failures`.execute(t.db)
    assert.deepEqual(
      rows.map((r) => Number(r.task_id)),
      [id],
    )
  })

  it('uses up attempts with backoff, ends failed, and a retry then succeeds', async () => {
    let fail = true
    let calls = 0
    const registry = new TaskRegistry().register('sometimes', async () => {
      calls++
      if (fail) throw new Error('parse error in response')
    })
    const attemptBackoff = {baseMs: 400, maxMs: 2000, jitter: 0}
    startWorker(registry, {config: {...FAST, attemptBackoff}})
    const [{id}] = await enqueue(t.db, {kind: 'sometimes', maxAttempts: 3})
    const row = await settled(id)
    assert.equal(row.status, 'failed')
    assert.equal(row.attempts, 3)
    assert.equal(calls, 3, 'an unclassified error is not retried inside the lease')
    const timeline = await t.db
      .selectFrom('task_events')
      .select(['event', sql<number>`extract(epoch from at) * 1000`.as('ms')])
      .where('task_id', '=', id)
      .orderBy('id')
      .execute()
    assert.deepEqual(
      timeline.map((e) => e.event),
      ['claimed', 'retry_scheduled', 'claimed', 'retry_scheduled', 'claimed', 'failed'],
    )
    // Each retry waits its backoff (database clock): 400 ms after the first failure, 800 ms after the second.
    const gaps = [1, 3].map((i) => Number(timeline[i + 1].ms) - Number(timeline[i].ms))
    assert.ok(gaps[0] >= 400 && gaps[1] >= 800, `claims waited out the backoff: ${gaps.map((g) => Math.round(g))} ms`)

    fail = false
    assert.equal(await retryTask(t.db, id), true)
    const again = await settled(id)
    assert.equal(again.status, 'completed')
  })

  it('keeps transient failures that outlast the in-lease retries as failed attempts', async () => {
    let calls = 0
    const registry = new TaskRegistry().register('down', async () => {
      calls++
      throw Object.assign(new Error('connect ECONNRESET'), {code: 'ECONNRESET'})
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'down', maxAttempts: 1})
    const row = await settled(id)
    assert.equal(row.status, 'failed')
    assert.equal(calls, 4, 'first try + 3 in-lease retries')
  })

  it('never rescues a task longer than the lease from a live worker', async () => {
    const registry = new TaskRegistry().register('long', async () => {
      await new Promise((r) => setTimeout(r, 4 * (FAST.leaseMs as number)))
    })
    startWorker(registry)
    const [{id}] = await enqueue(t.db, {kind: 'long'})
    const row = await settled(id)
    assert.equal(row.status, 'completed')
    assert.equal(row.crash_count, 0)
    assert.deepEqual(await events(id), ['claimed', 'completed'])
  })

  it('survives a handler that throws something odd, and keeps working', async () => {
    const registry = new TaskRegistry().register<{bad: boolean}>('odd', async (task) => {
      if (task.payload.bad) throw {weird: true}
    })
    startWorker(registry)
    const [bad, good] = await enqueue(t.db, [
      {kind: 'odd', payload: {bad: true}, maxAttempts: 1},
      {kind: 'odd', payload: {bad: false}},
    ])
    assert.equal((await settled(bad.id)).status, 'failed')
    assert.equal((await settled(good.id)).status, 'completed')
  })

  it('registers, heartbeats with resource metrics, and marks itself stopped', async () => {
    const registry = new TaskRegistry().register('noop', async () => {})
    const w = startWorker(registry, {pool: 'gpu-pool', capabilities: ['browser']})
    const row = await waitFor('a heartbeat with metrics', async () => {
      const r = await t.db.selectFrom('workers').selectAll().where('id', '=', w.id).executeTakeFirst()
      return r && (r.resource_metrics as {cpu_percent?: number}).cpu_percent !== undefined && Date.now() - new Date(r.started_at).getTime() > 400
        ? r
        : undefined
    })
    const m = row.resource_metrics as Record<string, unknown>
    for (const key of [
      'cpu_percent',
      'cpu_cores_physical',
      'cpu_cores_available',
      'cpu_load_1min',
      'cpu_load_5min',
      'memory_percent',
      'memory_available_gb',
      'gpu_vram_total_gb',
      'gpu_vram_available_gb',
      'gpu_type',
    ]) {
      assert.ok(key in m, `resource_metrics has ${key}`)
    }

    assert.equal(typeof m.cpu_percent, 'number')
    assert.ok((m.memory_available_gb as number) > 0)
    assert.equal(row.pool, 'gpu-pool')
    assert.deepEqual(row.capabilities, ['browser'])
    assert.ok(['idle', 'busy'].includes(row.status))
    // It keeps beating: last_heartbeat_at moves on (database clock) with fresh metrics, and the worker is
    // never presumed dead on the way (a dead worker registers again: a new started_at).
    const later = await waitFor(
      'the next heartbeats',
      async () => {
        const r = await t.db.selectFrom('workers').selectAll().where('id', '=', w.id).executeTakeFirstOrThrow()
        return r.last_heartbeat_at.getTime() > row.last_heartbeat_at.getTime() + (FAST.heartbeatIntervalMs as number) ? r : undefined
      },
      10_000,
      50,
    )
    assert.notEqual((later.resource_metrics as {sampled_at: string}).sampled_at, m.sampled_at)
    assert.deepEqual([later.status, later.started_at], [row.status, row.started_at], 'the same registration, alive throughout')
    // The GIN index makes metric queries cheap: e.g. workers with no GPU.
    const {rows} = await sql<{id: string}>`select id from workers where resource_metrics @> '{"gpu_type":"none"}'`.execute(t.db)
    assert.equal(rows.length, m.gpu_type === 'none' ? 1 : 0)

    w.stop()
    await harness.finished()
    const stopped = await t.db.selectFrom('workers').select(['status', 'stopped_at']).where('id', '=', w.id).executeTakeFirstOrThrow()
    assert.equal(stopped.status, 'stopped')
    assert.ok(stopped.stopped_at)
  })

  it('claims only tasks whose requirements it meets', async () => {
    const ran: string[] = []
    const registry = new TaskRegistry().register<string>('r', async (task) => {
      ran.push(task.payload)
    })
    startWorker(registry, {capabilities: ['browser']})
    await enqueue(t.db, [
      {kind: 'r', payload: 'plain'},
      {kind: 'r', payload: 'browser', requirements: {capabilities: ['browser']}},
      {kind: 'r', payload: 'gpu', requirements: {capabilities: ['gpu']}},
    ])
    await waitFor('two tasks', async () => ran.length === 2)
    await new Promise((r) => setTimeout(r, 700))
    assert.deepEqual(ran.sort(), ['browser', 'plain'])
    const gpu = await t.db
      .selectFrom('tasks')
      .select('status')
      .where(sql<boolean>`payload = '"gpu"'::jsonb`)
      .executeTakeFirstOrThrow()
    assert.equal(gpu.status, 'queued')
  })

  it('leaves queued a task that needs more memory than is available now, though less than the machine has', async () => {
    // What the worker's heartbeat reads: MemAvailable and MemTotal.
    const meminfo = fs.readFileSync('/proc/meminfo', 'utf8')
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(meminfo)![1])
    const totalGb = kb('MemTotal') / 1024 ** 2
    const availableGb = kb('MemAvailable') / 1024 ** 2
    assert.ok(totalGb - availableGb > 0.2, `this machine has ${availableGb.toFixed(1)} of ${totalGb.toFixed(1)} GB available: too close to tell apart`)
    const ran: string[] = []
    const registry = new TaskRegistry().register<string>('mem', async (task) => {
      ran.push(task.payload)
    })
    startWorker(registry)
    const [{id: big}] = await enqueue(t.db, [
      {kind: 'mem', payload: 'big', requirements: {minMemoryGb: Math.round((totalGb - 0.1) * 100) / 100}},
      {kind: 'mem', payload: 'small', requirements: {minMemoryGb: Math.min(1, availableGb / 2)}},
    ])
    await waitFor('the task that fits', async () => ran.includes('small'))
    // Several polls come and go.
    await new Promise((r) => setTimeout(r, 4 * (FAST.pollIntervalMs as number)))
    assert.deepEqual(ran, ['small'])
    assert.equal((await t.db.selectFrom('tasks').select('status').where('id', '=', big).executeTakeFirstOrThrow()).status, 'queued')
  })

  it('stops claiming while over its memory threshold, and claims again once under it', async () => {
    let ran = 0
    const registry = new TaskRegistry().register('m', async () => {
      ran++
    })
    const warnings: string[] = []
    const logger = {debug() {}, info() {}, error() {}, warn: (_o: object, m: string) => warnings.push(m)}
    const w = startWorker(registry, {config: {...FAST, maxMemoryPercent: 0}, logger})
    const [{id}] = await enqueue(t.db, {kind: 'm'})
    await waitFor('the worker to say it is over capacity', async () => warnings.some((m) => m.startsWith('over capacity')))
    // Its enqueue notification and several polls (500 ms each) come and go: the task stays queued.
    await new Promise((r) => setTimeout(r, 4 * (FAST.pollIntervalMs as number)))
    assert.equal(ran, 0)
    assert.equal((await t.db.selectFrom('tasks').select('status').where('id', '=', id).executeTakeFirstOrThrow()).status, 'queued')

    // The same worker, with memory to spare (a threshold no machine is over): it takes the task.
    w.config.maxMemoryPercent = 100
    assert.equal((await settled(id)).status, 'completed')
    assert.equal(ran, 1)
  })

  it('a new task wakes an idle worker through LISTEN/NOTIFY, long before its poll', async () => {
    const pollIntervalMs = 60_000
    const registry = new TaskRegistry().register('n', async () => {})
    startWorker(registry, {config: {...FAST, pollIntervalMs}})
    // A first task, so the worker has claimed, finished, and gone back to waiting on its (minute-long) poll.
    const [first] = await enqueue(t.db, {kind: 'n'})
    const done = await settled(first.id)
    await new Promise((r) => setTimeout(r, 300))
    const [second] = await enqueue(t.db, {kind: 'n'})
    // The poll cannot fire before a minute after the first task finished; the wait gives up long before.
    const row = await waitFor(
      'the second task to run',
      async () => {
        const r = await t.db.selectFrom('tasks').selectAll().where('id', '=', second.id).executeTakeFirstOrThrow()
        return r.status === 'completed' ? r : undefined
      },
      pollIntervalMs / 2,
    )
    const sincePollArmed = row.started_at!.getTime() - done.finished_at!.getTime()
    assert.ok(sincePollArmed < pollIntervalMs, `started ${sincePollArmed} ms after the worker went idle: woken, not polled`)
  })

  it('an idle worker sleeps until the earliest task it could claim is due (a snooze, a backoff), not until its poll', async () => {
    const pollIntervalMs = 60_000
    let calls = 0
    const registry = new TaskRegistry().register('later', async () => {
      // The first attempt snoozes 1.5 s: nothing notifies when it becomes due.
      if (++calls === 1) throw new SnoozeError('come back later', 1500)
    })
    startWorker(registry, {config: {...FAST, pollIntervalMs}})
    const [task] = await enqueue(t.db, {kind: 'later'})
    const row = await waitFor(
      'the snoozed task to run again',
      async () => {
        const r = await t.db.selectFrom('tasks').selectAll().where('id', '=', task.id).executeTakeFirstOrThrow()
        return r.status === 'completed' ? r : undefined
      },
      pollIntervalMs / 2,
    )
    assert.equal(calls, 2)
    assert.equal(row.attempts, 0, 'a snooze uses no attempt')
  })
})

describe('runtime: error classification', () => {
  it('reads status codes, socket errors and Retry-After the way SDKs shape them', async () => {
    assert.deepEqual(classifyError(Object.assign(new Error('x'), {status: 500})), {type: 'transient'})
    assert.deepEqual(classifyError(Object.assign(new Error('x'), {status: 401})), {type: 'permanent'})
    assert.deepEqual(classifyError(Object.assign(new Error('x'), {status: 429, headers: new Headers({'retry-after': '7'})})), {
      type: 'snooze',
      retryAfterMs: 7000,
    })
    assert.deepEqual(classifyError(new SnoozeError('later', 1234)), {type: 'snooze', retryAfterMs: 1234})
    assert.deepEqual(classifyError(new TransientError('t')), {type: 'transient'})
    assert.deepEqual(classifyError(new Error('fetch failed', {cause: Object.assign(new Error('reset'), {code: 'ECONNRESET'})})), {type: 'transient'})
    assert.deepEqual(classifyError(new Error('plain')), {type: 'error'})
    assert.equal(retryAfterMs({'retry-after': new Date(Date.now() + 10_000).toUTCString()}, Date.now())! > 8000, true)
  })
})

describe('runtime: heartbeats during busy claiming', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  it('never releases a task the worker holds (claims and heartbeats do not interleave)', async () => {
    let n = 0
    const registry = new TaskRegistry().register('quick', async () => {
      n++
      await new Promise((r) => setTimeout(r, 2))
    })
    await enqueue(
      t.db,
      Array.from({length: 600}, () => ({kind: 'quick'})),
    )
    const worker = new Worker({databaseUrl: t.url, registry, concurrency: 8, config: {...FAST, heartbeatIntervalMs: 40, leaseMs: 1500}})
    const running = worker.start()
    await waitFor('all done', async () => {
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where status = 'completed'`.execute(t.db)
      return rows[0].n === 600
    })
    worker.stop()
    await running
    const {rows} = await sql<{event: string; n: number}>`select event, count(*)::int as n from task_events group by event order by event`.execute(t.db)
    assert.deepEqual(rows, [
      {event: 'claimed', n: 600},
      {event: 'completed', n: 600},
    ])
    assert.equal(n, 600)
  })
})
