import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {serverDelayMs} from '../../src/runtime/backoff.js'
import {classifyError, DEFAULT_CONFIG, enqueue, SnoozeError, TaskRegistry, Worker, type RuntimeConfig} from '../../src/runtime/index.js'
import {useFreshDatabase} from '../helpers/db.js'
import {waitFor} from '../helpers/processes.js'

/**
 * Rate limits are the server's word, and a server can be wrong or hostile:
 * `retry-after: 0` must not make a worker hammer it, a huge value must not park
 * a task for years, and a task rate limited over and over fails with a message
 * a person can act on instead of snoozing forever.
 */
const QUICK: Partial<RuntimeConfig> = {heartbeatIntervalMs: 300, deadAfterMs: 3000, leaseMs: 1500, sweepIntervalMs: 250, pollIntervalMs: 200}

describe('runtime: snoozes are bounded (Retry-After floor, ceiling, backoff, limit)', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()
  let worker: Worker | undefined
  let running: Promise<unknown> | undefined

  beforeEach(async () => {
    await sql`truncate tasks, task_events, workers restart identity cascade`.execute(t.db)
  })

  afterEach(async () => {
    worker?.stop({force: true})
    await running
    worker = undefined
  })

  function start(registry: TaskRegistry, config: Partial<RuntimeConfig> = {}): void {
    worker = new Worker({databaseUrl: t.url, registry, concurrency: 2, config: {...QUICK, ...config}})
    running = worker.start()
  }

  /** The delay the first snooze of task `id` was given (run_after minus the snooze time), in ms. */
  async function firstSnoozeDelayMs(id: number): Promise<number> {
    const row = await waitFor('a snooze', async () => {
      const {rows} = await sql<{delay_ms: number}>`
        select extract(epoch from t.run_after - e.at) * 1000 as delay_ms
        from tasks t join task_events e on e.task_id = t.id and e.event = 'snoozed'
        where t.id = ${id} and t.status = 'queued'
        order by e.id limit 1`.execute(t.db)
      return rows[0]
    })
    return Number(row.delay_ms)
  }

  it('retry-after: 0 is not taken at face value: the task waits at least the floor', async () => {
    let calls = 0
    start(
      new TaskRegistry().register('zero', async () => {
        calls++
        throw Object.assign(new Error('slow down'), {status: 429, headers: {'retry-after': '0'}})
      }),
    )
    const [{id}] = await enqueue(t.db, {kind: 'zero'})
    const delay = await firstSnoozeDelayMs(id)
    assert.ok(delay >= DEFAULT_CONFIG.snooze.minMs - 50, `snoozed ${delay} ms, at least the ${DEFAULT_CONFIG.snooze.minMs} ms floor`)
    // In the first half second nothing retried it (a zero delay would have been claimed again at once).
    await new Promise((r) => setTimeout(r, 500))
    assert.equal(calls, 1)
  })

  it('a Retry-After of years is held to the ceiling', async () => {
    start(
      new TaskRegistry().register('forever', async () => {
        throw Object.assign(new Error('come back much later'), {status: 429, headers: {'retry-after': '99999999999'}})
      }),
    )
    const [{id}] = await enqueue(t.db, {kind: 'forever'})
    const delay = await firstSnoozeDelayMs(id)
    assert.ok(delay <= DEFAULT_CONFIG.snooze.maxMs + 1000, `snoozed ${Math.round(delay / 1000)} s, at most the ${DEFAULT_CONFIG.snooze.maxMs / 1000} s ceiling`)
    assert.ok(delay >= DEFAULT_CONFIG.snooze.maxMs - 1000, 'a long wait asked for is still honoured up to the ceiling')
  })

  it('a task rate limited more than maxSnoozes times fails, saying what to do, with no attempt spent on the snoozes', async () => {
    let calls = 0
    start(
      new TaskRegistry().register('always-limited', async () => {
        calls++
        throw new SnoozeError('HTTP 429', undefined)
      }),
      {snooze: {minMs: 10, maxMs: 100, backoff: {baseMs: 10, maxMs: 40, jitter: 0}, maxSnoozes: 3}},
    )
    const [{id}] = await enqueue(t.db, {kind: 'always-limited'})
    const row = await waitFor(
      'the task to fail',
      async () => {
        const r = await t.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
        return r.status === 'failed' ? r : undefined
      },
      20_000,
    )
    assert.equal(calls, 4, 'three snoozes, then the fourth rate limit fails it')
    assert.equal(row.snoozes, 3)
    assert.match(row.last_error ?? '', /rate limited 4 times .*lower its concurrency or raise the quota/)
  })

  it('without a usable Retry-After, the delay backs off by the snooze count, within the bounds', () => {
    const policy = {minMs: 1000, maxMs: 60_000, backoff: {baseMs: 2000, maxMs: 30_000, jitter: 0}}
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => serverDelayMs(undefined, n, policy)),
      [2000, 4000, 8000, 16_000, 30_000, 30_000],
    )
    assert.equal(serverDelayMs(0, 1, policy), 2000)
    assert.equal(serverDelayMs(-5, 1, policy), 2000)
    assert.equal(serverDelayMs(Number.NaN, 1, policy), 2000)
    assert.equal(serverDelayMs(10, 1, policy), 1000)
    assert.equal(serverDelayMs(1e15, 1, policy), 60_000)
    assert.equal(serverDelayMs(5000, 1, policy), 5000)
  })

  it('a 429 without Retry-After is a snooze with no server delay (the policy decides), not a fixed 30 s', () => {
    assert.deepEqual(classifyError(Object.assign(new Error('x'), {status: 429, headers: {}})), {type: 'snooze', retryAfterMs: undefined})
  })
})
