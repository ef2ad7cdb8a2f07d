import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {runsInProgress, runsOverview} from '../../src/pipeline/run-views.js'
import {createRun} from '../../src/pipeline/runs.js'
import {saveUsage} from '../../src/pipeline/usage.js'
import {useFreshDatabase} from '../helpers/db.js'

/** runsOverview: the numbers the dashboard's runs page and `rvx workers status` show per run, at each stage. */
describe('pipeline: runsOverview and runsInProgress', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  async function companies(runId: number, statuses: Array<'candidate' | 'qualified' | 'disqualified' | 'selected'>): Promise<number[]> {
    const ids: number[] = []
    for (const [i, status] of statuses.entries()) {
      const row = await t.db
        .insertInto('companies')
        .values({run_id: runId, domain: `c${runId}-${i}.example`, name: `C ${i}`, status, reasons: '[]', sources: '[]', discovered_by: 'test'})
        .returning('id')
        .executeTakeFirstOrThrow()
      ids.push(row.id)
    }

    return ids
  }

  it('reports how far each stage has come, the counts and the cost, by status or id', async () => {
    const size = {quantity: 5, contactsMin: 1, contactsMax: 3}
    const discovering = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
    await companies(discovering.id, ['candidate', 'candidate', 'candidate', 'candidate'])

    const researching = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
    await companies(researching.id, ['qualified', 'qualified', 'disqualified', 'candidate'])
    await t.db.updateTable('runs').set({stage: 'research'}).where('id', '=', researching.id).execute()

    const contacting = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
    const [withContact] = await companies(contacting.id, ['selected', 'selected', 'disqualified'])
    await t.db.insertInto('contacts').values({run_id: contacting.id, company_id: withContact, full_name: 'Ann Lee', sources: '[]'}).execute()
    await t.db.updateTable('runs').set({stage: 'contacts'}).where('id', '=', contacting.id).execute()
    await saveUsage(t.db, [
      {
        runId: contacting.id,
        taskId: 1,
        provider: 'p',
        model: 'm',
        inputTokens: 1,
        outputTokens: 1,
        cachedTokens: 0,
        latencyMs: 1,
        costUsd: 0.25,
        outcome: 'ok',
      },
      {runId: contacting.id, taskId: 2, provider: 'p', model: 'm', inputTokens: 1, outputTokens: 1, cachedTokens: 0, latencyMs: 1, costUsd: 0.5, outcome: 'ok'},
    ])

    const finished = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
    await companies(finished.id, ['selected'])
    // Started an hour ago, done in ten minutes.
    await sql`update runs set status = 'completed', stage = 'done', created_at = now() - interval '1 hour', finished_at = now() - interval '50 minutes'
      where id = ${finished.id}`.execute(t.db)

    const all = await runsOverview(t.db, {limit: 10})
    assert.deepEqual(
      all.map((r) => r.id),
      [finished.id, contacting.id, researching.id, discovering.id],
      'newest first',
    )
    const byId = new Map(all.map((r) => [r.id, r]))
    // Discovery against quantity x oversample (5 x 2), research against what was found, contacts against the quantity.
    assert.deepEqual(byId.get(discovering.id)!.percent, {discovery: 40, research: 0, contacts: 0})
    assert.deepEqual(byId.get(researching.id)!.percent, {discovery: 100, research: 75, contacts: 0})
    assert.deepEqual(byId.get(contacting.id)!.percent, {discovery: 100, research: 100, contacts: 20})
    assert.deepEqual(byId.get(finished.id)!.percent, {discovery: 100, research: 100, contacts: 100})
    // None selected yet: it would deliver its best qualified (up to its quantity), as its export would.
    assert.deepEqual(byId.get(researching.id)!.companies, {candidate: 1, qualified: 2, disqualified: 1, selected: 0, total: 4, delivered: 2})
    assert.equal(byId.get(contacting.id)!.contacts, 1)
    assert.equal(byId.get(contacting.id)!.costUsd, 0.75)
    assert.equal(byId.get(discovering.id)!.costUsd, 0)
    assert.equal(Math.round(byId.get(finished.id)!.elapsedS), 600, 'a finished run stops its clock')
    assert.equal(Math.round(byId.get(finished.id)!.ageS / 60), 60)

    assert.deepEqual(
      (await runsOverview(t.db, {status: 'completed', limit: 10})).map((r) => r.id),
      [finished.id],
    )
    assert.deepEqual(
      (await runsOverview(t.db, {id: researching.id, limit: 1})).map((r) => r.id),
      [researching.id],
    )
    assert.deepEqual(
      (await runsInProgress(t.db)).map((r) => [r.id, r.stage, r.percent.contacts]),
      [
        [discovering.id, 'discovery', 0],
        [researching.id, 'research', 0],
        [contacting.id, 'contacts', 20],
      ],
      'running runs only, oldest first',
    )
  })
})
