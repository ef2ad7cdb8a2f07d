import assert from 'node:assert/strict'
import net from 'node:net'
import {sql} from 'kysely'

import {registerSecret, scrub} from '../../src/shared/secrets.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FakeOpenAI} from '../helpers/fake-openai.js'

/** A port on 127.0.0.1 where nothing listens. */
async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** An upstream server that echoes the key back in its error body must not get it stored, logged or printed. */
describe('secrets: echoed by an upstream error, never stored or printed', function () {
  this.timeout(90_000)
  const t = useFreshDatabase()
  const fake = new FakeOpenAI()
  // Not shaped like an OpenAI key on purpose: only knowing the environment's secrets can catch it.
  const KEY = 'zz-live-4f9a8b7c6d5e4f3a'

  before(() => fake.start())
  after(() => fake.stop())

  it('a 400 whose body repeats the Authorization header: the key is in no table, not on stdout or stderr', async () => {
    fake.route = (_body, {auth}) => ({status: 400, body: {error: {message: `bad request from ${auth?.replace(/^Bearer /, '')} (we echo what you send)`}}})
    const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '1', '--json', '--log-level', 'debug'], {
      env: {DATABASE_URL: t.url, OPENAI_API_KEY: KEY, OPENAI_BASE_URL: fake.url},
    })
    assert.ok(fake.requests.length > 0 && fake.requests[0].auth === `Bearer ${KEY}`, 'the server did get the key (and echoed it)')
    assert.ok(!res.stdout.includes(KEY) && !res.stderr.includes(KEY), 'not printed')

    const {rows} = await sql<{text: string}>`
      select coalesce(last_error, '') || ' ' || coalesce(result::text, '') as text from tasks
      union all select coalesce(reason, '') from task_events
      union all select coalesce(notes, '') || ' ' || options::text || ' ' || criteria::text from runs
      union all select subject || ' ' || details::text || ' ' || coalesce(last_error, '') from alerts
      union all select provider || ' ' || model || ' ' || outcome from llm_calls`.execute(t.db)
    const stored = rows.map((r) => r.text).join('\n')
    assert.match(stored, /bad request from \[redacted\]/, 'the error was stored, without the key')
    assert.ok(!stored.includes(KEY), 'the key is in no table')
  })

  /** Every text rvx stores about tasks, runs, alerts and model calls. */
  async function storedText(): Promise<string> {
    const {rows} = await sql<{text: string}>`
      select coalesce(last_error, '') || ' ' || coalesce(result::text, '') as text from tasks
      union all select coalesce(reason, '') from task_events
      union all select coalesce(notes, '') || ' ' || options::text || ' ' || criteria::text from runs
      union all select subject || ' ' || details::text || ' ' || coalesce(last_error, '') from alerts
      union all select provider || ' ' || model || ' ' || outcome from llm_calls
      union all select key from rate_limits`.execute(t.db)
    return rows.map((r) => r.text).join('\n')
  }

  // Azure-style gateways take the key as a query parameter of the base URL.
  const QUERY_KEY = 'qk-7e1d2c3b4a596877'

  it("a key in OPENAI_BASE_URL's query, endpoint unreachable: no table, log line or output holds it; errors name scheme, host and path", async () => {
    const closed = await closedPort()
    const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '1', '--timeout', '8s', '--log-level', 'debug'], {
      env: {DATABASE_URL: t.url, OPENAI_API_KEY: KEY, OPENAI_BASE_URL: `http://127.0.0.1:${closed}/v1?api-version=2024-06-01&api-key=${QUERY_KEY}`},
      timeoutMs: 60_000,
    })
    const stored = await storedText()
    assert.match(
      stored,
      new RegExp(`cannot reach the model API at http://127\\.0\\.0\\.1:${closed}/v1: .*ECONNREFUSED`),
      'the error was stored, naming the endpoint',
    )
    for (const text of [stored, res.stdout, res.stderr]) assert.ok(!text.includes(QUERY_KEY), text.slice(0, 2000))
  })

  it('a key in the query and an upstream that echoes its URL and headers back: the key is in no table and not printed', async () => {
    fake.route = () => ({status: 400, body: {error: {message: `no route for ${fake.requests.at(-1)!.path} (api-key: ${QUERY_KEY})`}}})
    fake.requests.length = 0
    const res = await rvx(['orchestrate', '--criteria', '{"state":"TX"}', '--quantity', '1', '--timeout', '20s', '--log-level', 'debug'], {
      env: {DATABASE_URL: t.url, OPENAI_API_KEY: KEY, OPENAI_BASE_URL: `${fake.url}?api-key=${QUERY_KEY}`},
      timeoutMs: 60_000,
    })
    assert.ok(fake.requests[0].path.includes(QUERY_KEY), 'the server did get the key in the URL (and echoed it)')
    const stored = await storedText()
    assert.match(stored, /no route for \S*\?api-key=\[redacted\]\S* \(api-key: \[redacted\]\)/)
    for (const text of [stored, res.stdout, res.stderr]) assert.ok(!text.includes(QUERY_KEY), text.slice(0, 2000))
  })

  it('scrub() takes out registered secrets, passwords in URLs and key-shaped tokens', () => {
    registerSecret('hunter2-correct-horse')
    assert.equal(scrub('login with hunter2-correct-horse failed'), 'login with [redacted] failed')
    assert.equal(scrub('postgres://rvx:p4ssw0rd@db:5432/rvx refused'), 'postgres://rvx:[redacted]@db:5432/rvx refused')
    assert.equal(scrub('header was Bearer abcdefghijklmnop1234'), 'header was Bearer [redacted]')
    assert.equal(scrub('key sk-proj-abcdefghijklmnopqrstuv leaked'), 'key [redacted] leaked')
    assert.equal(scrub('nothing secret here'), 'nothing secret here')
    assert.equal(
      scrub('GET https://gw.example/v1?api-version=2024-06-01&sig=abcdef123&token=zzz9'),
      'GET https://gw.example/v1?api-version=2024-06-01&sig=[redacted]&token=[redacted]',
    )
    assert.equal(scrub('https://tok3n0nly@host.example/v1'), 'https://[redacted]@host.example/v1')
    assert.equal(scrub('echoed x-api-key: abcdef0123456789'), 'echoed x-api-key: [redacted]')
  })
})
