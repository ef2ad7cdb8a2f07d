import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {DEFAULT_SIMULATION, SimulatedProvider} from '../../src/agents/simulated.js'
import {driveRun} from '../../src/pipeline/orchestrator.js'
import type {EmailStatus} from '../../src/pipeline/provider.js'
import {runOptions, runScope} from '../../src/pipeline/run-options.js'
import {createRun} from '../../src/pipeline/runs.js'
import {contacts, counts, usableContact} from '../../src/pipeline/stages/contacts.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FAST} from '../helpers/runtime.js'

/** Every value contacts.email_status can hold. */
const STATUSES: Array<EmailStatus | null> = ['valid_domain', 'unchecked', 'no_mx', 'invalid', null]

describe('pipeline: the usable-contact rule and contact attempts, defined once', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  it('the stage predicate and the SQL agree on every email status: a bad address (no MX, invalid) does not count', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    const company = await t.db
      .insertInto('companies')
      .values({run_id: run.id, domain: 'acme.example', name: 'Acme', reasons: '[]', sources: '[]', discovered_by: 'simulated'})
      .returning('id')
      .executeTakeFirstOrThrow()
    await t.db
      .insertInto('contacts')
      .values(STATUSES.map((s, i) => ({run_id: run.id, company_id: company.id, full_name: `Person ${i}`, email_status: s, sources: '[]'})))
      .execute()
    const {rows} = await sql<{email_status: EmailStatus | null; usable: boolean}>`
      select k.email_status, ${usableContact('k')} as usable from contacts k where k.run_id = ${run.id}`.execute(t.db)
    const inSql = new Map(rows.map((r) => [r.email_status, r.usable]))
    const inStage = new Map(STATUSES.map((s) => [s, counts({emailStatus: s})]))
    assert.deepEqual(inSql, inStage)
    assert.deepEqual(
      STATUSES.filter((s) => inStage.get(s)),
      ['valid_domain', 'unchecked', null],
    )
  })

  it("a contact task gets its attempts from the run's contactAttempts, which the contacts stage declares", async () => {
    const run = await createRun(t.db, {criteria: {pms: 'Buildium', state: 'TX'}, size: {quantity: 2, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    const sim = new SimulatedProvider(DEFAULT_SIMULATION)
    const driven = await driveRun({
      db: t.db,
      databaseUrl: t.url,
      runId: run.id,
      providerFor: () => sim,
      concurrency: 1,
      signal: new AbortController().signal,
      config: {...FAST, maxClaimAhead: 0},
    })
    assert.equal(driven.status, 'completed')
    const tasks = await t.db.selectFrom('tasks').select('max_attempts').where('scope', '=', runScope(run.id)).where('kind', '=', contacts.kind).execute()
    assert.ok(tasks.length >= 2)
    assert.equal(runOptions(run).contactAttempts, contacts.maxAttempts)
    assert.deepEqual(new Set(tasks.map((k) => k.max_attempts)), new Set([contacts.maxAttempts]))
  })
})
