import assert from 'node:assert/strict'

import {formatAge, formatDuration, MAX_TIMER_MS, parseDuration} from '../../src/shared/duration.js'

describe('shared: durations', () => {
  it('reads ms, s, m, h, d and plain seconds', () => {
    assert.deepEqual(
      ['500ms', '90s', '30m', '2h', '7d', '1.5', '0s'].map((t) => parseDuration(t)),
      [500, 90_000, 1_800_000, 7_200_000, 604_800_000, 1500, 0],
    )
  })

  it('refuses a value outside its bounds, saying the bound; by default no longer than a timer can wait', () => {
    assert.throws(() => parseDuration('0', 'timeout', {min: 1000}), {message: 'timeout must be at least 1s (got 0)'})
    assert.throws(() => parseDuration('100ms', 'interval', {min: 500}), {message: 'interval must be at least 500ms (got 100ms)'})
    assert.throws(() => parseDuration('999999999d', 'older_than', {max: 3650 * 86_400_000}), {message: 'older_than must be at most 3650d (got 999999999d)'})
    assert.throws(() => parseDuration('25d', 'interval'), {message: 'interval must be at most 24d (got 25d)'})
    assert.ok(MAX_TIMER_MS <= 2 ** 31 - 1)
  })

  it('formats a bound so parseDuration reads it back', () => {
    for (const ms of [500, 1000, 90_000, 3_600_000, MAX_TIMER_MS]) assert.equal(parseDuration(formatDuration(ms)), ms)
  })

  it('says an age in its two largest units: 45s, 4m 55s, 3h 5m, 2d 4h', () => {
    assert.deepEqual([0, 44.6, 60, 295, 3600, 11_100, 86_400 * 2 + 3600 * 4 + 59].map(formatAge), ['0s', '45s', '1m', '4m 55s', '1h', '3h 5m', '2d 4h'])
  })
})
