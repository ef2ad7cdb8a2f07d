import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {cancelTasks, enqueue, TaskRegistry, Worker, type RuntimeConfig} from '../../src/runtime/index.js'
import {useFreshDatabase} from '../helpers/db.js'
import {waitFor} from '../helpers/processes.js'
import {FAST} from '../helpers/runtime.js'

/**
 * Claiming ahead of free slots: only workers whose tasks are shorter than a
 * claim do it (long tasks stay in the queue for idle workers), a stopping
 * worker gives back what it has not started, and a canceled task's worker
 * hears of it at once instead of at its next heartbeat.
 */
describe('runtime: claiming ahead, giving back, hearing of cancels', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()
  const workers: Array<{worker: Worker; running: Promise<unknown>}> = []

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
  })

  afterEach(async () => {
    for (const w of workers.splice(0)) {
      w.worker.stop({force: true})
      await w.running
    }
  })

  function start(registry: TaskRegistry, options: {concurrency: number; id: string; config?: Partial<RuntimeConfig>}): Worker {
    const worker = new Worker({databaseUrl: t.url, registry, concurrency: options.concurrency, id: options.id, config: {...FAST, ...options.config}})
    workers.push({worker, running: worker.start()})
    return worker
  }

  async function completedBy(): Promise<Record<string, number>> {
    const {rows} = await sql<{worker_id: string; n: number}>`
      select worker_id, count(*)::int as n from task_events where event = 'completed' group by worker_id`.execute(t.db)
    return Object.fromEntries(rows.map((r) => [r.worker_id, r.n]))
  }

  it('long tasks are not claimed ahead: an idle worker gets its share while a busy one holds only what it runs', async () => {
    let running = 0
    let most = 0
    const registry = new TaskRegistry().register('slow', async () => {
      most = Math.max(most, ++running)
      await new Promise((r) => setTimeout(r, 300))
      running--
    })
    start(registry, {concurrency: 2, id: 'busy'})
    // Teach the first worker that its tasks are long (slower than any claim), then give the fleet a batch.
    const [warm] = await enqueue(t.db, {kind: 'slow'})
    await waitFor(
      'the first task',
      async () => (await t.db.selectFrom('tasks').select('status').where('id', '=', warm.id).executeTakeFirstOrThrow()).status === 'completed',
    )
    await enqueue(
      t.db,
      Array.from({length: 8}, () => ({kind: 'slow'})),
    )
    start(registry, {concurrency: 2, id: 'idle'})
    await waitFor('all tasks', async () => Object.values(await completedBy()).reduce((a, b) => a + b, 0) === 9, 20_000)
    const by = await completedBy()
    assert.ok(by.idle >= 3, `the second worker got its share (${JSON.stringify(by)})`)
    assert.ok(most <= 4, 'never more handlers than the two workers have slots')
  })

  it('short tasks are claimed ahead, never run beyond the concurrency, and a graceful stop gives back the ones not started', async () => {
    let running = 0
    let most = 0
    let done = 0
    // Quick at first (the worker learns its tasks are shorter than a claim); then the two running ones hold
    // their slots, so whatever it claimed ahead is still waiting, not started, when the stop comes.
    let holding = false
    let letGo = () => {}
    const gate = new Promise<void>((resolve) => (letGo = resolve))
    const registry = new TaskRegistry().register('quick', async () => {
      most = Math.max(most, ++running)
      await new Promise((r) => setImmediate(r))
      if (holding) await gate
      running--
      done++
    })
    const [first] = await enqueue(
      t.db,
      Array.from({length: 3000}, () => ({kind: 'quick'})),
    )
    const worker = start(registry, {concurrency: 2, id: 'quick-worker', config: {graceMs: 10_000}})
    const held = async () =>
      (await sql<{n: number}>`select count(*)::int as n from tasks where status = 'running' and lease_owner = 'quick-worker'`.execute(t.db)).rows[0].n
    await waitFor('the first hundred tasks done', async () => done > 100, 20_000, 5)
    holding = true
    const ahead = await waitFor('tasks held beyond the two slots', async () => ((await held()) > 2 ? held() : undefined), 20_000, 20)
    worker.stop()
    letGo()
    await workers.find((w) => w.worker === worker)!.running
    assert.ok(ahead > 2)
    assert.ok(most <= 2, `never more than 2 handlers at once (saw ${most})`)

    const {rows} = await sql<{status: string; n: number}>`select status, count(*)::int as n from tasks group by status order by status`.execute(t.db)
    const by = Object.fromEntries(rows.map((r) => [r.status, r.n]))
    assert.equal(by.running ?? 0, 0, 'nothing left leased to a stopped worker')
    assert.equal((by.completed ?? 0) + (by.queued ?? 0), 3000, 'every task completed or back in the queue')
    assert.equal(by.completed, done)
    const released = await sql<{n: number}>`select count(*)::int as n from task_events where event = 'released' and reason like '%draining'`.execute(t.db)
    assert.ok(released.rows[0].n > 0, 'the claimed-ahead tasks were given back at the stop')
    const late = await sql<{n: number}>`select count(*)::int as n from task_events where event = 'released' and reason like '%grace period over'`.execute(t.db)
    assert.equal(late.rows[0].n, 0, 'none waited for the grace period to run out')
    assert.ok(first.id > 0)
  })

  it('a canceled task is stopped by its worker at once, not at the next heartbeat', async () => {
    let aborted = false
    const registry = new TaskRegistry().register('wait', async (_task, ctx) => {
      await new Promise<void>((resolve) => {
        ctx.signal.addEventListener('abort', () => resolve(), {once: true})
        setTimeout(resolve, 30_000)
      })
      aborted = ctx.signal.aborted
    })
    // A heartbeat a minute apart: only the cancel's notification can stop the handler within the wait below.
    start(registry, {concurrency: 1, id: 'waiter', config: {heartbeatIntervalMs: 60_000, leaseMs: 120_000, deadAfterMs: 180_000}})
    const [task] = await enqueue(t.db, {kind: 'wait', scope: 'job:1'})
    await waitFor(
      'the task to run',
      async () => (await t.db.selectFrom('tasks').select('status').where('id', '=', task.id).executeTakeFirstOrThrow()).status === 'running',
    )
    assert.equal(await cancelTasks(t.db, {scope: 'job:1', statuses: ['queued', 'running']}, 'canceled by the test'), 1)
    await waitFor('the handler to be aborted', async () => aborted, 10_000, 20)
  })
})
