import assert from 'node:assert/strict'
import {parse} from 'csv-parse/sync'

import {describeContacts, describeSpend} from '../../src/cli/progress.js'
import type {CompanyStatus} from '../../src/db/schema.js'
import {renderRun} from '../../src/pipeline/export.js'
import type {EmailStatus} from '../../src/pipeline/provider.js'
import {listRunsWithSpend} from '../../src/pipeline/run-listing.js'
import {runProgress, runsOverview} from '../../src/pipeline/run-views.js'
import {createRun} from '../../src/pipeline/runs.js'
import {saveUsage} from '../../src/pipeline/usage.js'
import {useFreshDatabase} from '../helpers/db.js'

/** One set of numbers: runs show, runs list, the summary and the dashboard count what the export holds. */
describe('pipeline: a run counts the contacts and leads it delivers', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()
  const size = {quantity: 2, contactsMin: 1, contactsMax: 3}

  async function company(runId: number, domain: string, status: CompanyStatus, score: number, people: Array<EmailStatus | null> = []) {
    const {id} = await t.db
      .insertInto('companies')
      .values({run_id: runId, domain, name: domain, status, icp_score: score, reasons: '[]', sources: '[]', discovered_by: 'test'})
      .returning('id')
      .executeTakeFirstOrThrow()
    for (const [i, email_status] of people.entries())
      await t.db
        .insertInto('contacts')
        .values({run_id: runId, company_id: id, full_name: `${domain} ${i}`, email_status, sources: '[]'})
        .execute()
    return id
  }

  async function spend(runId: number, costUsd: number) {
    await saveUsage(t.db, [
      {runId, taskId: 1, provider: 'p', model: 'm', inputTokens: 1, outputTokens: 1, cachedTokens: 0, latencyMs: 1, costUsd, outcome: 'ok'},
    ])
  }

  /** What every read model says about the run, next to the export's rows. */
  async function views(runId: number) {
    const rendered = await renderRun(t.db, runId, 'csv')
    const progress = await runProgress(t.db, runId)
    const [summary] = await runsOverview(t.db, {id: runId, limit: 1})
    const listed = (await listRunsWithSpend(t.db, {limit: 100})).find((r) => r.id === runId)!
    return {
      csv: {companies: parse(rendered.files.companies, {columns: true}).length, contacts: parse(rendered.files.contacts, {columns: true}).length},
      progress: {delivered: progress.companies.delivered, contacts: progress.contacts, dropped: progress.contactsDropped, perLead: progress.costPerLead},
      summary: {delivered: summary.companies.delivered, contacts: summary.contacts, dropped: summary.contactsDropped, perLead: summary.costPerLead},
      listed: {
        delivered: listed.counts.companies.delivered,
        contacts: listed.counts.contacts.delivered,
        dropped: listed.counts.contacts.dropped,
        perLead: listed.costPerLead,
      },
      progressLine: {spend: describeSpend(progress), contacts: describeContacts(progress)},
    }
  }

  it('contacts counted are the rows of contacts.csv; those of a company dropped later are counted apart; cost per lead divides by the companies delivered', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'openai'})
    await company(run.id, 'a.example', 'selected', 90, ['valid_domain', 'invalid'])
    await company(run.id, 'b.example', 'selected', 80, [null])
    // Selected, its contacts found, then dropped (too few usable ones): neither it nor its contacts are delivered.
    await company(run.id, 'dropped.example', 'disqualified', 85, ['no_mx', 'no_mx'])
    await company(run.id, 'spare.example', 'qualified', 70)
    await company(run.id, 'new.example', 'candidate', 0)
    await spend(run.id, 0.6)

    const v = await views(run.id)
    assert.deepEqual(v.csv, {companies: 2, contacts: 3})
    const expected = {delivered: 2, contacts: 3, dropped: 2, perLead: 0.3}
    assert.deepEqual(v.progress, expected)
    assert.deepEqual(v.summary, expected)
    assert.deepEqual(v.listed, expected)
    assert.equal(v.progressLine.spend, '$0.6000 for 2 leads ($0.3000 per lead)')
    assert.equal(v.progressLine.contacts, '3 (2 more found for companies dropped later)')
  })

  it('a run that stopped with none selected delivers its best qualified up to its quantity, and counts those', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'openai'})
    await company(run.id, 'best.example', 'qualified', 95, ['valid_domain'])
    await company(run.id, 'second.example', 'qualified', 90)
    await company(run.id, 'third.example', 'qualified', 60, ['valid_domain', 'unchecked'])
    await spend(run.id, 1)

    const v = await views(run.id)
    assert.deepEqual(v.csv, {companies: 2, contacts: 1})
    const expected = {delivered: 2, contacts: 1, dropped: 2, perLead: 0.5}
    assert.deepEqual(v.progress, expected)
    assert.deepEqual(v.summary, expected)
    assert.deepEqual(v.listed, expected)
  })

  it("a simulated run's cost says it was simulated; one with nothing delivered has no cost per lead", async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
    await company(run.id, 'out.example', 'disqualified', 10)
    await spend(run.id, 0.25)
    const v = await views(run.id)
    assert.deepEqual(v.progress, {delivered: 0, contacts: 0, dropped: 0, perLead: null})
    assert.equal(v.progressLine.spend, '$0.2500 (simulated) for 0 leads')
    assert.equal(v.progressLine.contacts, '0')
    assert.equal((await listRunsWithSpend(t.db, {limit: 100})).find((r) => r.id === run.id)!.simulated, true)
  })
})
