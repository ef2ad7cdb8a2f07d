import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'
import {sql} from 'kysely'

import {startSmtp, type SmtpCapture} from '../helpers/capture-servers.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {answer, FakeOpenAI} from '../helpers/fake-openai.js'
import {waitFor} from '../helpers/processes.js'

/**
 * Company names and sources come from web pages and models: a name a
 * spreadsheet would run as a formula must reach the CSV (written, and mailed)
 * as text, while the JSON export keeps the raw value.
 */
describe('e2e: exports neutralize spreadsheet formulas from hostile names', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const fake = new FakeOpenAI()
  let smtp: SmtpCapture
  let out: string
  const NAMES = ['=HYPERLINK("http://evil.example/x","Click")', '+SUM(1,2)', '-2+3', '@cmd|calc', '\tTabbed PM']
  // As stored: a name's control characters (the tab) are taken out where the model's answer enters the pipeline.
  const STORED = NAMES.map((n) => n.trim())

  before(async () => {
    await fake.start()
    smtp = await startSmtp()
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-csv-'))
    fake.route = (body) => {
      const prompt: string = body.messages[1].content
      if (prompt.startsWith('Find') && prompt.includes('property-management companies')) {
        return answer({
          companies: NAMES.map((name, i) => ({name, domain: `hostile${i}.example`, state: 'TX', sources: [`=IMPORTXML("http://evil.example/${i}")`]})),
        })
      }

      if (prompt.startsWith('Research')) return answer({portfolio: 'residential', confidence: 'high', reasons: ['=1+1'], sources: [], pms: 'Buildium'})
      return answer({contacts: [{full_name: '=cmd|"/c calc"!A1', title: '@owner', tier: 1, phone: '+1-555-0100', confidence: 'high', sources: []}]})
    }
  })

  after(async () => {
    await fake.stop()
    await smtp.close()
    fs.rmSync(out, {recursive: true, force: true})
  })

  it('CSV cells that start with = + - @ or a tab are prefixed with an apostrophe, phone numbers are not; JSON keeps them raw; the mailed CSVs are the same', async () => {
    const env = {DATABASE_URL: t.url, OPENAI_API_KEY: 'sk-fake', OPENAI_BASE_URL: fake.url, SMTP_URL: smtp.url}
    const res = await rvx(
      // These sites do not exist: their site and location checks stay unknown, which this run accepts (it is about the CSV).
      [
        'orchestrate',
        '--criteria',
        '{"state":"TX"}',
        '--quantity',
        String(NAMES.length),
        '--accept-unknown',
        'state,site',
        '--output-dir',
        out,
        '--notify-email',
        'sales@example.com',
        '--json',
      ],
      {env},
    )
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)

    const csvText = fs.readFileSync(result.export.files.companies, 'utf8')
    const companies = parse(csvText, {columns: true}) as Array<Record<string, string>>
    assert.deepEqual(companies.map((c) => c.company_name).sort(), STORED.map((n) => (/^[=+\-@]/.test(n) ? `'${n}` : n)).sort())
    assert.ok(
      companies.every((c) => !/^[=+\-@]/.test(c.sources) && !c.sources.includes('IMPORTXML')),
      'no source is a formula (a source that is not an http(s) URL is dropped where the answer enters the pipeline)',
    )
    const contacts = parse(fs.readFileSync(result.export.files.contacts, 'utf8'), {columns: true}) as Array<Record<string, string>>
    assert.ok(contacts.length > 0)
    assert.ok(
      contacts.every((c) => c.full_name.startsWith("'=cmd") && c.title === "'@owner" && c.phone === '+1-555-0100'),
      'a phone number is written as it is',
    )

    const json = await rvx(['runs', 'export', String(result.runId), '--format', 'json', '--output-dir', out, '--json'], {env})
    const raw = JSON.parse(fs.readFileSync(JSON.parse(json.stdout).files.companies, 'utf8')) as Array<{company_name: string}>
    assert.deepEqual(raw.map((c) => c.company_name).sort(), [...STORED].sort(), 'JSON keeps the stored value')

    const [mail] = await waitFor('the completion mail', async () => smtp.to('sales@example.com').length > 0 && smtp.to('sales@example.com'))
    const attached = mail.attachments.find((a) => a.filename?.endsWith('companies.csv'))!
    assert.equal(attached.content.toString('utf8'), csvText, 'the mailed CSV is the exported one')
  })
})

describe("e2e: two databases' exports never overwrite each other", function () {
  this.timeout(180_000)
  const a = useFreshDatabase()
  const b = useFreshDatabase()
  let cwd: string

  before(() => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-exports-'))
  })

  after(() => {
    fs.rmSync(cwd, {recursive: true, force: true})
  })

  const idOf = async (t: typeof a) => (await sql<{id: string}>`select value #>> '{}' as id from rvx_meta where key = 'database_id'`.execute(t.db)).rows[0].id
  const rowsOf = (file: string) => parse(fs.readFileSync(file, 'utf8'), {columns: true}) as Array<{domain: string}>

  it("puts each database's run 1 under ./exports/<its id>/run-1; --output-dir still puts it where it says", async () => {
    // Database A delivers a company in run 1; database B's run 1 has nothing yet, and is exported after it.
    const done = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"TX"}', '--quantity', '1', '--json'], {
      env: {DATABASE_URL: a.url},
      cwd,
    })
    assert.equal(done.code, 0, done.stderr)
    assert.equal(JSON.parse(done.stdout).runId, 1)
    const created = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"state":"FL"}', '--quantity', '1', '--detach', '--json'], {
      env: {DATABASE_URL: b.url},
      cwd,
    })
    assert.equal(JSON.parse(created.stdout).runId, 1)
    const exported = await rvx(['runs', 'export', '1', '--json'], {env: {DATABASE_URL: b.url}, cwd})
    assert.equal(exported.code, 0, exported.stderr)

    const dirA = path.dirname(JSON.parse(done.stdout).export.files.companies)
    const dirB = path.dirname(JSON.parse(exported.stdout).files.companies)
    assert.notEqual(dirA, dirB)
    assert.equal(rowsOf(path.join(dirA, 'companies.csv')).length, 1, "A's export is still there, whole")
    assert.equal(rowsOf(path.join(dirB, 'companies.csv')).length, 0)
    // Each under its own database's id.
    const [idA, idB] = [await idOf(a), await idOf(b)]
    const folder = (id: string) => path.join(fs.realpathSync(cwd), 'exports', id.replaceAll('-', '').slice(0, 8), 'run-1')
    assert.deepEqual([dirA, dirB], [folder(idA), folder(idB)])

    const given = await rvx(['runs', 'export', '1', '--output-dir', 'mine', '--json'], {env: {DATABASE_URL: b.url}, cwd})
    assert.equal(path.dirname(JSON.parse(given.stdout).files.companies), path.join(fs.realpathSync(cwd), 'mine', 'run-1'))
  })
})
