import assert from 'node:assert/strict'

import {createRun, resumeRun} from '../../src/pipeline/runs.js'
import {UsageError} from '../../src/shared/errors.js'
import {useFreshDatabase} from '../helpers/db.js'

describe('pipeline: resuming a run', () => {
  const t = useFreshDatabase()

  /** A run that needs a decision with `selected` companies already selected. */
  async function runWithSelected(selected: number): Promise<number> {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 10, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    await t.db.updateTable('runs').set({status: 'needs_decision'}).where('id', '=', run.id).execute()
    for (let i = 0; i < selected; i++) {
      await t.db
        .insertInto('companies')
        .values({
          run_id: run.id,
          domain: `c${i}.example`,
          name: `C${i}`,
          status: 'selected',
          icp_score: 80,
          sources: '[]',
          reasons: '[]',
          discovered_by: 'test',
        })
        .execute()
    }

    return run.id
  }

  it('refuses a quantity below what the run has already selected, naming the count, and changes nothing', async () => {
    const id = await runWithSelected(5)
    await assert.rejects(resumeRun(t.db, id, {quantity: 2}), (error: unknown) => {
      assert.ok(error instanceof UsageError)
      assert.equal(error.field, 'quantity')
      assert.equal(
        error.detail,
        `2 is below the 5 companies run ${id} has already selected: ask for 5 or more, or take the run as it is with rvx runs accept ${id}`,
      )
      return true
    })
    const run = await t.db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
    assert.equal(run.status, 'needs_decision')
    assert.equal(run.quantity, 10)
  })

  it('takes a quantity equal to or above what is selected', async () => {
    const id = await runWithSelected(5)
    const run = await resumeRun(t.db, id, {quantity: 5})
    assert.equal(run.status, 'running')
    assert.equal(run.quantity, 5)
  })
})
