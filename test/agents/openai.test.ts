import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {type AgentLimits, OpenAIProvider} from '../../src/agents/openai.js'
import type {LlmUsage} from '../../src/pipeline/provider.js'
import {classifyError} from '../../src/runtime/errors.js'
import {answer, completion, FakeOpenAI, toolCall, toolCalls, truncated} from '../helpers/fake-openai.js'
import {freeCall} from '../helpers/call-context.js'
import {askContacts} from '../../src/pipeline/stages/contacts.js'
import {askDiscovery} from '../../src/pipeline/stages/discovery.js'
import {askResearch} from '../../src/pipeline/stages/research.js'

const GOOD_RESEARCH = {
  verdicts: {pms: {verdict: 'match', evidence: [{url: 'https://acme.example', quote: 'Pay rent online'}]}},
  portfolio: 'residential',
  units_estimate: 120,
  employees_estimate: 8,
  confidence: 'high',
  reasons: ['tenant portal on Buildium'],
  sources: ['https://acme.example'],
  pms: 'Buildium',
}

describe('openai provider against a fake OpenAI-compatible server', function () {
  const fake = new FakeOpenAI()
  let site: http.Server
  let siteUrl: string
  let siteHits: string[]
  let usage: LlmUsage[]

  before(async () => {
    await fake.start()
    site = http.createServer((req, res) => {
      siteHits.push(req.url!)
      res.writeHead(200, {'content-type': 'text/html'})
      if (req.url === '/big') res.end(`<html><body><p>${'Acme rents homes. '.repeat(6000)}</p></body></html>`)
      else res.end('<html><body><h1>Acme Property Management</h1><a href="https://acme.managebuilding.com/Resident">Resident Portal</a></body></html>')
    })
    await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve))
    siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`
  })

  after(async () => {
    await fake.stop()
    site.close()
  })

  beforeEach(() => {
    fake.reset()
    usage = []
    siteHits = []
  })

  function provider(limits: Partial<AgentLimits> = {}, timeoutMs = 5000): OpenAIProvider {
    return new OpenAIProvider({
      apiKey: 'sk-test-secret',
      baseURL: fake.url,
      model: 'gpt-4.1-mini',
      timeoutMs,
      limits: {maxTurns: 6, ...limits},
      search: null,
      allowPrivateFetch: true,
    })
  }

  /** The tool results the model was sent in request `i`. */
  const toolResults = (i: number): string[] =>
    fake.requests[i].body.messages.filter((m: {role: string}) => m.role === 'tool').map((m: {content: string}) => m.content)

  const ctx = () => freeCall((u: LlmUsage) => usage.push(u))
  const company = {name: 'Acme PM', domain: 'acme.example', website: 'https://acme.example', sources: []}

  it('runs a multi-turn tool-calling conversation and validates the answer', async () => {
    fake.reply(toolCall('fetch_page', {url: siteUrl}), answer(GOOD_RESEARCH))
    const result = await askResearch(provider(), {criteria: {pms: 'Buildium'}, company}, ctx())
    assert.equal(result.verdicts.pms?.verdict, 'match')
    assert.equal(result.pms, 'Buildium')
    assert.equal(result.unitsEstimate, 120)
    assert.ok(result.seen.includes(siteUrl), 'the page it fetched is among what it read')

    assert.equal(fake.requests.length, 2)
    assert.equal(fake.requests[0].auth, 'Bearer sk-test-secret')
    assert.deepEqual(
      fake.requests[0].body.tools.map((t: {function: {name: string}}) => t.function.name),
      ['fetch_page', 'detect_pms'],
    )
    const toolMessage = fake.requests[1].body.messages.find((m: {role: string}) => m.role === 'tool')
    assert.match(toolMessage.content, /Acme Property Management/, 'the fetched page went back to the model')
    assert.equal(usage.length, 2)
    assert.deepEqual(
      usage.map((u) => [u.outcome, u.inputTokens, u.outputTokens, u.cachedTokens]),
      [
        ['ok', 100, 20, 40],
        ['ok', 100, 20, 40],
      ],
    )
    assert.ok(usage[0].costUsd > 0)
  })

  it('repairs a malformed answer with one more turn', async () => {
    fake.reply(answer('Sure! Here is what I found: acme is great'), answer(GOOD_RESEARCH))
    const result = await askResearch(provider(), {criteria: {}, company}, ctx())
    assert.equal(result.unitsEstimate, 120)
    const repair = fake.requests[1].body.messages.at(-1)
    assert.equal(repair.role, 'user')
    assert.match(repair.content, /did not validate: the answer is not JSON/)
  })

  it('treats empty output after tools as malformed, and fails permanently if the repair fails too', async () => {
    fake.reply(toolCall('detect_pms', {domain: 'acme.example'}), completion({content: ''}), answer({confidence: 'maybe'}))
    await assert.rejects(
      askResearch(provider(), {criteria: {}, company}, ctx()),
      (e: Error) => e.name === 'PermanentError' && /failed validation after a repair turn: confidence/.test(e.message),
    )
  })

  it('waits in place for a short 429 and keeps the conversation (its paid turns are not lost)', async () => {
    fake.reply(
      toolCall('detect_pms', {domain: 'acme.example'}),
      {status: 429, headers: {'retry-after': '1'}, body: {error: {message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded'}}},
      answer(GOOD_RESEARCH),
    )
    const result = await askResearch(provider(), {criteria: {}, company}, ctx())
    assert.equal(result.unitsEstimate, 120)
    assert.deepEqual(
      usage.map((u) => u.outcome),
      ['ok', 'rate_limited', 'ok'],
    )
    assert.equal(fake.requests.length, 3)
    assert.equal(fake.requests[2].body.messages.length, fake.requests[1].body.messages.length, 'the retried turn carries the same conversation')
  })

  it('hands a long 429 Retry-After to the runtime as a snooze', async () => {
    fake.reply({status: 429, headers: {'retry-after': '70'}, body: {error: {message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded'}}})
    const error = await askResearch(provider(), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.deepEqual(classifyError(error), {type: 'snooze', retryAfterMs: 70_000})
    assert.equal(usage[0].outcome, 'rate_limited')
    assert.equal(fake.requests.length, 1, 'the SDK does not retry on its own')
  })

  it('reads the wait of a 429 without Retry-After from its message (OpenAI\'s "Please try again in ...")', async () => {
    fake.reply({
      status: 429,
      body: {
        error: {
          message:
            'Rate limit reached for gpt-4.1-mini in organization org-x on tokens per min (TPM): Limit 200000, Used 199000, Requested 1500. Please try again in 1m10s.',
          type: 'tokens',
          code: 'rate_limit_exceeded',
        },
      },
    })
    const error = await askResearch(provider(), {criteria: {}, company}, ctx()).catch((e) => e)
    // Before, a bare 429 backed off by its own schedule (2 s, 4 s, ...) into the same wall.
    assert.deepEqual(classifyError(error), {type: 'snooze', retryAfterMs: 70_000})
  })

  it('lets a 500 be retried by the runtime (transient)', async () => {
    fake.reply({status: 500, body: {error: {message: 'upstream exploded'}}})
    const error = await askResearch(provider(), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.deepEqual(classifyError(error), {type: 'transient'})
    assert.equal(fake.requests.length, 1)
  })

  it('fails fast on 401 with a message naming the variable to fix, without the key', async () => {
    fake.reply({status: 401, body: {error: {message: 'Incorrect API key provided: sk-test-secret', type: 'invalid_request_error', code: 'invalid_api_key'}}})
    const error = await askResearch(provider(), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.deepEqual(classifyError(error), {type: 'permanent'})
    assert.match(error.message, /check OPENAI_API_KEY and OPENAI_BASE_URL/)
    assert.doesNotMatch(error.message, /sk-test-secret/)
  })

  it("searches with OpenAI's hosted web search when no search backend is configured", async () => {
    const hosted = new OpenAIProvider({
      apiKey: 'sk-test-secret',
      baseURL: fake.url,
      model: 'gpt-4.1-mini',
      timeoutMs: 5000,
      search: 'hosted',
      searchModel: 'gpt-4o-mini-search-preview',
      limits: {maxTurns: 6},
    })
    fake.reply(
      toolCall('search_web', {query: 'Buildium property management Austin TX'}),
      completion({
        content: 'Acme PM manages homes in Austin.',
        annotations: [{type: 'url_citation', url_citation: {title: 'Acme PM', url: 'https://acme.example', start_index: 0, end_index: 7}}],
      }),
      answer({companies: [{name: 'Acme PM', domain: 'acme.example', sources: ['https://acme.example']}]}),
    )
    const found = await askDiscovery(hosted, {criteria: {state: 'TX'}, want: 1, exclude: []}, ctx())
    assert.deepEqual(
      found.map((c) => c.domain),
      ['acme.example'],
    )
    assert.deepEqual(
      fake.requests[0].body.tools.map((t: {function: {name: string}}) => t.function.name),
      ['fetch_page', 'detect_pms', 'search_web'],
    )
    assert.equal(fake.requests[1].body.model, 'gpt-4o-mini-search-preview')
    assert.deepEqual(fake.requests[1].body.web_search_options, {})
    const toolResult = fake.requests[2].body.messages.find((m: {role: string}) => m.role === 'tool')
    assert.match(toolResult.content, /https:\/\/acme\.example/)
  })

  it('discovers and finds contacts through the same loop; its checks drop a shared inbox the model returned', async () => {
    fake.reply(answer({companies: [{name: 'Acme PM', domain: 'acme.example', sources: ['https://dir.example']}]}))
    const found = await askDiscovery(provider(), {criteria: {state: 'TX'}, want: 5, exclude: ['old.example']}, ctx())
    assert.deepEqual(
      found.map((c) => c.domain),
      ['acme.example'],
    )
    assert.match(fake.requests[0].body.messages[1].content, /Skip these domains.*old\.example/)

    fake.reply(
      answer({
        contacts: [
          {full_name: 'Ann Owner', title: 'Owner', tier: 1, email: 'ann@acme.example', confidence: 'high', sources: []},
          {full_name: 'Front Desk', title: 'Office', tier: 4, email: 'info@acme.example', confidence: 'low', sources: []},
        ],
      }),
    )
    const p = provider()
    const people = await askContacts(p, {company, min: 1, max: 3}, ctx())
    assert.deepEqual(
      people.map((x) => x.fullName),
      ['Ann Owner', 'Front Desk'],
    )
    const desk = await p.checks.checkContact(people[1], ['acme.example'], new AbortController().signal)
    assert.deepEqual([desk.email, desk.emailStatus], [null, 'invalid'])
    assert.match(desk.notes.join(' '), /info@acme\.example is a shared inbox/)
  })

  it('runs at most 8 tool calls of a turn that asks for 40; the others get an error result and are not run', async () => {
    fake.reply(toolCalls(Array.from({length: 40}, (_, i) => ['fetch_page', {url: `${siteUrl}page/${i}`}] as [string, unknown])), answer(GOOD_RESEARCH))
    await askResearch(provider(), {criteria: {}, company}, ctx())
    assert.deepEqual(
      siteHits,
      Array.from({length: 8}, (_, i) => `/page/${i}`),
    )
    const results = toolResults(1)
    assert.equal(results.length, 40, 'every tool call got a result')
    assert.ok(results.slice(0, 8).every((r) => /Acme Property Management/.test(r)))
    assert.ok(results.slice(8).every((r) => r === 'error: not run: at most 8 tool calls per turn; ask again for what you still need'))
  })

  it('does not run tools the model asks for on its last turn, where none were offered', async () => {
    fake.reply(toolCall('fetch_page', {url: `${siteUrl}first`}), toolCall('fetch_page', {url: `${siteUrl}on-the-last-turn`}))
    const error = await askResearch(provider({maxTurns: 2}), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.equal(error.name, 'PermanentError')
    assert.match(error.message, /asked for tools on its last turn \(2\) instead of answering; they were not run/)
    assert.equal(fake.requests[1].body.tools, undefined, 'no tools offered on the last turn')
    assert.deepEqual(siteHits, ['/first'])
  })

  it('answers fetches beyond the budget with an error to the model: requests, then bytes', async () => {
    fake.reply(...[1, 2, 3, 4, 5].map((i) => toolCall('fetch_page', {url: `${siteUrl}n/${i}`})), answer(GOOD_RESEARCH))
    await askResearch(provider({maxTurns: 8, maxFetches: 3}), {criteria: {}, company}, ctx())
    assert.deepEqual(siteHits, ['/n/1', '/n/2', '/n/3'])
    const results = toolResults(5)
    assert.match(results[2], /Acme Property Management/)
    assert.match(results[3], /^error: not fetching .*\/n\/4: this research step has spent its fetch budget \(3 requests\); answer with what you have$/)
    assert.match(results[4], /spent its fetch budget \(3 requests\)/)

    fake.reset()
    siteHits = []
    fake.reply(...[1, 2, 3].map(() => toolCall('fetch_page', {url: `${siteUrl}big`})), answer(GOOD_RESEARCH))
    await askResearch(provider({maxFetchBytes: 150_000}), {criteria: {}, company}, ctx())
    assert.deepEqual(siteHits, ['/big', '/big'], 'the third fetch was not made')
    assert.match(toolResults(3)[2], /spent its fetch budget \(150000 bytes\)/)
  })

  it('stops at its deadline, aborting the model call in flight once its grace for the answer is over, as a permanent failure', async () => {
    fake.reply({...answer(GOOD_RESEARCH), delayMs: 4000})
    const started = Date.now()
    const error = await askResearch(provider({deadlineMs: 300, answerGraceMs: 200}), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.ok(error instanceof Error, 'no answer after the deadline')
    assert.deepEqual(classifyError(error), {type: 'permanent'})
    assert.match(error.message, /did not finish within its deadline of 300 ms/)
    assert.equal(usage[0].outcome, 'error')
    assert.ok(Date.now() - started < 2000, `stopped after ${Date.now() - started} ms`)
  })

  it("does not count the time a call waits in line for the fleet's quota against its deadline", async () => {
    // Before, a fleet lined up for a tight quota ran its calls out of their deadline while they waited, and failed them.
    fake.reply(toolCall('fetch_page', {url: siteUrl}), answer(GOOD_RESEARCH))
    let waited = 0
    const inLine = {
      ...ctx(),
      async admit() {
        await new Promise((resolve) => setTimeout(resolve, 400))
        waited += 400
        return {waitedMs: 400, async settle() {}}
      },
    }
    const result = await askResearch(provider({deadlineMs: 500}), {criteria: {pms: 'Buildium'}, company}, inLine)
    assert.equal(result.verdicts.pms?.verdict, 'match')
    assert.equal(waited, 800, 'both turns waited in line, longer than the deadline together')
  })

  it('records what a call stopped mid-request cost (its answer is billed anyway), then stops', async () => {
    // The task is stopped (its run completed, its lease lost) while the model is answering: the provider bills the
    // request whether or not rvx reads the answer. Before, the call was aborted and recorded at $0.
    fake.reply({...completion({content: JSON.stringify(GOOD_RESEARCH)}, {prompt_tokens: 1200, completion_tokens: 300}), delayMs: 600})
    const stopped = new AbortController()
    setTimeout(() => stopped.abort(new Error('lease lost')), 150)
    const error = await askResearch(
      provider(),
      {criteria: {}, company},
      freeCall((u: LlmUsage) => usage.push(u), stopped.signal),
    ).catch((e) => e)
    assert.ok(error instanceof Error)
    assert.equal(error.message, 'lease lost', 'the task stops, with the reason it was stopped for')
    assert.equal(fake.requests.length, 1, 'nothing more is sent')
    assert.equal(usage.length, 1)
    assert.equal(usage[0].outcome, 'ok')
    assert.equal(usage[0].inputTokens, 1200)
    assert.equal(usage[0].outputTokens, 300)
    // gpt-4.1-mini: 1,160 uncached and 40 cached input tokens, 300 output tokens.
    assert.ok(Math.abs(usage[0].costUsd - (1160 * 0.4 + 40 * 0.1 + 300 * 1.6) / 1e6) < 1e-12, `cost ${usage[0].costUsd}`)
  })

  it('records an answer cut off at the token limit as malformed, says it was truncated, and repairs once', async () => {
    fake.reply(truncated('{"fit": "yes", "score": 82, "reasons": ["tenant por'), answer(GOOD_RESEARCH))
    const result = await askResearch(provider(), {criteria: {}, company}, ctx())
    assert.equal(result.unitsEstimate, 120)
    assert.deepEqual(
      usage.map((u) => u.outcome),
      ['malformed', 'ok'],
    )
    const repair = fake.requests[1].body.messages.at(-1)
    assert.match(repair.content, /cut off at the output token limit \(finish_reason "length"\)/)
    assert.doesNotMatch(repair.content, /not JSON/)

    fake.reset()
    usage = []
    fake.reply(truncated('{"fit": "ye'), truncated('{"fi'))
    const error = await askResearch(provider(), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.equal(error.name, 'PermanentError')
    assert.match(error.message, /after a repair turn: the answer was cut off at the output token limit/)
    assert.deepEqual(
      usage.map((u) => u.outcome),
      ['malformed', 'malformed'],
    )
  })

  it('treats a model API timeout as transient (classified by its class, APIConnectionTimeoutError)', async () => {
    fake.reply({...answer(GOOD_RESEARCH), delayMs: 3000})
    const error = await askResearch(provider({}, 200), {criteria: {}, company}, ctx()).catch((e) => e)
    assert.deepEqual(classifyError(error), {type: 'transient'})
    assert.match(error.message, /the model API did not answer within 200 ms/)
    assert.equal(usage[0].outcome, 'error')
  })
})
