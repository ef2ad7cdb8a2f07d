import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'

import {COMPANY_COLUMNS, CONTACT_COLUMNS, defaultExportDir, exportRun, neutralizeFormula, renderRun} from '../../src/pipeline/export.js'
import {createRun} from '../../src/pipeline/runs.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * What `rvx runs export` writes, from rows put in the database as the stages
 * leave them: which companies, in which order, which columns, and cells a
 * spreadsheet would run as formulas turned into text (the JSON keeps them).
 */
describe('pipeline: the export (CSV and JSON)', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()
  const researchedAt = new Date('2026-01-02T03:04:05.000Z')

  async function company(runId: number, c: {domain: string; name?: string; status: string; score: number; fromCache?: boolean; verdicts?: unknown}) {
    const row = await t.db
      .insertInto('companies')
      .values({
        run_id: runId,
        domain: c.domain,
        name: c.name ?? c.domain,
        website: `https://${c.domain}`,
        city: 'Austin',
        state: 'TX',
        pms: 'Buildium',
        units_estimate: 120,
        icp_fit: 'yes',
        icp_score: c.score,
        icp_tier: 'A',
        confidence: 'high',
        reasons: JSON.stringify(['uses Buildium', 'in Austin']),
        sources: JSON.stringify([`https://${c.domain}/`, `https://${c.domain}/about`]),
        discovered_by: 'model',
        researched_at: researchedAt,
        verdicts: JSON.stringify(c.verdicts ?? {}),
        checks: JSON.stringify({}),
        status: c.status as never,
        from_cache: c.fromCache ?? false,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    return row.id
  }

  async function contact(runId: number, companyId: number, fullName: string, tier: number, email: string | null = null) {
    await t.db
      .insertInto('contacts')
      .values({
        run_id: runId,
        company_id: companyId,
        full_name: fullName,
        title: 'Owner',
        tier,
        email,
        phone: null,
        linkedin_url: null,
        confidence: 'high',
        sources: JSON.stringify(['https://a.example/team', 'https://a.example/about']),
        email_status: email ? 'valid_domain' : null,
      })
      .execute()
  }

  const csv = (text: string) => parse(text, {columns: true}) as Array<Record<string, string>>

  it('exports the selected companies, best score first, with every column, and their contacts by tier', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 2, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    const low = await company(run.id, {domain: 'low.example', status: 'selected', score: 60, fromCache: true})
    const high = await company(run.id, {
      domain: 'high.example',
      status: 'selected',
      score: 90,
      verdicts: {
        pms: {
          verdict: 'match',
          by: 'check',
          evidence: [{url: 'https://high.example/portal'}, {url: 'https://high.example/portal'}, {url: 'https://high.example/pay'}],
        },
      },
    })
    await company(run.id, {domain: 'out.example', status: 'disqualified', score: 99})
    await company(run.id, {domain: 'spare.example', status: 'qualified', score: 95})
    await contact(run.id, high, 'Second Tier', 2)
    await contact(run.id, high, 'First Tier', 1, 'first@high.example')
    await contact(run.id, low, 'Low Owner', 1)

    const rendered = await renderRun(t.db, run.id)
    assert.deepEqual({companies: rendered.companies, contacts: rendered.contacts, status: rendered.status}, {companies: 2, contacts: 3, status: 'running'})
    assert.equal(rendered.files.companies.split('\n')[0], COMPANY_COLUMNS.join(','))
    assert.equal(rendered.files.contacts.split('\n')[0], CONTACT_COLUMNS.join(','))
    const companies = csv(rendered.files.companies)
    assert.deepEqual(
      companies.map((c) => c.domain),
      ['high.example', 'low.example'],
    )
    assert.deepEqual(companies[0], {
      ...companies[0],
      company_name: 'high.example',
      website: 'https://high.example',
      units_estimate: '120',
      icp_score: '90',
      reasons: 'uses Buildium; in Austin',
      sources: 'https://high.example/; https://high.example/about',
      researched_at: researchedAt.toISOString(),
      from_cache: 'false',
      pms_verdict: 'match',
      pms_evidence: 'https://high.example/portal; https://high.example/pay',
      state_verdict: '',
      state_evidence: '',
    })
    assert.equal(companies[1].from_cache, 'true')

    const contacts = csv(rendered.files.contacts)
    assert.deepEqual(
      contacts.map((k) => [k.company_name, k.company_domain, k.full_name, k.tier]),
      // Grouped by company (in the order the companies were found), by tier within one.
      [
        ['low.example', 'low.example', 'Low Owner', '1'],
        ['high.example', 'high.example', 'First Tier', '1'],
        ['high.example', 'high.example', 'Second Tier', '2'],
      ],
    )
    assert.equal(contacts[1].sources, 'https://a.example/team; https://a.example/about')
    assert.equal(contacts[1].email_status, 'valid_domain')
    assert.equal(contacts[1].from_cache, 'false')

    const json = await renderRun(t.db, run.id, 'json')
    assert.ok(json.files.companies.endsWith('}\n]\n') && json.files.contacts.endsWith('}\n]\n'))
    const parsed = JSON.parse(json.files.companies) as Array<Record<string, unknown>>
    assert.deepEqual(
      parsed.map((c) => [c.domain, c.from_cache, c.researched_at]),
      [
        ['high.example', false, researchedAt.toISOString()],
        ['low.example', true, researchedAt.toISOString()],
      ],
    )
    assert.equal((parsed[0].verdicts as {pms: {by: string}}).pms.by, 'check', 'the JSON keeps every verdict whole')
    assert.equal((JSON.parse(json.files.contacts) as unknown[]).length, 3)
  })

  it('a run that stopped short exports its best qualified companies, up to its quantity; one with none exports the headers only', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 2, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    await company(run.id, {domain: 'b.example', status: 'qualified', score: 70})
    await company(run.id, {domain: 'a.example', status: 'qualified', score: 80})
    await company(run.id, {domain: 'c.example', status: 'qualified', score: 50})
    await company(run.id, {domain: 'd.example', status: 'candidate', score: 99})
    assert.deepEqual(
      csv((await renderRun(t.db, run.id)).files.companies).map((c) => c.domain),
      ['a.example', 'b.example'],
    )

    const empty = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 2, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    const rendered = await renderRun(t.db, empty.id)
    assert.equal(rendered.files.companies, `${COMPANY_COLUMNS.join(',')}\n`)
    assert.equal(rendered.files.contacts, `${CONTACT_COLUMNS.join(',')}\n`)
    assert.equal(JSON.parse((await renderRun(t.db, empty.id, 'json')).files.companies).length, 0)
  })

  it('exportRun writes the two files into run-ID under the directory given (or ./exports/ and the database id), whole', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    const id = await company(run.id, {domain: 'w.example', status: 'selected', score: 80})
    await t.db.updateTable('companies').set({researched_at: null}).where('id', '=', id).execute()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-export-'))
    try {
      for (const format of ['csv', 'json'] as const) {
        const result = await exportRun(t.db, run.id, dir, format)
        assert.deepEqual(result, {
          runId: run.id,
          status: 'running',
          companies: 1,
          contacts: 0,
          files: {companies: path.join(dir, `run-${run.id}`, `companies.${format}`), contacts: path.join(dir, `run-${run.id}`, `contacts.${format}`)},
        })
        const rendered = await renderRun(t.db, run.id, format)
        assert.equal(fs.readFileSync(result.files.companies, 'utf8'), rendered.files.companies)
        assert.equal(fs.readFileSync(result.files.contacts, 'utf8'), rendered.files.contacts)
      }

      assert.deepEqual(
        fs.readdirSync(path.join(dir, `run-${run.id}`)).sort(),
        ['companies.csv', 'companies.json', 'contacts.csv', 'contacts.json'],
        'no temporary file left',
      )
      assert.equal((await exportRun(t.db, run.id, dir)).files.companies, path.join(dir, `run-${run.id}`, 'companies.csv'), 'CSV unless told otherwise')
      assert.equal(csv(fs.readFileSync(path.join(dir, `run-${run.id}`, 'companies.csv'), 'utf8'))[0].researched_at, '', 'not researched: an empty cell')
      assert.match(await defaultExportDir(t.db), /^exports\/[0-9a-f]{8}$/)
    } finally {
      fs.rmSync(dir, {recursive: true, force: true})
    }
  })

  it('a cell that starts like a formula (= + - @ tab CR) gets a leading apostrophe in the CSV; the JSON keeps the value', async () => {
    for (const value of ['=HYPERLINK("http://evil.example","x")', '+1+1', '-2+3', '@SUM(A1)', '\tcmd', '\rcmd']) {
      assert.equal(neutralizeFormula(value), `'${value}`, JSON.stringify(value))
    }

    for (const value of ['Acme = PM', 'a+b', 'user@acme.example', '', "'quoted"]) assert.equal(neutralizeFormula(value), value, JSON.stringify(value))

    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 1, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
    const id = await company(run.id, {domain: 'f.example', name: '=cmd|"/c calc"!A1', status: 'selected', score: 80})
    await contact(run.id, id, '@Owner', 1)
    const rendered = await renderRun(t.db, run.id)
    assert.equal(csv(rendered.files.companies)[0].company_name, `'=cmd|"/c calc"!A1`)
    assert.equal(csv(rendered.files.contacts)[0].full_name, "'@Owner")
    assert.equal(csv(rendered.files.contacts)[0].company_name, `'=cmd|"/c calc"!A1`)
    const json = await renderRun(t.db, run.id, 'json')
    assert.equal((JSON.parse(json.files.companies) as Array<{company_name: string}>)[0].company_name, '=cmd|"/c calc"!A1')
  })
})

describe('pipeline: CSV cells', () => {
  it('writes phone numbers as they are: digits, spaces, + - . ( ), and an optional extension', () => {
    for (const phone of ['+1-555-2847', '+1 (555) 284-7000', '+44 20 7946 0958 ext. 12', '+33.1.23.45.67.89', '+1 555 0100 EXT 7', '(555) 284-7000']) {
      assert.equal(neutralizeFormula(phone), phone)
    }
  })

  it('still neutralizes anything else that starts with = + - @, a tab or a carriage return', () => {
    for (const formula of [
      '=HYPERLINK("http://evil.example/x","Click")',
      '+SUM(1,2)',
      '-2+3',
      '-555-0100',
      '@cmd|calc',
      '\tTabbed PM',
      '\r+1-555-0100',
      '+1-555-0100 ext. 12 =1+1',
      '+1-555-0100+cmd|calc',
      '+1 (555) A1',
    ]) {
      assert.equal(neutralizeFormula(formula), `'${formula}`)
    }

    assert.equal(neutralizeFormula('Acme Property Management'), 'Acme Property Management')
  })
})
