import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {advanceRun} from '../../src/pipeline/advance.js'
import {DROP, dropsByReason} from '../../src/pipeline/drops.js'
import {runProgress} from '../../src/pipeline/run-views.js'
import {acceptRun, createRun} from '../../src/pipeline/runs.js'
import {useFreshDatabase} from '../helpers/db.js'
import {rvx} from '../helpers/cli.js'

/** Every company that leaves the running names why, and runs show and the decision note count them. */
describe('pipeline: every drop has a reason', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  /** A run in its contacts stage, discovery exhausted, with the given companies (contacts by email status). */
  async function arrange(
    quantity: number,
    companies: Array<{
      status: 'selected' | 'qualified' | 'disqualified'
      score?: number
      emails?: Array<'valid_domain' | 'no_mx' | 'invalid'>
      by?: string[]
      verdicts?: object
    }>,
  ): Promise<number> {
    const run = await createRun(t.db, {criteria: {state: 'TX', units_min: 50}, size: {quantity, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    await sql`update tasks set status = 'completed' where scope = ${`run:${run.id}`}`.execute(t.db)
    await sql`update runs set stage = 'contacts', options = options || '{"discoveryExhausted": true}' where id = ${run.id}`.execute(t.db)
    for (const [i, c] of companies.entries()) {
      const {id} = await t.db
        .insertInto('companies')
        .values({
          run_id: run.id,
          domain: `c${i}.example`,
          name: `Company ${i}`,
          status: c.status,
          icp_score: c.score ?? 50,
          reasons: '[]',
          sources: '[]',
          discovered_by: 'simulated',
          disqualified_by: c.by ?? [],
          verdicts: JSON.stringify(c.verdicts ?? {}),
        })
        .returning('id')
        .executeTakeFirstOrThrow()
      for (const [j, status] of (c.emails ?? []).entries())
        await t.db
          .insertInto('contacts')
          .values({run_id: run.id, company_id: id, full_name: `Person ${i}-${j}`, email: `p${j}@c${i}.example`, email_status: status, sources: '[]'})
          .execute()
    }

    return run.id
  }

  it('a selected company without a contact whose email takes mail is dropped for it; the decision note names the main reason with its count', async () => {
    const runId = await arrange(3, [
      {status: 'selected', emails: ['valid_domain']},
      {status: 'selected', emails: ['no_mx', 'invalid']},
      {status: 'selected', emails: ['no_mx']},
      {status: 'selected', emails: []},
      {status: 'disqualified', by: ['units'], verdicts: {units: {verdict: 'mismatch', evidence: []}}},
    ])
    assert.equal(await advanceRun(t.db, runId), 'needs_decision')

    const dropped = await t.db
      .selectFrom('companies')
      .select(['name', 'disqualified_by'])
      .where('run_id', '=', runId)
      .where('status', '=', 'disqualified')
      .orderBy('id')
      .execute()
    assert.deepEqual(
      dropped.map((c) => [c.name, c.disqualified_by]),
      [
        ['Company 1', [DROP.noDeliverableEmail]],
        ['Company 2', [DROP.noDeliverableEmail]],
        ['Company 3', [DROP.tooFewContacts]],
        ['Company 4', ['units']],
      ],
      'no drop without a reason',
    )
    const p = await runProgress(t.db, runId)
    assert.deepEqual(
      p.drops.map((d) => [d.reason, d.count]),
      [
        ['no contact with a deliverable email', 2],
        ['too few decision makers found', 1],
        ['units mismatch', 1],
      ],
    )
    assert.match(p.notes ?? '', /Most were dropped for no contact with a deliverable email \(2 of 4 dropped\)\.$/)

    const show = await rvx(['runs', 'show', String(runId)], {env: {DATABASE_URL: t.url}})
    assert.match(show.stdout, /^dropped +no contact with a deliverable email 2, too few decision makers found 1, units mismatch 1$/m)
  })

  it('qualified companies a finished run did not select count as having lost their place; an unknown verdict is said as unknown', async () => {
    const runId = await arrange(1, [
      {status: 'selected', score: 90, emails: ['valid_domain']},
      {status: 'qualified', score: 60},
      {status: 'qualified', score: 50},
      {status: 'disqualified', by: ['state', 'units'], verdicts: {state: {verdict: 'unknown'}, units: {verdict: 'mismatch'}}},
    ])
    assert.deepEqual(await dropsByReason(t.db, runId), [
      {key: 'state', verdict: 'unknown', reason: 'state unknown', count: 1},
      {key: 'units', verdict: 'mismatch', reason: 'units mismatch', count: 1},
    ])
    await sql`update runs set status = 'needs_decision' where id = ${runId}`.execute(t.db)
    await acceptRun(t.db, runId)
    assert.deepEqual(
      (await dropsByReason(t.db, runId)).map((d) => [d.reason, d.count]),
      [
        ['lost its place to a better-scoring company', 2],
        ['state unknown', 1],
        ['units mismatch', 1],
      ],
    )
  })
})
