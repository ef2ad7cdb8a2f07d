import assert from 'node:assert/strict'

import {InFlightTasks} from '../../src/runtime/inflight.js'
import type {ClaimedTask} from '../../src/runtime/lease.js'

const task = (id: number, epoch: number): ClaimedTask => ({
  id,
  kind: 'company',
  payload: {},
  priority: 0,
  attempts: 0,
  maxAttempts: 3,
  crashCount: 0,
  snoozes: 0,
  epoch,
  scope: null,
  createdAt: new Date(),
})

/**
 * A task canceled here can be reopened and claimed again by the same worker
 * while its first handler winds down: two holdings of one task id. Each is
 * counted once, and the old one's end leaves the new one held.
 */
describe('runtime: the tasks a worker holds', () => {
  it('a reopened task claimed again stays held (and its slot counted) when its canceled holding ends', () => {
    const counts = {fenced: 0, canceled: 0}
    const inflight = new InFlightTasks({fenced: () => counts.fenced++, canceled: () => counts.canceled++})
    const first = inflight.add(task(7, 1), 'w', true)
    inflight.dropLost(new Map(), new Set([7]))
    assert.equal(inflight.canceled(first), true)
    assert.equal(inflight.canceled(first), false, 'the heartbeat and the refused settlement both noticed: counted once')

    const second = inflight.add(task(7, 2), 'w', true)
    inflight.delete(first)
    assert.deepEqual(inflight.held(), [{id: 7, epoch: 2}], 'the new holding is still renewed by heartbeats')
    assert.equal(inflight.running, 1)
    assert.equal(inflight.canceled(second), true, 'a second holding canceled is a second cancellation')
    inflight.delete(second)
    assert.deepEqual({size: inflight.size, running: inflight.running}, {size: 0, running: 0})
    assert.deepEqual(counts, {fenced: 0, canceled: 2})
  })
})
