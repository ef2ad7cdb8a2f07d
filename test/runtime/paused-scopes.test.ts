import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {claimTasks, enqueue, ReleaseError, TaskRegistry} from '../../src/runtime/index.js'
import {pausedScopes, pauseScope, resumeScope} from '../../src/runtime/scopes.js'
import {useFreshDatabase} from '../helpers/db.js'
import {CLAIM_K, useTestWorker} from '../helpers/runtime.js'
import {waitFor} from '../helpers/processes.js'

describe('runtime: paused scopes', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()
  const worker = useTestWorker(t)

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers, paused_scopes restart identity cascade`.execute(t.db)
  })

  it("no claim takes a paused scope's tasks (other scopes' and unscoped ones still go); resumeScope lets them be claimed", async () => {
    await enqueue(t.db, [
      {kind: 'k', payload: 'a1', scope: 'a'},
      {kind: 'k', payload: 'b1', scope: 'b'},
      {kind: 'k', payload: 'none'},
      {kind: 'k', payload: 'a2', scope: 'a'},
    ])
    assert.equal(await pauseScope(t.db, 'a', 'test'), true)
    assert.equal(await pauseScope(t.db, 'a', 'again'), false, 'pausing twice is one pause')
    assert.deepEqual([...(await pausedScopes(t.db, ['a', 'b']))], ['a'])

    const first = await claimTasks(t.db, CLAIM_K)
    assert.deepEqual(first.map((c) => c.payload).sort(), ['b1', 'none'])
    assert.deepEqual(await claimTasks(t.db, {...CLAIM_K, scope: 'a'}), [], 'not even by a worker limited to that scope')

    assert.equal(await resumeScope(t.db, 'a'), true)
    assert.equal(await resumeScope(t.db, 'a'), false)
    const after = await claimTasks(t.db, CLAIM_K)
    assert.deepEqual(after.map((c) => c.payload).sort(), ['a1', 'a2'])
  })

  it('a handler that throws ReleaseError puts its task back at once, no attempt used, and a paused scope keeps it there', async () => {
    let calls = 0
    const registry = new TaskRegistry().register('k', async () => {
      calls++
      // The scope is paused while the task was claimed (as a run paused after a worker claimed ahead).
      await pauseScope(t.db, 'r', 'paused meanwhile')
      throw new ReleaseError('run is paused')
    })
    const [task] = await enqueue(t.db, {kind: 'k', payload: {}, scope: 'r', maxAttempts: 1})
    worker.start(registry)
    const released = await waitFor(
      'the release',
      async () =>
        (await sql<{event: string; reason: string}>`select event, reason from task_events where task_id = ${task.id} and event = 'released'`.execute(t.db))
          .rows[0],
    )
    assert.match(released.reason, /run is paused/)
    const row = await t.db.selectFrom('tasks').selectAll().where('id', '=', task.id).executeTakeFirstOrThrow()
    assert.equal(row.status, 'queued')
    assert.equal(row.attempts, 0, 'a release uses no attempt (max_attempts is 1: a failure would have ended it)')
    // The worker polls on; the paused scope keeps the task from it.
    await new Promise((r) => setTimeout(r, 1500))
    assert.equal(calls, 1)
    assert.equal((await t.db.selectFrom('tasks').select('status').where('id', '=', task.id).executeTakeFirstOrThrow()).status, 'queued')
  })
})
