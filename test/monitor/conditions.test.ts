import assert from 'node:assert/strict'

import {currentConditions} from '../../src/monitor/conditions.js'
import {failRun} from '../../src/pipeline/runs.js'
import {useFreshDatabase} from '../helpers/db.js'

describe('monitor: conditions', function () {
  this.timeout(30_000)
  const t = useFreshDatabase()

  it('a run that failed for a reason no retry fixes is a critical alert with the cause, while it is recent', async () => {
    const run = await t.db
      .insertInto('runs')
      .values({criteria: '{}', quantity: 2, contacts_min: 1, contacts_max: 3, provider: 'openai', options: '{}'})
      .returning('id')
      .executeTakeFirstOrThrow()
    await t.db.transaction().execute((trx) => failRun(trx, run.id, 'the model API refused the credentials (HTTP 401): check OPENAI_API_KEY'))

    const conditions = await currentConditions(t.db, {stuckAfterMs: 600_000, lookbackMs: 3_600_000, deadAfterMs: 15_000})
    const failed = conditions.find((c) => c.key === `run:${run.id}:failed`)
    assert.ok(failed, 'a run_failed condition')
    assert.equal(failed.kind, 'run_failed')
    assert.equal(failed.severity, 'critical')
    assert.match(failed.subject, new RegExp(`run ${run.id} failed: the model API refused the credentials .* rvx runs resume ${run.id}`))

    // Older than the look-back: history, not news.
    await t.db
      .updateTable('runs')
      .set({finished_at: new Date(Date.now() - 7_200_000)})
      .where('id', '=', run.id)
      .execute()
    const later = await currentConditions(t.db, {stuckAfterMs: 600_000, lookbackMs: 3_600_000, deadAfterMs: 15_000})
    assert.equal(
      later.find((c) => c.key === `run:${run.id}:failed`),
      undefined,
    )
  })
})
