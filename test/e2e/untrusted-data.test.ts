import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'

import {hasStackTrace, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {answer, completion, FakeOpenAI, toolCall} from '../helpers/fake-openai.js'
import {homePage, WebWorld} from '../helpers/web-world.js'

/**
 * What a model, a page or a provider's metadata gives is hostile: a NUL in a
 * page's title or a model's company name, a number no column holds, usage
 * that is no count, a billion tokens, a PDF. Each must end with the run going
 * on (the value normalized) and every paid call recorded and budgeted, never
 * with a settlement that fails and a task that pays again. Real local sites
 * and DNS, a fake OpenAI server, the spawned CLI.
 */
describe('e2e: untrusted data at the database boundary', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()
  const web = new WebWorld()
  const fake = new FakeOpenAI()
  let out: string

  before(async () => {
    await web.start()
    await fake.start()
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-untrusted-'))
  })

  after(async () => {
    await fake.stop()
    await web.stop()
    fs.rmSync(out, {recursive: true, force: true})
  })

  const env = (extra: NodeJS.ProcessEnv = {}) => ({
    DATABASE_URL: t.url,
    OPENAI_API_KEY: 'sk-test-key-123456',
    OPENAI_BASE_URL: fake.url,
    OPENAI_MODEL: 'gpt-4.1-mini',
    RVX_DNS_SERVER: web.dns.address,
    RVX_ALLOW_PRIVATE_FETCH: '1',
    ...extra,
  })
  const latestRun = async () => (await t.db.selectFrom('runs').selectAll().orderBy('id', 'desc').executeTakeFirstOrThrow()).id
  const isPrompt = (body: any, step: 'discovery' | 'research') =>
    step === 'discovery' ? /^Find .*property-management companies/.test(body.messages[1].content) : body.messages[1].content.startsWith('Research')

  it('a NUL in a page title, a NUL and terminal escapes in a model-given name, units_estimate 3000000000: the run completes, values cleaned', async () => {
    web.site('nultitle.example', {'/': homePage({name: 'Acme\u0000PM'})})
    web.site('nulname.example', {'/': homePage({name: 'Name PM'})})
    web.site('bigunits.example', {'/': homePage({name: 'Units PM'})})
    const companies = [
      {name: 'Title PM', domain: 'nultitle.example'},
      {name: 'Evil\u0000 PM\u001b[2J\u001b]0;pwned\u0007\u202Egnp.exe', domain: 'nulname.example'},
      {name: 'Units PM', domain: 'bigunits.example', units_estimate: 3_000_000_000},
    ]
    fake.reset()
    fake.route = (body) => {
      if (isPrompt(body, 'discovery')) return answer({companies: companies.map((c) => ({...c, website: web.url(c.domain), state: 'TX', sources: []}))})
      if (isPrompt(body, 'research'))
        return answer({
          portfolio: 'residential',
          confidence: 'high',
          reasons: ['manages\u0000 rentals'],
          sources: [],
          units_estimate: 3_000_000_000,
          employees_estimate: -5,
          pms: 'Buildium\u0000',
        })
      return answer({
        contacts: [{full_name: 'Ann\u0000 Owner\u001b]8;;http://evil.example\u0007', title: 'Owner\u202E', tier: 1, confidence: 'high', sources: []}],
      })
    }

    const res = await rvx(
      ['orchestrate', '--criteria', '{}', '--quantity', '3', '--accept-unknown', 'site', '--output-dir', out, '--timeout', '60s', '--json'],
      {env: env(), timeoutMs: 120_000},
    )
    assert.equal(hasStackTrace(res.stderr), false)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed', res.stdout)
    // One discovery call, three research calls, three contact searches: nothing paid for twice.
    assert.equal(fake.requests.length, 7)

    const rows = await t.db.selectFrom('companies').select(['domain', 'name', 'units_estimate', 'pms', 'checks']).where('run_id', '=', result.runId).execute()
    assert.equal(rows.length, 3)
    const evil = rows.find((r) => r.domain === 'nulname.example')!
    assert.equal(evil.name, 'Evil PMgnp.exe', 'NUL, escape sequences and the direction override taken out')
    for (const r of rows) assert.equal(r.units_estimate, null, 'an implausible estimate is unknown')
    const title = rows.find((r) => r.domain === 'nultitle.example')!
    assert.equal((title.checks as any).site.evidence[0].quote, 'AcmePM', "the page title's NUL taken out")
    const contacts = await t.db.selectFrom('contacts').select(['full_name', 'title']).where('run_id', '=', result.runId).execute()
    assert.deepEqual(new Set(contacts.map((c) => c.full_name)), new Set(['Ann Owner']))

    const csv =
      fs.readFileSync(path.join(out, `run-${result.runId}`, 'companies.csv'), 'utf8') +
      fs.readFileSync(path.join(out, `run-${result.runId}`, 'contacts.csv'), 'utf8')
    // eslint-disable-next-line no-control-regex -- what must not reach a terminal
    assert.doesNotMatch(csv, /[\u0000\u0007\u001b\u202E]/)
  })

  it('domains through one parser: Unicode, fullwidth and xn-- forms are one key (and --exclude keeps all out); non-domains are not researched', async () => {
    web.site('good.example', {'/': homePage({name: 'Good PM'})})
    const found = ['good.example', 'bücher.example', '\uFF42ücher.example', 'xn--bcher-kva.example', 'user@acme.example', '<script>.example', 'not a domain!!']
    fake.reset()
    fake.route = (body) => {
      if (isPrompt(body, 'discovery')) return answer({companies: found.map((domain, i) => ({name: `Company ${i}`, domain, sources: []}))})
      if (isPrompt(body, 'research')) return answer({portfolio: 'residential', confidence: 'high', reasons: [], sources: []})
      return answer({contacts: [{full_name: 'Gia Owner', title: 'Owner', tier: 1, confidence: 'high', sources: []}]})
    }

    const res = await rvx(
      ['orchestrate', '--criteria', '{}', '--quantity', '1', '--accept-unknown', 'site', '--exclude', 'xn--bcher-kva.example', '--output-dir', out, '--json'],
      {env: env(), timeoutMs: 120_000},
    )
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed', res.stdout)
    const rows = await t.db.selectFrom('companies').select('domain').where('run_id', '=', result.runId).execute()
    assert.deepEqual(
      rows.map((r) => r.domain),
      ['good.example'],
    )
    const researched = fake.requests.filter((r) => isPrompt(r.body, 'research')).map((r) => r.body.messages[1].content.split(' (')[0])
    assert.deepEqual(researched, ['Research Company 0'])
    const run = await t.db.selectFrom('runs').select('suppressed').where('id', '=', result.runId).executeTakeFirstOrThrow()
    assert.equal(run.suppressed, 1, 'the three forms of bücher.example are one excluded company')
  })

  it('a model returning 10,000 contacts: the first ones are kept, the run completes', async () => {
    web.site('many.example', {'/': homePage({name: 'Many PM'})})
    fake.reset()
    fake.route = (body) => {
      if (isPrompt(body, 'discovery')) return answer({companies: [{name: 'Many PM', domain: 'many.example', sources: []}]})
      if (isPrompt(body, 'research')) return answer({portfolio: 'residential', confidence: 'high', reasons: [], sources: []})
      return answer({contacts: Array.from({length: 10_000}, (_, i) => ({full_name: `Person ${i}`, title: 'Owner', tier: 1, confidence: 'high', sources: []}))})
    }

    const res = await rvx(['orchestrate', '--criteria', '{}', '--quantity', '1', '--accept-unknown', 'site', '--output-dir', out, '--json'], {
      env: env(),
      timeoutMs: 120_000,
    })
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'completed', res.stdout)
    const people = await t.db.selectFrom('contacts').select('full_name').where('run_id', '=', result.runId).orderBy('id').execute()
    assert.deepEqual(
      people.map((p) => p.full_name),
      ['Person 0', 'Person 1', 'Person 2'],
    )
  })

  it('rvx inspect: an IDN is accepted; a quoted mailbox name and a 5,000-character one are invalid, not rewritten or no_mx', async () => {
    web.site('xn--bcher-kva.example', {'/': homePage({name: 'Bücher PM'})})
    const longLocal = `${'x'.repeat(5000)}@xn--bcher-kva.example`
    const res = await rvx(
      ['inspect', `http://bücher.example:${web.port}/`, '--email', '"a b"@bücher.example', '--email', longLocal, '--email', 'ann@bücher.example', '--json'],
      {env: env()},
    )
    assert.equal(res.code, 0, res.stderr)
    const json = JSON.parse(res.stdout)
    assert.equal(json.sites[0].domain, 'xn--bcher-kva.example')
    assert.equal(json.sites[0].site.verdict, 'match')
    assert.deepEqual(
      json.emails.map((e: {emailStatus: string; email: string | null}) => [e.emailStatus, e.email]),
      [
        ['invalid', null],
        ['invalid', null],
        ['valid_domain', 'ann@xn--bcher-kva.example'],
      ],
    )
  })

  it('a PDF reaches the model as a line saying what it was, not as its bytes', async () => {
    const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.from(Array.from({length: 4000}, (_, i) => (i * 37) % 256))])
    web.site('pdf.example', {'/': homePage({name: 'Pdf PM'}), '/brochure.pdf': {type: 'application/pdf', body: pdf}})
    fake.reset()
    fake.route = (body) => {
      if (isPrompt(body, 'discovery')) return answer({companies: [{name: 'Pdf PM', domain: 'pdf.example', website: web.url('pdf.example'), sources: []}]})
      if (isPrompt(body, 'research')) {
        if (!body.messages.some((m: {role: string}) => m.role === 'tool')) return toolCall('fetch_page', {url: web.url('pdf.example', '/brochure.pdf')})
        return answer({portfolio: 'residential', confidence: 'high', reasons: [], sources: []})
      }

      return answer({contacts: [{full_name: 'Pat Owner', title: 'Owner', tier: 1, confidence: 'high', sources: []}]})
    }

    const res = await rvx(
      ['orchestrate', '--criteria', '{}', '--quantity', '1', '--accept-unknown', 'site', '--output-dir', out, '--timeout', '60s', '--json'],
      {
        env: env(),
        timeoutMs: 120_000,
      },
    )
    assert.equal(JSON.parse(res.stdout).status, 'completed', res.stderr)
    const tool = fake.requests.flatMap((r) => r.body.messages).find((m: {role: string}) => m.role === 'tool')
    assert.match(tool.content, /not a text page: application\/pdf, \d+ bytes, not shown/)
    assert.ok(tool.content.length < 1000, `the tool result is ${tool.content.length} characters`)
  })

  for (const [name, usage] of [
    ['prompt_tokens "lots"', {prompt_tokens: 'lots', completion_tokens: 20}],
    ['prompt_tokens -100000', {prompt_tokens: -100_000, completion_tokens: 20}],
  ] as const) {
    it(`usage ${name}: each call recorded with an estimate (cost > 0, marked estimated), and --max-usd stops the run`, async () => {
      const domains = Array.from({length: 30}, (_, i) => `usage${i}.example`)
      for (const d of domains) web.site(d, {'/': homePage({name: d})})
      fake.reset()
      fake.route = (body) => {
        const reply = isPrompt(body, 'discovery')
          ? answer({companies: domains.map((d) => ({name: d, domain: d, website: web.url(d), sources: []}))})
          : isPrompt(body, 'research')
            ? answer({portfolio: 'residential', confidence: 'high', reasons: [], sources: []})
            : answer({contacts: [{full_name: 'Sam Owner', title: 'Owner', tier: 1, confidence: 'high', sources: []}]})
        ;(reply.body as any).usage = {...usage}
        return reply
      }

      const res = await rvx(
        ['orchestrate', '--criteria', '{}', '--quantity', '30', '--accept-unknown', 'site', '--max-usd', '0.005', '--concurrency', '2', '--output-dir', out],
        {env: env(), timeoutMs: 120_000},
      )
      assert.equal(res.code, 4, res.stderr)
      const runId = await latestRun()
      const run = await t.db.selectFrom('runs').select(['status', 'notes']).where('id', '=', runId).executeTakeFirstOrThrow()
      assert.equal(run.status, 'needs_decision')
      assert.match(run.notes ?? '', /budget/)
      const calls = await t.db.selectFrom('llm_calls').select(['input_tokens', 'cost_usd', 'usage_estimated']).where('run_id', '=', runId).execute()
      assert.equal(calls.length, fake.requests.length, 'every call recorded')
      assert.ok(calls.length < 31, `${calls.length} calls: the budget stopped the run before it researched everything`)
      for (const c of calls) {
        assert.equal(c.usage_estimated, true)
        assert.ok(c.input_tokens > 0 && Number(c.cost_usd) > 0, `estimated: ${c.input_tokens} tokens, $${c.cost_usd}`)
      }

      const shown = await rvx(['runs', 'show', String(runId)], {env: env()})
      assert.match(shown.stdout, new RegExp(`${calls.length} calls' usage estimated`))

      const total = calls.reduce((sum, c) => sum + Number(c.cost_usd), 0)
      assert.ok(total <= 0.005, `$${total} spent under a $0.005 budget`)
    })
  }

  it('a call reporting 1.5 billion prompt tokens, twice: runs list, runs show and the run itself keep working', async () => {
    web.site('billion.example', {'/': homePage({name: 'Billion PM'})})
    fake.reset()
    fake.route = (body) => {
      if (isPrompt(body, 'discovery'))
        return completion(
          {content: JSON.stringify({companies: [{name: 'Billion PM', domain: 'billion.example', website: web.url('billion.example'), sources: []}]})},
          {prompt_tokens: 1_500_000_000, completion_tokens: 20},
        )
      if (isPrompt(body, 'research'))
        return completion(
          {content: JSON.stringify({portfolio: 'residential', confidence: 'high', reasons: [], sources: []})},
          {prompt_tokens: 1_500_000_000, completion_tokens: 20},
        )
      return answer({contacts: [{full_name: 'Bill Owner', title: 'Owner', tier: 1, confidence: 'high', sources: []}]})
    }

    const res = await rvx(
      ['orchestrate', '--criteria', '{}', '--quantity', '1', '--accept-unknown', 'site', '--output-dir', out, '--timeout', '60s', '--json'],
      {
        env: env(),
        timeoutMs: 120_000,
      },
    )
    assert.equal(JSON.parse(res.stdout).status, 'completed', res.stderr)
    const runId = await latestRun()
    const list = await rvx(['runs', 'list', '--json'], {env: env()})
    assert.equal(list.code, 0, list.stderr)
    const shown = await rvx(['runs', 'show', String(runId), '--json'], {env: env()})
    assert.equal(shown.code, 0, shown.stderr)
    assert.equal(JSON.parse(shown.stdout).usage.inputTokens, 3_000_000_000 + 100)
    const {rows} = await sql<{n: string}>`select sum(input_tokens)::text as n from llm_calls where run_id = ${runId}`.execute(t.db)
    assert.equal(rows[0].n, '3000000100')
  })
})
