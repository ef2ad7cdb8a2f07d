import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {OpenAIProvider} from '../../src/agents/openai.js'
import type {LlmUsage} from '../../src/pipeline/provider.js'
import {classifyError} from '../../src/runtime/errors.js'
import {answer, completion, FakeOpenAI, toolCall} from '../helpers/fake-openai.js'

const GOOD_RESEARCH = {
  fit: 'yes',
  score: 82,
  tier: 'medium',
  confidence: 'high',
  reasons: ['tenant portal on Buildium'],
  sources: ['https://acme.example'],
  pms: 'Buildium',
  units_estimate: 120,
}

describe('openai provider against a fake OpenAI-compatible server', function () {
  const fake = new FakeOpenAI()
  let site: http.Server
  let siteUrl: string
  let usage: LlmUsage[]

  before(async () => {
    await fake.start()
    site = http.createServer((_req, res) => {
      res.writeHead(200, {'content-type': 'text/html'})
      res.end('<html><body><h1>Acme Property Management</h1><a href="https://acme.managebuilding.com/Resident">Resident Portal</a></body></html>')
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
  })

  function provider(): OpenAIProvider {
    return new OpenAIProvider({
      apiKey: 'sk-test-secret',
      baseURL: fake.url,
      model: 'gpt-4.1-mini',
      timeoutMs: 5000,
      maxTurns: 6,
      search: null,
      allowPrivateFetch: true,
    })
  }

  const ctx = () => ({signal: new AbortController().signal, record: (u: LlmUsage) => usage.push(u)})
  const company = {name: 'Acme PM', domain: 'acme.example', website: 'https://acme.example', sources: []}

  it('runs a multi-turn tool-calling conversation and validates the answer', async () => {
    fake.reply(toolCall('fetch_page', {url: siteUrl}), answer(GOOD_RESEARCH))
    const result = await provider().research({criteria: {pms: 'Buildium'}, company}, ctx())
    assert.equal(result.fit, 'yes')
    assert.equal(result.pms, 'Buildium')
    assert.equal(result.unitsEstimate, 120)

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
    const result = await provider().research({criteria: {}, company}, ctx())
    assert.equal(result.score, 82)
    const repair = fake.requests[1].body.messages.at(-1)
    assert.equal(repair.role, 'user')
    assert.match(repair.content, /did not validate: the answer is not JSON/)
  })

  it('treats empty output after tools as malformed, and fails permanently if the repair fails too', async () => {
    fake.reply(toolCall('detect_pms', {domain: 'acme.example'}), completion({content: ''}), answer({fit: 'maybe'}))
    await assert.rejects(
      provider().research({criteria: {}, company}, ctx()),
      (e: Error) => e.name === 'PermanentError' && /failed validation after a repair turn: fit/.test(e.message),
    )
  })

  it('hands 429 with Retry-After to the runtime as a snooze', async () => {
    fake.reply({status: 429, headers: {'retry-after': '7'}, body: {error: {message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded'}}})
    const error = await provider()
      .research({criteria: {}, company}, ctx())
      .catch((e) => e)
    assert.deepEqual(classifyError(error), {type: 'snooze', retryAfterMs: 7000})
    assert.equal(usage[0].outcome, 'rate_limited')
    assert.equal(fake.requests.length, 1, 'the SDK does not retry on its own')
  })

  it('lets a 500 be retried by the runtime (transient)', async () => {
    fake.reply({status: 500, body: {error: {message: 'upstream exploded'}}})
    const error = await provider()
      .research({criteria: {}, company}, ctx())
      .catch((e) => e)
    assert.deepEqual(classifyError(error), {type: 'transient'})
    assert.equal(fake.requests.length, 1)
  })

  it('fails fast on 401 with a message naming the variable to fix, without the key', async () => {
    fake.reply({status: 401, body: {error: {message: 'Incorrect API key provided: sk-test-secret', type: 'invalid_request_error', code: 'invalid_api_key'}}})
    const error = await provider()
      .research({criteria: {}, company}, ctx())
      .catch((e) => e)
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
      maxTurns: 6,
      search: 'hosted',
      searchModel: 'gpt-4o-mini-search-preview',
    })
    fake.reply(
      toolCall('search_web', {query: 'Buildium property management Austin TX'}),
      completion({
        content: 'Acme PM manages homes in Austin.',
        annotations: [{type: 'url_citation', url_citation: {title: 'Acme PM', url: 'https://acme.example', start_index: 0, end_index: 7}}],
      }),
      answer({companies: [{name: 'Acme PM', domain: 'acme.example', sources: ['https://acme.example']}]}),
    )
    const found = await hosted.discover({criteria: {state: 'TX'}, want: 1, exclude: [], round: 1}, ctx())
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

  it('discovers and finds contacts through the same loop, dropping generic inboxes', async () => {
    fake.reply(answer({companies: [{name: 'Acme PM', domain: 'acme.example', sources: ['https://dir.example']}]}))
    const found = await provider().discover({criteria: {state: 'TX'}, want: 5, exclude: ['old.example'], round: 1}, ctx())
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
    const people = await provider().findContacts({company, min: 1, max: 3}, ctx())
    assert.deepEqual(
      people.map((p) => p.fullName),
      ['Ann Owner'],
    )
  })
})
