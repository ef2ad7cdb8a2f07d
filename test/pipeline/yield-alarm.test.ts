import assert from 'node:assert/strict'
import {sql} from 'kysely'

import type {RunRow} from '../../src/db/schema.js'
import {DEFAULT_RUN_OPTIONS} from '../../src/pipeline/run-options.js'
import {judgeYield} from '../../src/pipeline/yield-alarm.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

/** The facts judgeYield reads, for a run of `quantity` with `rounds` discovery rounds done (of 5). */
function facts(
  quantity: number,
  companies: {candidate: number; qualified: number; disqualified: number; selected: number},
  o: {rounds?: number; maxUsd?: number; pending?: {discovery: number; research: number}; exhausted?: boolean} = {},
) {
  const run = {quantity, discovery_rounds: o.rounds ?? 1, max_usd: o.maxUsd === undefined ? null : String(o.maxUsd)} as unknown as RunRow
  const pending = o.pending ?? {discovery: 0, research: 5}
  return {
    run,
    options: {...DEFAULT_RUN_OPTIONS, discoveryExhausted: o.exhausted},
    companies,
    pending: {contacts: 0, ...pending},
    pendingFor: (trigger: string) => (trigger === 'run' ? pending.discovery : trigger === 'discovered' ? pending.research : 0),
  }
}

describe('pipeline: the yield alarm', function () {
  this.timeout(180_000)
  const t = useFreshDatabase()

  it('judges only after enough research, from the rate so far and what discovery can still supply, or the budget', () => {
    // 0 of 29 researched: not yet judged; of 30, nothing qualifies: nothing will.
    assert.equal(judgeYield(facts(150, {candidate: 10, qualified: 0, disqualified: 29, selected: 0}), 0.5, 30), null)
    const none = judgeYield(facts(150, {candidate: 10, qualified: 0, disqualified: 30, selected: 0}), 0.5, 30)
    assert.deepEqual(none, {researched: 30, qualified: 0, costUsd: 0.5, projected: 0, wanted: 150, cause: 'supply'})
    // 10 of 40 qualified, 20 wanted: 20 candidates left and 4 rounds of about 60 each give about 65 more: no alarm.
    assert.equal(judgeYield(facts(30, {candidate: 20, qualified: 5, disqualified: 30, selected: 5}), 1, 30), null)
    // The same with discovery exhausted: 20 candidates give about 5, far short of 20. 12 of 42 qualified and 40 candidates
    // give about 11 of the 18 still wanted: short, but not far short (less than half): the run goes on.
    assert.equal(judgeYield(facts(30, {candidate: 20, qualified: 5, disqualified: 30, selected: 5}, {exhausted: true}), 1, 30)?.projected, 5)
    assert.equal(judgeYield(facts(30, {candidate: 40, qualified: 6, disqualified: 30, selected: 6}, {exhausted: true}), 1, 30), null)
    assert.equal(judgeYield(facts(30, {candidate: 28, qualified: 6, disqualified: 30, selected: 6}, {exhausted: true}), 1, 30)?.projected, 8)
    // Enough supply, but $0.50 per qualified company for 30 passes a $10 budget.
    assert.equal(judgeYield(facts(30, {candidate: 20, qualified: 5, disqualified: 30, selected: 5}, {maxUsd: 10}), 5, 30)?.cause, 'budget')
    assert.equal(judgeYield(facts(30, {candidate: 20, qualified: 5, disqualified: 30, selected: 5}, {maxUsd: 20}), 5, 30), null)
    // Nothing more to ask for (no research in flight, no round left): the stage's rule ends the run, not the alarm.
    assert.equal(
      judgeYield(facts(150, {candidate: 0, qualified: 0, disqualified: 40, selected: 0}, {exhausted: true, pending: {discovery: 0, research: 0}}), 1, 30),
      null,
    )
    assert.equal(judgeYield(facts(150, {candidate: 10, qualified: 0, disqualified: 30, selected: 0}), 0.5, 0), null, '0 turns it off')
  })

  it('a simulated run whose criteria qualify nothing ends needs_decision with the yield figures before 100 are researched; the monitor alerts', async () => {
    const env = {DATABASE_URL: t.url, OPENAI_API_KEY: '', RVX_SIM_SUPPLY: '600'}
    const res = await rvx(
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"AppFolio","state":"NY"}', '--quantity', '150', '--concurrency', '8', '--json'],
      {env},
    )
    assert.equal(res.code, 4, res.stderr)
    const {runId, progress} = JSON.parse(res.stdout)
    assert.equal(progress.status, 'needs_decision')
    assert.match(
      progress.notes,
      /^Yield alarm: 0 of \d+ researched qualified; \$\d+\.\d{4} \(simulated\) spent; .* resume to continue anyway \(rvx runs resume \d+\)/,
    )
    const researched = progress.companies.qualified + progress.companies.disqualified + progress.companies.selected
    assert.ok(researched >= 30 && researched < 100, `stopped after ${researched} researched`)
    const {rows} = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${`run:${runId}`} and status in ('queued', 'running')`.execute(
      t.db,
    )
    assert.equal(rows[0].n, 0, 'it stopped asking for more')

    const monitor = await rvx(['monitor', '--once'], {env})
    assert.equal(monitor.code, 0, monitor.stderr)
    assert.match(monitor.stderr, new RegExp(`alert: run ${runId} needs a decision: Yield alarm: 0 of \\d+ researched qualified`))

    // "Resume to continue anyway": the alarm no longer judges it, and the queued work canceled at the alarm is back.
    const resumed = await rvx(['runs', 'resume', String(runId), '--detach', '--json'], {env})
    assert.equal(resumed.code, 0, resumed.stderr)
    const after = await sql<{n: number}>`select count(*)::int as n from tasks where scope = ${`run:${runId}`} and status = 'queued'`.execute(t.db)
    assert.ok(after.rows[0].n > 0, 'work queued again')
    assert.equal(JSON.parse(resumed.stdout).status, 'running')
  })

  it('a run over a market earlier runs researched is judged on what it pays to research, not on cache hits', async () => {
    // The run above is left running (resumed, detached): out of the way.
    await sql`update runs set status = 'canceled' where status = 'running'`.execute(t.db)
    const env = {DATABASE_URL: t.url, OPENAI_API_KEY: '', RVX_SIM_SUPPLY: '600'}
    const res = await rvx(
      ['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"AppFolio","state":"NY"}', '--quantity', '150', '--concurrency', '8', '--json'],
      {env},
    )
    assert.equal(res.code, 4, res.stderr)
    const {runId, progress} = JSON.parse(res.stdout)
    assert.match(progress.notes, /^Yield alarm: 0 of \d+ researched qualified/)
    const {rows} = await sql<{cached: number; paid: number}>`
      select count(*) filter (where from_cache)::int as cached, count(*) filter (where not from_cache and status <> 'candidate')::int as paid
      from companies where run_id = ${runId}`.execute(t.db)
    assert.ok(rows[0].cached > 0, 'companies the first run researched were judged from the cache')
    assert.ok(rows[0].paid >= 30, `judged after ${rows[0].paid} companies it paid to research (${rows[0].cached} from the cache)`)
  })
})
