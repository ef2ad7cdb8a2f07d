import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {rvx} from '../helpers/cli.js'
import {type Canary, startCanary} from '../helpers/capture-servers.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FakeDns} from '../helpers/dns-server.js'
import {answer, FakeOpenAI, toolCalls} from '../helpers/fake-openai.js'

type Call = [name: string, args: unknown]

/** What a hostile model asks the tools for: this machine in every form, and cloud metadata. */
function probes(port: number): Array<{call: Call; metadata?: boolean}> {
  const page = (url: string, metadata = false) => ({call: ['fetch_page', {url}] as Call, metadata})
  return [
    page(`http://[::ffff:127.0.0.1]:${port}/`),
    page(`http://[0:0:0:0:0:ffff:127.0.0.1]:${port}/`),
    page(`http://[::ffff:7f00:1]:${port}/`),
    page(`http://[::127.0.0.1]:${port}/`),
    page(`http://[64:ff9b::127.0.0.1]:${port}/`),
    page(`http://[64:ff9b:1::7f00:1]:${port}/`),
    page(`http://[2002:7f00:1::1]:${port}/`),
    page(`http://[fec0::1]:${port}/`),
    page(`http://[100::1]:${port}/`),
    page(`http://[2001:db8::1]:${port}/`),
    page(`http://[::1]:${port}/`),
    page(`http://127.0.0.1:${port}/`),
    page(`http://2130706433:${port}/`),
    page(`http://0x7f.1:${port}/`),
    page(`http://loopback.test:${port}/`),
    page(`http://mapped.test:${port}/`),
    page(`http://mixed.test:${port}/`),
    page(`http://[::ffff:a9fe:a9fe]:${port}/latest/meta-data/`, true),
    page(`http://169.254.169.254:${port}/latest/meta-data/`, true),
    page(`http://[fd00:ec2::254]:${port}/latest/meta-data/`, true),
    page(`http://metadata.test:${port}/latest/meta-data/`, true),
    {call: ['detect_pms', {domain: `[::ffff:127.0.0.1]:${port}`}] as Call},
    {call: ['detect_pms', {domain: `loopback.test:${port}`}] as Call},
  ]
}

const REFUSED = /^error: refusing to fetch .+ \(set RVX_ALLOW_PRIVATE_FETCH=1 to allow private addresses\)$/
const METADATA = /^error: refusing to fetch .+a cloud metadata or link-local address, never fetched$/

describe('e2e: rvx orchestrate with a scripted model that probes the fetch guard (spawned)', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()
  const fake = new FakeOpenAI()
  const dns = new FakeDns()
  let canary: Canary
  let out: string
  /** The tool results of the first discovery conversation, taken from the request that follows them. */
  let results: string[]

  before(async () => {
    await fake.start()
    await dns.start()
    canary = await startCanary()
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-e2e-guard-'))
  })

  after(async () => {
    await fake.stop()
    await dns.stop()
    await canary.close()
    fs.rmSync(out, {recursive: true, force: true})
  })

  beforeEach(() => {
    dns.reset()
    dns.set('loopback.test', 'A', ['127.0.0.1'])
    dns.set('mapped.test', 'AAAA', ['::ffff:127.0.0.1'])
    dns.set('mixed.test', 'A', ['93.184.216.34', '127.0.0.1'])
    dns.set('metadata.test', 'A', ['169.254.169.254'])
    canary.connections = 0
    canary.requests.length = 0
    fake.reset()
    results = []
  })

  /**
   * Discovery: the probes, 8 per turn; then one turn of 40 calls; then an answer. Research and contacts
   * answer at once, so the run completes with one company.
   */
  function script(calls: Call[], forty: Call) {
    const turns: Call[][] = []
    for (let i = 0; i < calls.length; i += 8) turns.push(calls.slice(i, i + 8))
    turns.push(Array.from({length: 40}, () => forty))
    fake.route = (body) => {
      const prompt: string = body.messages[1].content
      if (prompt.startsWith('Find') && prompt.includes('property-management companies')) {
        const turn = body.messages.filter((m: {role: string}) => m.role === 'assistant').length
        if (turn < turns.length) return toolCalls(turns[turn])
        if (results.length === 0) results = body.messages.filter((m: {role: string}) => m.role === 'tool').map((m: {content: string}) => m.content)
        return answer({companies: [{name: 'Lone Star PM', domain: 'lonestar.example', city: 'Austin', state: 'TX', sources: ['https://dir.example']}]})
      }

      if (prompt.startsWith('Research')) return answer({portfolio: 'residential', confidence: 'high', reasons: ['checked'], sources: [], units_estimate: 120})
      return answer({contacts: [{full_name: 'Dana Broker', title: 'Broker/Owner', tier: 1, confidence: 'high', sources: []}]})
    }
  }

  const env = (extra: NodeJS.ProcessEnv = {}) => ({
    DATABASE_URL: t.url,
    OPENAI_API_KEY: 'sk-fake',
    OPENAI_BASE_URL: fake.url,
    OPENAI_MODEL: 'gpt-4.1-mini',
    RVX_DNS_SERVER: dns.address,
    RVX_ALLOW_PRIVATE_FETCH: '',
    ...extra,
  })

  it('refuses every probe, runs 8 of a turn of 40 tool calls, and the canary on 127.0.0.1 receives nothing', async () => {
    const list = probes(canary.port)
    script(
      list.map((p) => p.call),
      ['fetch_page', {url: `http://[::ffff:127.0.0.1]:${canary.port}/forty`}],
    )
    const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '1', '--accept-unknown', 'state,site', '--output-dir', out, '--json'], {
      env: env(),
    })
    assert.equal(res.code, 0, res.stderr)
    assert.equal(JSON.parse(res.stdout).status, 'completed')

    assert.equal(canary.connections, 0, `the canary was reached: ${canary.requests.join(', ')}`)
    assert.equal(results.length, list.length + 40, 'every tool call got a result')
    list.forEach((probe, i) => assert.match(results[i], probe.metadata ? METADATA : REFUSED, JSON.stringify(probe.call)))
    const forty = results.slice(list.length)
    assert.equal(forty.filter((r) => REFUSED.test(r)).length, 8, 'the first 8 of the 40 were run (and refused)')
    assert.equal(forty.filter((r) => r === 'error: not run: at most 8 tool calls per turn; ask again for what you still need').length, 32)
    assert.ok(dns.count('loopback.test', 'A') >= 1 && dns.count('metadata.test', 'A') >= 1, 'names were resolved through RVX_DNS_SERVER')
  })

  it('with RVX_ALLOW_PRIVATE_FETCH=1 reaches the canary when asked, and still never the cloud metadata', async () => {
    const metadata = probes(canary.port).filter((p) => p.metadata)
    script(
      [...metadata.map((p) => p.call), ['fetch_page', {url: `http://127.0.0.1:${canary.port}/allowed`}]],
      ['fetch_page', {url: `http://169.254.169.254:${canary.port}/latest/meta-data/`}],
    )
    // About the fetch guard: the earlier run's cached research and delivered company stay out of it (--fresh, --include-delivered).
    const res = await rvx(
      [
        'orchestrate',
        '--criteria',
        '{"state":"TX"}',
        '--quantity',
        '1',
        '--accept-unknown',
        'state,site',
        '--fresh',
        '--include-delivered',
        '--output-dir',
        out,
        '--json',
      ],
      {
        env: env({RVX_ALLOW_PRIVATE_FETCH: '1'}),
      },
    )
    assert.equal(res.code, 0, res.stderr)

    assert.deepEqual(canary.requests, ['GET /allowed'], 'only the private page asked for, once')
    metadata.forEach((probe, i) => assert.match(results[i], METADATA, JSON.stringify(probe.call)))
    assert.match(results[metadata.length], /canary: internal page/)
    assert.equal(results.slice(metadata.length + 1).filter((r) => METADATA.test(r)).length, 8)
  })
})
