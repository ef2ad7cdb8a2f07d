import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {Monitor} from '../../src/monitor/monitor.js'
import type {Logger} from '../../src/runtime/logger.js'
import {useFreshDatabase} from '../helpers/db.js'
import {registeredWorker} from '../helpers/runtime.js'

/** The monitor's fleet summary line: processes counted once each, logged when it changes. */
describe('monitor: the fleet line', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  function monitor() {
    const lines: string[] = []
    const log: Logger = {debug() {}, info: (_o, msg) => lines.push(msg ?? ''), warn() {}, error() {}}
    const m = new Monitor({
      db: t.db,
      databaseUrl: t.url,
      name: 'fleet-line-test',
      intervalMs: 60_000,
      deadAfterMs: 15_000,
      stuckAfterMs: 600_000,
      targets: {channels: []},
      log,
    })
    return {m, fleetLines: () => lines.filter((l) => l.startsWith('fleet:'))}
  }

  it('counts worker processes once each, whatever their stages, and logs the line again only when it changes', async () => {
    const workers = [
      await registeredWorker(t.db, t.url, 'w-all-1', ['lead-list', 'company', 'contact']),
      await registeredWorker(t.db, t.url, 'w-all-2', ['lead-list', 'company', 'contact']),
    ]
    const {m, fleetLines} = monitor()
    try {
      await m.tick()
      await m.tick()
      await m.tick()
      assert.deepEqual(fleetLines(), [
        'fleet: 2 live (0 busy, 2 idle, 0 draining), 0 dead; queue: 0 queued, 0 running, 0 failed; runs: 0 running, 0 need a decision',
      ])

      // One of them starts a task: the line changes, and is logged.
      await sql`insert into tasks (kind, status, lease_owner, lease_expires_at, started_at) values ('company', 'running', 'w-all-1', now() + interval '1 minute', now())`.execute(
        t.db,
      )
      await m.tick()
      await m.tick()
      assert.equal(fleetLines().length, 2, fleetLines().join('\n'))
      assert.match(fleetLines()[1], /^fleet: 2 live \(1 busy, 1 idle, 0 draining\), 0 dead; queue: 0 queued, 1 running/)
    } finally {
      // An aborted run only releases the monitor's lock.
      await m.run({signal: AbortSignal.abort()})
      for (const w of workers) await w.close()
    }
  })
})
