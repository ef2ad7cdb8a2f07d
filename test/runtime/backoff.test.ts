import assert from 'node:assert/strict'
import {getEventListeners} from 'node:events'

import {backoffMs, sleep} from '../../src/runtime/backoff.js'

/** The one backoff function and its sleep: pure arithmetic and a timer, checked without a clock. */
describe('runtime: backoff and sleep', () => {
  const policy = {baseMs: 1000, maxMs: 10_000, jitter: 0.5}

  it('doubles from the base, is capped, and spreads by the jitter on both sides of the raw delay', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoffMs(n, {...policy, jitter: 0})),
      [1000, 2000, 4000, 8000, 10_000],
    )
    // random() = 0, 0.5, 1: the low end, the middle and the high end of raw +/- raw x jitter.
    assert.equal(
      backoffMs(2, policy, () => 0),
      1000,
    )
    assert.equal(
      backoffMs(2, policy, () => 0.5),
      2000,
    )
    assert.equal(
      backoffMs(2, policy, () => 1),
      3000,
    )
    assert.equal(
      backoffMs(2, policy, () => 0.25),
      1500,
    )
    assert.equal(backoffMs(0, {...policy, jitter: 0}), 1000, 'n below 1 is the base')
    assert.equal(
      backoffMs(1, {baseMs: 10, maxMs: 10, jitter: 2}, () => 0),
      0,
      'never negative',
    )
  })

  it('sleep resolves when its signal aborts (at once when already aborted) and leaves no listener behind; it needs no signal', async () => {
    await sleep(1)
    const aborted = new AbortController()
    aborted.abort()
    await sleep(3_600_000, aborted.signal)

    const later = new AbortController()
    const waiting = sleep(3_600_000, later.signal)
    assert.equal(getEventListeners(later.signal, 'abort').length, 1, 'the sleep listens for the abort')
    later.abort()
    await waiting

    const quiet = new AbortController()
    await sleep(1, quiet.signal)
    assert.equal(getEventListeners(quiet.signal, 'abort').length, 0, 'a sleep that ran out removes its listener')
  })
})
