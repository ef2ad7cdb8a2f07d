import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {QueueRetention} from '../../src/pipeline/retention.js'
import {runScope} from '../../src/pipeline/run-options.js'
import {pruneScopeTasks, pruneStandaloneTasks} from '../../src/runtime/retention.js'
import {useFreshDatabase} from '../helpers/db.js'
import {insertRun, insertTask, surviving} from '../helpers/retention-world.js'

const DAY = 86_400_000

describe('retention of task rows and events', () => {
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate tasks, task_events, runs cascade`.execute(t.db)
  })

  it('removes exactly the finished tasks of runs finished before the retention, and old finished standalone tasks, with their events', async () => {
    const oldRun = runScope(await insertRun(t.db, 'completed', 20))
    const oldCanceled = runScope(await insertRun(t.db, 'canceled', 30))
    // Resumable: resuming retries its failed tasks and those its failure canceled, so they stay.
    const oldFailed = runScope(await insertRun(t.db, 'failed', 30))
    const running = runScope(await insertRun(t.db, 'running', null))
    const needsDecision = runScope(await insertRun(t.db, 'needs_decision', null))
    const recentRun = runScope(await insertRun(t.db, 'completed', 1))

    const gone = [
      await insertTask(t.db, {status: 'completed', scope: oldRun, createdDaysAgo: 25, finishedDaysAgo: 24}),
      await insertTask(t.db, {status: 'failed', scope: oldRun, createdDaysAgo: 25, finishedDaysAgo: 24}),
      await insertTask(t.db, {status: 'quarantined', scope: oldRun, createdDaysAgo: 25, finishedDaysAgo: 24}),
      // A run's tasks go with the run's age, even one that finished only just before the run did.
      await insertTask(t.db, {status: 'canceled', scope: oldCanceled, createdDaysAgo: 31, finishedDaysAgo: 30}),
      await insertTask(t.db, {status: 'completed', createdDaysAgo: 20, finishedDaysAgo: 20}),
      await insertTask(t.db, {status: 'failed', createdDaysAgo: 20, finishedDaysAgo: 15}),
    ]
    const kept = [
      // Never a task still queued or running, whoever asks.
      await insertTask(t.db, {status: 'queued', scope: oldRun, createdDaysAgo: 25}),
      await insertTask(t.db, {status: 'running', scope: oldRun, createdDaysAgo: 25}),
      await insertTask(t.db, {status: 'completed', scope: running, createdDaysAgo: 40, finishedDaysAgo: 40}),
      await insertTask(t.db, {status: 'running', scope: running, createdDaysAgo: 40}),
      await insertTask(t.db, {status: 'completed', scope: needsDecision, createdDaysAgo: 40, finishedDaysAgo: 40}),
      await insertTask(t.db, {status: 'failed', scope: oldFailed, createdDaysAgo: 31, finishedDaysAgo: 31}),
      await insertTask(t.db, {status: 'canceled', scope: oldFailed, createdDaysAgo: 31, finishedDaysAgo: 31}),
      await insertTask(t.db, {status: 'completed', scope: recentRun, createdDaysAgo: 30, finishedDaysAgo: 30}),
      await insertTask(t.db, {status: 'queued', createdDaysAgo: 20}),
      await insertTask(t.db, {status: 'running', createdDaysAgo: 20}),
      await insertTask(t.db, {status: 'completed', createdDaysAgo: 20, finishedDaysAgo: 13}),
      await insertTask(t.db, {status: 'completed', createdDaysAgo: 0, finishedDaysAgo: 0}),
    ]

    const result = await new QueueRetention(14 * DAY).prune(t.db)

    assert.deepEqual({runs: result.runs, tasks: result.tasks, events: result.events}, {runs: 2, tasks: gone.length, events: 2 * gone.length})
    assert.deepEqual(await surviving(t.db, gone), {tasks: [], events: 0})
    assert.deepEqual(await surviving(t.db, kept), {tasks: kept, events: 2 * kept.length})
    // The runs themselves (and so their business data) stay.
    const runs = await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)
    assert.equal(runs.rows[0].n, 6)
    // A second pass finds nothing more.
    const again = await new QueueRetention(14 * DAY).prune(t.db)
    assert.deepEqual([again.tasks, again.events], [0, 0])
  })

  it('looks again at a run it found empty once its finished_at has moved', async () => {
    const runId = await insertRun(t.db, 'completed', 20)
    const retention = new QueueRetention(14 * DAY)
    assert.equal((await retention.prune(t.db)).runs, 0)

    // Should a finished run ever finish again (it cannot be resumed today), its new tasks are not overlooked.
    const task = await insertTask(t.db, {status: 'completed', scope: runScope(runId), createdDaysAgo: 16, finishedDaysAgo: 16})
    await sql`update runs set finished_at = now() - interval '15 days' where id = ${runId}`.execute(t.db)
    const again = await retention.prune(t.db)
    assert.deepEqual([again.runs, again.tasks], [1, 1])
    assert.deepEqual(await surviving(t.db, [task]), {tasks: [], events: 0})
  })

  it('deletes standalone tasks batch by batch, and a bounded pass leaves the rest for the next', async () => {
    const ids: number[] = []
    for (let i = 0; i < 35; i++) ids.push(await insertTask(t.db, {status: 'completed', createdDaysAgo: 3, finishedDaysAgo: 3}))
    const young = await insertTask(t.db, {status: 'completed', createdDaysAgo: 0, finishedDaysAgo: 0})

    const first = await pruneStandaloneTasks(t.db, DAY, {batchSize: 10, maxBatches: 2})
    assert.deepEqual(first, {tasks: 20, events: 40, batches: 2, left: true}, 'stopped at its limit, and says more is left')
    assert.deepEqual((await surviving(t.db, ids)).tasks, ids.slice(20))

    const rest = await pruneStandaloneTasks(t.db, DAY, {batchSize: 10})
    assert.equal(rest.tasks, 15)
    assert.equal(rest.batches, 2)
    assert.equal(rest.left, false, 'stopped at the first young task: nothing left for now')
    assert.deepEqual(await surviving(t.db, [...ids, young]), {tasks: [young], events: 2})
  })

  it('deletes the finished tasks of the named scopes batch by batch, and skips a row another transaction holds', async () => {
    const scope = runScope(await insertRun(t.db, 'completed', 20))
    const ids: number[] = []
    for (let i = 0; i < 25; i++) ids.push(await insertTask(t.db, {status: 'completed', scope, createdDaysAgo: 21, finishedDaysAgo: 21}))

    // A transaction holding one task's row (say, a retry of it): that task is left, the others go around it.
    const held = ids[3]
    const result = await t.db.connection().execute(async (c) => {
      await sql`begin`.execute(c)
      await sql`select id from tasks where id = ${held} for update`.execute(c)
      try {
        return await pruneScopeTasks(t.db, [scope], {batchSize: 10})
      } finally {
        await sql`rollback`.execute(c)
      }
    })
    assert.equal(result.tasks, 24)
    assert.equal(result.batches, 3)
    assert.deepEqual((await surviving(t.db, ids)).tasks, [held])
    assert.deepEqual(await pruneScopeTasks(t.db, [scope]), {tasks: 1, events: 2, batches: 1, left: false})
  })
})
