import assert from 'node:assert/strict'
import http from 'node:http'
import type {AddressInfo} from 'node:net'

import {OpenAIProvider} from '../../src/agents/openai.js'
import {searchBackendFromEnv} from '../../src/agents/tools/search-web.js'
import {answer, FakeOpenAI, toolCall} from '../helpers/fake-openai.js'
import {freeCall} from '../helpers/call-context.js'
import {askDiscovery} from '../../src/pipeline/stages/discovery.js'

const QUERY = 'property management "Austin, TX" & Buildium'
const hits = (n: number) => Array.from({length: n}, (_, i) => ({title: `PM ${i}`, url: `https://pm${i}.example/`, text: `Rentals in Austin #${i}`}))

interface Seen {
  method: string
  path: string
  query: URLSearchParams
  headers: http.IncomingHttpHeaders
  body: string
}

/**
 * The three search APIs as local servers on 127.0.0.1, each answering the way
 * the real one does: SearXNG (GET /searxng/search?format=json), Brave
 * (GET /brave/res/v1/web/search, key in x-subscription-token) and Serper
 * (POST /serper/search, key in x-api-key, JSON body). /status/N answers N.
 */
describe('agent tools: search_web backends against local servers', function () {
  let server: http.Server
  let base: string
  const seen: Seen[] = []

  before(async () => {
    server = http.createServer((req, res) => {
      let body = ''
      req.on('data', (d) => (body += d))
      req.on('end', () => {
        const url = new URL(req.url!, 'http://x')
        seen.push({method: req.method!, path: url.pathname, query: url.searchParams, headers: req.headers, body})
        const json = (status: number, data: unknown) => res.writeHead(status, {'content-type': 'application/json'}).end(JSON.stringify(data))
        if (url.pathname.startsWith('/status/')) return json(Number(url.pathname.split('/')[2]), {error: 'no'})
        if (url.pathname === '/searxng/search' && req.method === 'GET') {
          return json(200, {query: url.searchParams.get('q'), results: hits(12).map((h) => ({title: h.title, url: h.url, content: h.text, engine: 'x'}))})
        }

        if (url.pathname === '/brave/res/v1/web/search' && req.method === 'GET') {
          if (req.headers['x-subscription-token'] !== 'brave-key') return json(401, {error: 'bad token'})
          return json(200, {type: 'search', web: {results: hits(3).map((h) => ({title: h.title, url: h.url, description: h.text}))}})
        }

        if (url.pathname === '/serper/search' && req.method === 'POST') {
          if (req.headers['x-api-key'] !== 'serper-key') return json(403, {error: 'bad key'})
          return json(200, {
            searchParameters: JSON.parse(body),
            organic: hits(2).map((h, i) => ({title: h.title, link: h.url, snippet: h.text, position: i + 1})),
          })
        }

        json(404, {error: 'not found'})
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  after(() => server.close())
  beforeEach(() => {
    seen.length = 0
  })

  it('SearXNG: GET /search?format=json with the query, at most 10 results as title, url, snippet', async () => {
    const backend = searchBackendFromEnv({RVX_SEARXNG_URL: `${base}/searxng/`})!
    assert.equal(backend.name, 'searxng')
    const results = await backend.search(QUERY)
    assert.equal(seen.length, 1)
    assert.equal(seen[0].path, '/searxng/search')
    assert.equal(seen[0].query.get('format'), 'json')
    assert.equal(seen[0].query.get('q'), QUERY)
    assert.equal(results.length, 10)
    assert.deepEqual(results[0], {title: 'PM 0', url: 'https://pm0.example/', snippet: 'Rentals in Austin #0'})
  })

  it('Brave: its key in x-subscription-token, the query and count=10 in the URL, web.results mapped', async () => {
    const backend = searchBackendFromEnv({BRAVE_API_KEY: 'brave-key', RVX_BRAVE_URL: `${base}/brave/res/v1/web/search`})!
    assert.equal(backend.name, 'brave')
    const results = await backend.search(QUERY)
    assert.equal(seen[0].method, 'GET')
    assert.equal(seen[0].query.get('q'), QUERY)
    assert.equal(seen[0].query.get('count'), '10')
    assert.equal(seen[0].headers['x-subscription-token'], 'brave-key')
    assert.deepEqual(
      results,
      hits(3).map((h) => ({title: h.title, url: h.url, snippet: h.text})),
    )
  })

  it('Serper: a JSON POST {q, num} with its key in x-api-key, organic results mapped', async () => {
    const backend = searchBackendFromEnv({SERPER_API_KEY: 'serper-key', RVX_SERPER_URL: `${base}/serper/search`})!
    assert.equal(backend.name, 'serper')
    const results = await backend.search(QUERY)
    assert.equal(seen[0].method, 'POST')
    assert.equal(seen[0].headers['x-api-key'], 'serper-key')
    assert.match(String(seen[0].headers['content-type']), /application\/json/)
    assert.deepEqual(JSON.parse(seen[0].body), {q: QUERY, num: 10})
    assert.deepEqual(
      results,
      hits(2).map((h) => ({title: h.title, url: h.url, snippet: h.text})),
    )
  })

  it('the first backend set wins (SearXNG, then Brave, then Serper); none set: no search_web', () => {
    const all = {RVX_SEARXNG_URL: `${base}/searxng`, BRAVE_API_KEY: 'b', SERPER_API_KEY: 's'}
    assert.equal(searchBackendFromEnv(all)!.name, 'searxng')
    assert.equal(searchBackendFromEnv({...all, RVX_SEARXNG_URL: ''})!.name, 'brave')
    assert.equal(searchBackendFromEnv({SERPER_API_KEY: 's'})!.name, 'serper')
    assert.equal(searchBackendFromEnv({}), null)
  })

  it('a refused key is permanent and never echoed; 429, 5xx and an unreachable backend are transient', async () => {
    const brave = searchBackendFromEnv({BRAVE_API_KEY: 'wrong-brave-key', RVX_BRAVE_URL: `${base}/brave/res/v1/web/search`})!
    await assert.rejects(
      brave.search(QUERY),
      (e: Error) => e.name === 'PermanentError' && /refused its API key \(HTTP 401\)/.test(e.message) && !e.message.includes('wrong-brave-key'),
    )
    const serper = searchBackendFromEnv({SERPER_API_KEY: 'wrong-serper-key', RVX_SERPER_URL: `${base}/serper/search`})!
    await assert.rejects(
      serper.search(QUERY),
      (e: Error) => e.name === 'PermanentError' && /HTTP 403/.test(e.message) && !e.message.includes('wrong-serper-key'),
    )
    for (const status of [429, 503]) {
      const backend = searchBackendFromEnv({SERPER_API_KEY: 'k', RVX_SERPER_URL: `${base}/status/${status}`})!
      await assert.rejects(backend.search(QUERY), (e: Error) => e.name === 'TransientError' && e.message.includes(`HTTP ${status}`), String(status))
    }

    const notFound = searchBackendFromEnv({RVX_SEARXNG_URL: `${base}/nowhere`})!
    await assert.rejects(notFound.search(QUERY), (e: Error) => e.name === 'PermanentError' && /HTTP 404/.test(e.message))
    // A port nobody listens on: take one, then close it.
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const down = searchBackendFromEnv({RVX_SEARXNG_URL: `http://127.0.0.1:${port}`})!
    await assert.rejects(down.search(QUERY), (e: Error) => e.name === 'TransientError' && /unreachable/.test(e.message))
  })

  it('the openai agent offers search_web and hands the backend results back to the model', async () => {
    const fake = await new FakeOpenAI().start()
    try {
      fake.reply(toolCall('search_web', {query: QUERY}), answer({companies: [{name: 'PM 0', domain: 'pm0.example', sources: ['https://pm0.example/']}]}))
      const provider = new OpenAIProvider({
        apiKey: 'sk-test',
        baseURL: fake.url,
        model: 'gpt-4.1-mini',
        timeoutMs: 5000,
        limits: {maxTurns: 4},
        search: searchBackendFromEnv({RVX_SEARXNG_URL: `${base}/searxng`}),
      })
      const found = await askDiscovery(provider, {criteria: {state: 'TX'}, want: 1, exclude: []}, freeCall())
      assert.deepEqual(
        found.map((c) => c.domain),
        ['pm0.example'],
      )
      assert.ok(fake.requests[0].body.tools.some((t: {function: {name: string}}) => t.function.name === 'search_web'))
      assert.equal(seen.filter((s) => s.path === '/searxng/search').length, 1)
      const tool = fake.requests[1].body.messages.find((m: {role: string}) => m.role === 'tool')
      // Search results reach the model fenced as untrusted data.
      const [fence, body, end] = (tool.content as string).split('\n')
      assert.match(fence, /^<<<untrusted search results /)
      assert.equal(end, '<<<end untrusted>>>')
      assert.deepEqual(JSON.parse(body).slice(0, 2), [
        {title: 'PM 0', url: 'https://pm0.example/', snippet: 'Rentals in Austin #0'},
        {title: 'PM 1', url: 'https://pm1.example/', snippet: 'Rentals in Austin #1'},
      ])
    } finally {
      await fake.stop()
    }
  })
})
