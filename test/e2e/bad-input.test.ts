import assert from 'node:assert/strict'

import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * The command line under bad input (issue 11, items 10-18), through the real
 * binary: each bad input gets exit 2 (or the documented code), exactly one
 * line on stderr that names the problem, no stack trace, and nothing written.
 */
describe('e2e: stored text reaches the terminal escaped', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url})

  it('runs list and runs show print control and bidi override characters as escapes, not raw', async () => {
    // Stored by an older rvx or another writer: the criteria schema refuses these at the door now.
    const run = await t.db
      .insertInto('runs')
      .values({
        criteria: JSON.stringify({city: 'Austin\u202Egnp.exe', natural_request: 'x\u001B[2Jy'}),
        quantity: 1,
        contacts_min: 1,
        contacts_max: 3,
        provider: 'simulated',
        options: '{}',
        notes: 'first\rsecond\u2067third\u0085',
        discovery_rounds: 1,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    // eslint-disable-next-line no-control-regex -- looking for raw control characters is the point
    const raw = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069]/
    const list = await rvx(['runs', 'list'], {env: env()})
    assert.equal(list.code, 0, list.stderr)
    assert.doesNotMatch(list.stdout, raw)
    assert.ok(list.stdout.includes('Austin\\u202Egnp.exe'), list.stdout)
    const show = await rvx(['runs', 'show', String(run.id)], {env: env()})
    assert.equal(show.code, 0, show.stderr)
    assert.doesNotMatch(show.stdout, raw)
    assert.ok(show.stdout.includes('first\\u000Dsecond\\u2067third\\u0085'), show.stdout)
  })
})
