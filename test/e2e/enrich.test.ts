import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'

import {SimulatedWeb} from '../../src/agents/simulated/web.js'
import {worldFor} from '../../src/agents/simulated/world.js'
import {COMPANY_COLUMNS} from '../../src/pipeline/export.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

const CRITERIA = {pms: 'Buildium', state: 'TX'}
const ENRICH_COLUMNS = ['phone', 'phone_evidence', 'linkedin_company', 'linkedin_company_evidence']

/**
 * The enrich stage, opted into on the command line: each delivered company
 * gets a phone number and a LinkedIn company page that rvx checked, each with
 * the page and quote that show it, or an explicit unknown with why.
 */
describe('e2e: rvx orchestrate --enrich (spawned processes)', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()
  let out: string

  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-enrich-'))
  })

  after(() => fs.rmSync(out, {recursive: true, force: true}))

  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})
  const readCsv = (file: string): Array<Record<string, string>> => parse(fs.readFileSync(file, 'utf8'), {columns: true, skip_empty_lines: true})
  /** The simulated world's web, as a person would read it (the same seed and claims discovery recorded). */
  const world = worldFor(1, CRITERIA)
  const web = new SimulatedWeb(1, (domain) => world.find((c) => c.domain === domain))
  const pageText = async (url: string) => (await web.fetchPage(url)).text

  it('delivers 10 companies, each with a verified phone and LinkedIn company page or an explicit unknown, with evidence', async () => {
    const res = await rvx(
      ['orchestrate', '--provider', 'simulated', '--enrich', '--criteria', JSON.stringify(CRITERIA), '--quantity', '10', '--output-dir', out, '--json'],
      {env: env()},
    )
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed')
    const companies = readCsv(result.export.files.companies)
    assert.equal(companies.length, 10)
    assert.deepEqual(Object.keys(companies[0]), [...COMPANY_COLUMNS, ...ENRICH_COLUMNS])

    let phones = 0
    let pages = 0
    for (const c of companies) {
      if (c.phone === 'unknown') assert.ok(c.phone_evidence.length > 0, `${c.domain}: an unknown phone says why`)
      else {
        phones++
        // The evidence is a page of the company's own site, and the quote is on it, with the number.
        const [, url, quote] = /^(\S+) "(.*)"$/.exec(c.phone_evidence) ?? []
        assert.ok(url && new URL(url).hostname === c.domain, `${c.domain}: phone evidence on its own site (${c.phone_evidence})`)
        assert.ok((await pageText(url)).includes(quote), `${c.domain}: "${quote}" is on ${url}`)
        assert.ok(quote.replace(/\D/g, '').endsWith(c.phone.replace(/\D/g, '').slice(-10)), `${c.domain}: the quote shows ${c.phone}`)
      }

      if (c.linkedin_company === 'unknown') assert.ok(c.linkedin_company_evidence.length > 0, `${c.domain}: an unknown LinkedIn page says why`)
      else {
        pages++
        assert.match(c.linkedin_company, /^https:\/\/linkedin\.example\/company\/[^/]+$/)
        assert.match(c.linkedin_company_evidence, /^https:\/\/\S+ ".+"$/)
      }
    }

    // The simulated model lies now and then (a number its site never shows, a person's profile): some are unknown, most not.
    assert.ok(phones >= 5 && phones < 10, `${phones} of 10 phones verified`)
    assert.ok(pages >= 5 && pages < 10, `${pages} of 10 LinkedIn pages verified`)
    assert.ok(
      companies.some((c) => /person's profile|a post/.test(c.linkedin_company_evidence)),
      'a profile or a post offered as the company page is refused',
    )

    // The JSON export carries each stage's fact whole; the run page shows the columns.
    const json = await rvx(['runs', 'export', String(result.runId), '--format', 'json', '--output-dir', out, '--json'], {env: env()})
    assert.equal(json.code, 0, json.stderr)
    const rows = JSON.parse(fs.readFileSync(JSON.parse(json.stdout).files.companies, 'utf8'))
    assert.ok(
      rows.every((r: {facts?: {enrich?: {value: {phone: unknown}}}}) => r.facts?.enrich?.value.phone),
      'every company has its enrich fact',
    )
  })

  it('a run without --enrich does no enrich work and exports no enrich columns; runs resume --enrich adds them', async () => {
    const res = await rvx(
      [
        'orchestrate',
        '--provider',
        'simulated',
        '--criteria',
        JSON.stringify(CRITERIA),
        '--quantity',
        '3',
        '--include-delivered',
        '--output-dir',
        out,
        '--json',
      ],
      {env: env()},
    )
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.deepEqual(Object.keys(readCsv(result.export.files.companies)[0]), [...COMPANY_COLUMNS])
    const enrichTasks = await t.db.selectFrom('tasks').select('id').where('scope', '=', `run:${result.runId}`).where('kind', '=', 'enrich').execute()
    assert.equal(enrichTasks.length, 0)

    // A completed run cannot be resumed; one stopped at a decision can, and then enriches what it selected.
    await t.db.updateTable('runs').set({status: 'needs_decision', stage: 'contacts'}).where('id', '=', result.runId).execute()
    const resumed = await rvx(['runs', 'resume', String(result.runId), '--enrich', '--output-dir', out, '--json'], {env: env()})
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.equal(JSON.parse(resumed.stdout).status, 'completed')
    const facts = await t.db.selectFrom('company_facts').select('company_id').where('run_id', '=', result.runId).where('stage', '=', 'enrich').execute()
    assert.equal(facts.length, 3, 'each selected company enriched once')
    const companies = readCsv(JSON.parse(resumed.stdout).export.files.companies)
    assert.deepEqual(Object.keys(companies[0]), [...COMPANY_COLUMNS, ...ENRICH_COLUMNS])
  })
})
