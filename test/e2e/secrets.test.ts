import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {registerSecret, scrub} from '../../src/shared/secrets.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FakeOpenAI} from '../helpers/fake-openai.js'

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

  it('scrub() takes out registered secrets, passwords in URLs and key-shaped tokens', () => {
    registerSecret('hunter2-correct-horse')
    assert.equal(scrub('login with hunter2-correct-horse failed'), 'login with [redacted] failed')
    assert.equal(scrub('postgres://rvx:p4ssw0rd@db:5432/rvx refused'), 'postgres://rvx:[redacted]@db:5432/rvx refused')
    assert.equal(scrub('header was Bearer abcdefghijklmnop1234'), 'header was Bearer [redacted]')
    assert.equal(scrub('key sk-proj-abcdefghijklmnopqrstuv leaked'), 'key [redacted] leaked')
    assert.equal(scrub('nothing secret here'), 'nothing secret here')
  })
})
