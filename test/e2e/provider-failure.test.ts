import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'

import {useFreshDatabase} from '../helpers/db.js'
import {answer, FakeOpenAI, type ScriptedReply} from '../helpers/fake-openai.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'

/**
 * A failure that no retry can fix (the key is refused, the account has no
 * quota, the model cannot take rvx's prompts or answers nothing) stops the
 * run at once as failed, with the cause where people look; after the fix,
 * `rvx runs resume` continues it.
 */
describe('e2e: a provider that cannot be used fails the run at once, with the cause', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const fake = new FakeOpenAI()
  let out: string

  before(async () => {
    await fake.start()
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-fail-'))
  })

  after(async () => {
    await fake.stop()
    fs.rmSync(out, {recursive: true, force: true})
  })

  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: 'sk-test-key-123456', OPENAI_BASE_URL: fake.url, OPENAI_MODEL: 'gpt-4.1-mini'})

  /** Answers discovery, research and contacts for two companies that qualify. */
  function healthy(body: any): ScriptedReply {
    const prompt: string = body.messages[1].content
    if (prompt.startsWith('Find') && prompt.includes('property-management companies'))
      return answer({companies: [1, 2].map((i) => ({name: `Alamo PM ${i}`, domain: `alamo${i}.example`, state: 'TX', sources: []}))})
    if (prompt.startsWith('Research'))
      return answer({portfolio: 'residential', confidence: 'high', reasons: ['ok'], sources: [], pms: 'Buildium', units_estimate: 100})
    return answer({contacts: [{full_name: 'Rae Owner', title: 'Owner', tier: 1, confidence: 'high', sources: []}]})
  }

  const failures: Array<[string, ScriptedReply, RegExp]> = [
    [
      '401 (key refused)',
      {status: 401, body: {error: {message: 'Incorrect API key provided', code: 'invalid_api_key'}}},
      /refused the credentials \(HTTP 401\): check OPENAI_API_KEY/,
    ],
    [
      '429 insufficient_quota',
      {status: 429, body: {error: {message: 'You exceeded your current quota', type: 'insufficient_quota', code: 'insufficient_quota'}}},
      /no quota left/,
    ],
    [
      '400 context_length_exceeded',
      {status: 400, body: {error: {message: "This model's maximum context length is 8 tokens", code: 'context_length_exceeded'}}},
      /context length exceeded/,
    ],
    [
      'a completion with no choices',
      {body: {id: 'x', object: 'chat.completion', created: 0, model: 'm', choices: [], usage: {prompt_tokens: 1, completion_tokens: 0, total_tokens: 1}}},
      /returned no choices/,
    ],
    [
      'a proxy answering 200 text/html',
      {headers: {'content-type': 'text/html; charset=utf-8'}, body: null, raw: '<html><body><h1>Sign in to the corporate proxy</h1></body></html>'},
      /answered HTTP 200 with text\/html that is not a chat completion: check OPENAI_BASE_URL/,
    ],
    ['a body declared JSON that is not', {body: null, raw: '{"choices": [ this is not json'}, /answered with a body that is not JSON: check OPENAI_BASE_URL/],
    ['404 (no such model or endpoint)', {status: 404, body: {error: {message: 'The model does not exist'}}}, /no such endpoint or model \(HTTP 404\)/],
  ]

  for (const [name, reply, cause] of failures) {
    it(`${name}: exit 1, run failed with the cause, no further discovery rounds`, async () => {
      fake.reset()
      fake.route = () => reply
      const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '2', '--output-dir', out, '--json'], {env: env()})
      assert.equal(res.code, 1, res.stderr)
      assert.equal(hasStackTrace(res.stderr), false)
      const result = JSON.parse(res.stdout)
      assert.equal(result.status, 'failed')
      assert.match(result.progress.notes, cause)
      assert.equal(fake.requests.length, 1, 'one call, not five discovery rounds of failing calls')

      const shown = JSON.parse((await rvx(['runs', 'show', String(result.runId), '--json'], {env: env()})).stdout)
      assert.equal(shown.status, 'failed')
      assert.match(shown.notes, cause)
      assert.match(shown.notes, new RegExp(`rvx runs resume ${result.runId}`))
      const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${'run:' + result.runId} and kind = 'lead-list'`.execute(t.db)
      assert.equal(rows[0].n, 1)
    })
  }

  it('an endpoint answering 400 to everything: the run fails after three refusals in a row, naming them', async () => {
    fake.reset()
    fake.route = () => ({status: 400, body: {error: {message: 'Bad Request'}}})
    const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '2', '--output-dir', out, '--json'], {env: env(), timeoutMs: 120_000})
    assert.equal(res.code, 1, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'failed')
    assert.match(result.progress.notes, /refused 3 requests in a row and answered none \(HTTP 400: .*Bad Request\): check OPENAI_MODEL and OPENAI_BASE_URL/)
    assert.equal(fake.requests.length, 3)
  })

  for (const [value, shown] of [
    ['file:///etc/passwd', /OPENAI_BASE_URL is a file: URL: give the http\(s\) address/],
    ['ftp://models.example/v1', /OPENAI_BASE_URL is a ftp: URL: give the http\(s\) address/],
    ['not a url', /OPENAI_BASE_URL is not a URL: give the http\(s\) address/],
  ] as const) {
    it(`OPENAI_BASE_URL=${value}: refused up front in one line, exit 2, no run created`, async () => {
      const before = await t.db
        .selectFrom('runs')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
      const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '2', '--output-dir', out], {
        env: {...env(), OPENAI_BASE_URL: value},
        timeoutMs: 30_000,
      })
      assert.equal(res.code, 2, res.stderr)
      assert.equal(lines(res.stderr).length, 1, res.stderr)
      assert.match(res.stderr, shown)
      const after = await t.db
        .selectFrom('runs')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
      assert.equal(after.n, before.n)
    })
  }

  it('a worker whose OPENAI_BASE_URL is not a URL fails the run with that cause (not a task retried on and on)', async () => {
    fake.reset()
    fake.route = healthy
    const created = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '2', '--detach', '--json'], {env: env()})
    assert.equal(created.code, 0, created.stderr)
    const {runId} = JSON.parse(created.stdout)
    const worker = await rvx(['worker', 'all', '--run', String(runId), '--exit-when-idle'], {
      env: {...env(), OPENAI_BASE_URL: 'ftp://models.example/v1'},
      timeoutMs: 60_000,
    })
    assert.equal(hasStackTrace(worker.stderr), false)
    const run = await t.db.selectFrom('runs').select(['status', 'notes']).where('id', '=', runId).executeTakeFirstOrThrow()
    assert.equal(run.status, 'failed')
    assert.match(run.notes ?? '', /this worker's settings: OPENAI_BASE_URL is a ftp: URL/)
    assert.equal(fake.requests.length, 0)
  })

  it('a failure in research stops the run; after the fix, runs resume continues the research it stopped (no new discovery round)', async () => {
    fake.reset()
    let refuse = true
    fake.route = (body) => {
      const prompt: string = body.messages[1].content
      if (refuse && prompt.startsWith('Research')) return {status: 401, body: {error: {message: 'key revoked'}}}
      return healthy(body)
    }

    const failed = await rvx(
      ['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '2', '--concurrency', '1', '--accept-unknown', 'state,site', '--output-dir', out],
      {env: env()},
    )
    assert.equal(failed.code, 1, failed.stderr)
    assert.match(failed.stderr, /failed: .*refused the credentials \(HTTP 401\).*rvx runs resume/, 'the summary says why and what to do')
    const runId = (await t.db.selectFrom('runs').select('id').orderBy('id', 'desc').executeTakeFirstOrThrow()).id
    const before = await sql<{status: string; n: number}>`
      select status, count(*)::int as n from tasks where scope = ${'run:' + runId} and kind = 'company' group by status order by status`.execute(t.db)
    assert.deepEqual(
      before.rows.map((r) => [r.status, r.n]),
      [
        ['canceled', 1],
        ['failed', 1],
      ],
      'the failing research failed, the other was stopped',
    )

    refuse = false
    const resumed = await rvx(['runs', 'resume', String(runId), '--output-dir', out, '--json'], {env: env()})
    assert.equal(resumed.code, 0, resumed.stderr)
    const result = JSON.parse(resumed.stdout)
    assert.equal(result.status, 'completed')
    assert.equal(result.progress.companies.selected, 2)
    const run = await t.db.selectFrom('runs').select(['discovery_rounds']).where('id', '=', runId).executeTakeFirstOrThrow()
    assert.equal(run.discovery_rounds, 1, 'the stopped research was taken up again, not replaced by a new discovery round')
  })
})
