import assert from 'node:assert/strict'

import {Lane} from '../../src/runtime/lane.js'

/** A function that runs until `finish` is called, recording when it starts and ends. */
function held(log: string[], name: string) {
  let finish!: () => void
  const done = new Promise<void>((resolve) => (finish = resolve))
  return {
    fn: async () => {
      log.push(`${name} start`)
      await done
      log.push(`${name} end`)
      return name
    },
    finish: () => finish(),
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve))

describe('runtime: lane (one statement at a time)', () => {
  it('runs one at a time, first come first served', async () => {
    const lane = new Lane()
    const log: string[] = []
    const [a, b, c] = ['a', 'b', 'c'].map((n) => held(log, n))
    const runs = [lane.run(a.fn), lane.run(b.fn), lane.run(c.fn)]
    await tick()
    assert.deepEqual(log, ['a start'])
    a.finish()
    await tick()
    assert.deepEqual(log, ['a start', 'a end', 'b start'])
    c.finish()
    b.finish()
    assert.deepEqual(await Promise.all(runs), ['a', 'b', 'c'])
    assert.deepEqual(log, ['a start', 'a end', 'b start', 'b end', 'c start', 'c end'])
    assert.equal(lane.busy, false)
  })

  it('tryRun takes a free lane and gives up at once on a busy one (no waiting, so no deadlock across lanes)', async () => {
    const lane = new Lane()
    const log: string[] = []
    const a = held(log, 'a')
    const first = lane.tryRun(a.fn)
    assert.ok(first, 'a free lane is taken')
    assert.equal(lane.busy, true)
    assert.equal(
      lane.tryRun(async () => 'never'),
      undefined,
    )
    const waiting = lane.run(async () => 'next')
    a.finish()
    assert.equal(await first, 'a')
    assert.equal(await waiting, 'next')
    assert.ok(lane.tryRun(async () => 'free again'))
  })

  it('a failure frees the lane for the next', async () => {
    const lane = new Lane()
    const failing = lane.run(async () => {
      throw new Error('boom')
    })
    const next = lane.run(async () => 'ran')
    await assert.rejects(failing, /boom/)
    assert.equal(await next, 'ran')
    assert.equal(lane.busy, false)
  })
})
