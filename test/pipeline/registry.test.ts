import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {optInStageFlags} from '../../src/cli/flags.js'
import {MonitorMetrics} from '../../src/monitor/metrics.js'
import {cacheStats, writeCache} from '../../src/pipeline/cache.js'
import {COMPANY_COLUMNS, companyColumns, renderRun} from '../../src/pipeline/export.js'
import {createRun} from '../../src/pipeline/runs.js'
import {runsOverview} from '../../src/pipeline/run-views.js'
import {CACHE_KINDS, checkedRegistry, STAGES, stagesOf} from '../../src/pipeline/stages/index.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * The stage registry is the one list of stages: metrics, cache kinds, the
 * command line's opt-in flags, progress, and export columns follow it, and
 * the database checks none of it (a new stage widens no CHECK).
 */
describe('pipeline: the stage registry drives what lists stages', () => {
  const t = useFreshDatabase()
  const SIZE = {quantity: 2, contactsMin: 1, contactsMax: 3}

  it('metrics have a series for every stage kind and every cached stage from the start', async () => {
    const server = await new MonitorMetrics().serve(0, '127.0.0.1')
    try {
      const body = await (await fetch(server.url)).text()
      for (const stage of STAGES) assert.match(body, new RegExp(`rvx_task_events_total\\{kind="${stage.kind}",event="completed"\\} 0`), stage.name)
      for (const kind of CACHE_KINDS) assert.match(body, new RegExp(`rvx_research_cache_entries\\{kind="${kind}"\\} 0`), kind)
    } finally {
      await server.close()
    }
  })

  it('cache kinds are the stages that cache, each with its stats; the table takes any of them (no CHECK to widen)', async () => {
    assert.deepEqual(
      CACHE_KINDS,
      STAGES.filter((s) => s.cached).map((s) => s.name),
    )
    for (const kind of CACHE_KINDS) await writeCache(t.db, kind, `k-${kind}`, {domain: 'a.example', provider: 'p', value: {}, costUsd: 0})
    assert.deepEqual(
      (await cacheStats(t.db, CACHE_KINDS)).map((s) => [s.kind, s.entries]),
      CACHE_KINDS.map((k) => [k, 1]),
    )
  })

  it("a run's stages, progress bars and export columns are its stages' declarations; opt-in stages are flags", async () => {
    const optIn = STAGES.filter((s) => s.optIn)
    assert.ok(optIn.length > 0)
    assert.deepEqual(
      Object.keys(optInStageFlags()),
      optIn.map((s) => s.name),
    )

    const plain = await createRun(t.db, {criteria: {state: 'TX'}, size: SIZE, provider: 'simulated'})
    const all = await createRun(t.db, {criteria: {state: 'TX'}, size: SIZE, provider: 'simulated', options: {stages: optIn.map((s) => s.name)}})
    assert.deepEqual(
      stagesOf(plain).map((s) => s.name),
      STAGES.filter((s) => !s.optIn).map((s) => s.name),
    )
    assert.deepEqual(
      stagesOf(all).map((s) => s.name),
      STAGES.map((s) => s.name),
    )

    const [overviewAll] = await runsOverview(t.db, {id: all.id, limit: 1})
    const [overviewPlain] = await runsOverview(t.db, {id: plain.id, limit: 1})
    assert.deepEqual(
      Object.keys(overviewAll.percent),
      STAGES.map((s) => s.name),
    )
    assert.deepEqual(
      Object.keys(overviewPlain.percent),
      stagesOf(plain).map((s) => s.name),
    )

    const declared = STAGES.flatMap((s) => (s.columns ?? []).map((c) => c.name))
    assert.ok(declared.length > 0)
    assert.deepEqual(companyColumns(all), [...COMPANY_COLUMNS, ...declared])
    assert.deepEqual(companyColumns(plain), [...COMPANY_COLUMNS, ...stagesOf(plain).flatMap((s) => (s.columns ?? []).map((c) => c.name))])
    // The export's header is the run's columns.
    assert.equal((await renderRun(t.db, all.id)).files.companies, `${companyColumns(all).join(',')}\n`)
  })

  it('a registry that breaks its rules fails at load, naming what is wrong', () => {
    assert.deepEqual(checkedRegistry([...STAGES]), STAGES)
    const [discovery, research, contacts] = STAGES
    assert.throws(() => checkedRegistry([...STAGES, {...contacts, name: 'enrich2'}]), /"contact" names two stages/)
    assert.throws(() => checkedRegistry([...STAGES, {...contacts, name: 'done', kind: 'finish'}]), /"done" is what a finished run's stage says/)
    assert.throws(() => checkedRegistry([discovery, research]), /no stage with the selected trigger leads the run/)
    assert.throws(() => checkedRegistry([discovery, research, {...contacts, optIn: {summary: 'x'}}]), /no stage with the selected trigger leads the run/)
  })

  it('the database takes any stage name for a run and a fact (the registry, not a CHECK, says which exist)', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: SIZE, provider: 'simulated'})
    for (const stage of STAGES) await sql`update runs set stage = ${stage.name} where id = ${run.id}`.execute(t.db)
    const company = await t.db
      .insertInto('companies')
      .values({run_id: run.id, domain: 'a.example', name: 'A', reasons: '[]', sources: '[]', discovered_by: 'simulated'})
      .returning('id')
      .executeTakeFirstOrThrow()
    for (const stage of STAGES)
      await t.db
        .insertInto('company_facts')
        .values({run_id: run.id, company_id: company.id, stage: stage.name, value: '{}', evidence: '[]', provider: 'simulated'})
        .execute()
  })
})
