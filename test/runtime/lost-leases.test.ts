import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {cancelTasks, claimTasks, enqueue} from '../../src/runtime/index.js'
import {whyLeasesLost} from '../../src/runtime/lease.js'
import {retryTasks} from '../../src/runtime/scopes.js'
import {useFreshDatabase} from '../helpers/db.js'
import {CLAIM_K, useTestWorker} from '../helpers/runtime.js'

/**
 * Why a worker lost a lease decides what it says: a cancel is a debug line, a
 * fence a warning. It is asked about one holding (task and epoch), which may
 * be long gone by the time the worker asks: the task reopened and running again.
 */
describe('runtime: why a lease was lost', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()
  useTestWorker(t)

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
  })

  it('a holding canceled and then reopened and claimed again is still a cancel, not a fence', async () => {
    const [task] = await enqueue(t.db, {kind: 'k', payload: {}, scope: 's'})
    const [first] = await claimTasks(t.db, CLAIM_K)
    assert.equal(await cancelTasks(t.db, {ids: [task.id], statuses: ['running']}, 'run 1 met its target'), 1)
    assert.equal(await retryTasks(t.db, {scope: 's', statuses: ['canceled']}, 'reopened'), 1)
    const [second] = await claimTasks(t.db, CLAIM_K)
    assert.ok(second.epoch > first.epoch, 'claimed again, at a new epoch')

    const why = await whyLeasesLost(t.db, [{taskId: task.id, epoch: first.epoch, workerId: 'w'}])
    assert.deepEqual(why.get(task.id), {why: 'canceled', reason: 'run 1 met its target'})
  })

  it('a holding no one canceled or settled, of a task running at a later epoch, is a fence', async () => {
    const [task] = await enqueue(t.db, {kind: 'k', payload: {}, scope: 's'})
    const [held] = await claimTasks(t.db, CLAIM_K)
    const why = await whyLeasesLost(t.db, [{taskId: task.id, epoch: held.epoch - 1, workerId: 'w'}])
    assert.deepEqual(why.get(task.id), {why: 'fenced'})
  })
})
