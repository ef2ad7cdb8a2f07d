import assert from 'node:assert/strict'
import {sql} from 'kysely'

import {cacheKey, cacheStats, clearCache, DEFAULT_CACHE_TTL_MS, metered, readCache, writeCache} from '../../src/pipeline/cache.js'
import {CACHE_KINDS} from '../../src/pipeline/stages/index.js'
import {type LlmUsage, noRateInfo} from '../../src/pipeline/provider.js'
import {freeCall} from '../helpers/call-context.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * The research cache's own parts (the pipeline tests drive it through runs):
 * what its key depends on, the default TTL, what a metered context adds up,
 * and the stats and clearing behind `rvx cache`.
 */
describe('pipeline: the research cache, its key and its table', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  beforeEach(async () => {
    await sql`truncate research_cache`.execute(t.db)
  })

  it('the key is what the answer depended on: kind, domain, provider, the criteria (where the stage gives them) and extra; not their order or exclude_domains', () => {
    const research = (criteria: Record<string, unknown>, extra?: string) =>
      cacheKey('research', {domain: 'acme.example', provider: 'sim', criteria: criteria as never, extra})
    const base = research({state: 'TX', pms: 'Buildium'})
    assert.match(base, /^[0-9a-f]{64}$/)
    assert.equal(research({pms: 'Buildium', state: 'TX'}), base, 'the order of the criteria does not matter')
    assert.equal(research({state: 'TX', pms: 'Buildium', exclude_domains: ['x.example']}), base, 'who is kept out does not change what is true of a company')
    assert.equal(research({state: 'TX', pms: 'Buildium', city: null, units_min: undefined}), base, 'unset criteria are no criteria')
    assert.equal(research({state: 'TX', pms: 'Buildium'}, ''), base, 'no extra is an empty one')
    assert.notEqual(research({state: 'TX'}), base)
    assert.notEqual(research({state: 'TX', pms: 'AppFolio'}), base)
    assert.notEqual(research({state: 'TX', pms: 'Buildium'}, 'v2'), base)
    assert.notEqual(cacheKey('research', {domain: 'other.example', provider: 'sim', criteria: {state: 'TX', pms: 'Buildium'}}), base)
    assert.notEqual(cacheKey('research', {domain: 'acme.example', provider: 'openai gpt-4.1-mini', criteria: {state: 'TX', pms: 'Buildium'}}), base)
    // The parts are kept apart: moving a character from one to the next makes another key.
    assert.notEqual(cacheKey('contacts', {domain: 'ab.example', provider: 'c'}), cacheKey('contacts', {domain: 'ab.exampl', provider: 'ec'}))

    // A stage that judges against no criteria gives none (contacts): its key does not depend on them; the kind is part of it.
    const contacts = cacheKey('contacts', {domain: 'acme.example', provider: 'sim'})
    assert.notEqual(cacheKey('contacts', {domain: 'acme.example', provider: 'sim', criteria: {state: 'NC'}}), contacts)
    assert.notEqual(cacheKey('research', {domain: 'acme.example', provider: 'sim'}), contacts)
  })

  it('an entry is reused for 30 days by default; a newer answer replaces it', async () => {
    const key = cacheKey('research', {domain: 'a.example', provider: 'sim', criteria: {state: 'TX'}})
    await writeCache(t.db, 'research', key, {domain: 'a.example', provider: 'sim', value: {v: 1}, costUsd: 0.01})
    await sql`update research_cache set created_at = now() - interval '29 days'`.execute(t.db)
    assert.deepEqual((await readCache(t.db, 'research', key, DEFAULT_CACHE_TTL_MS))?.value, {v: 1})
    await sql`update research_cache set created_at = now() - interval '31 days'`.execute(t.db)
    assert.equal(await readCache(t.db, 'research', key, DEFAULT_CACHE_TTL_MS), null)
    assert.equal(await readCache(t.db, 'contacts', key, DEFAULT_CACHE_TTL_MS), null, 'kinds do not share entries')

    await writeCache(t.db, 'research', key, {domain: 'a.example', provider: 'sim', value: {v: 2}, costUsd: 0.02})
    assert.deepEqual((await readCache(t.db, 'research', key, 60_000))?.value, {v: 2})
  })

  it('a metered context adds up what its calls cost and still records each', async () => {
    const recorded: LlmUsage[] = []
    const ctx = metered(freeCall((u) => recorded.push(u)))
    const usage = {provider: 'sim', model: 'm', inputTokens: 1, outputTokens: 1, cachedTokens: 0, latencyMs: 1, outcome: 'ok'} as const
    const plan = {quota: null, inputTokens: 1, outputTokens: 1, maxUsd: null}
    assert.equal(ctx.spentUsd(), 0)
    await (await ctx.admit(plan)).settle({usage: {...usage, costUsd: 0.25}, rate: noRateInfo(200)})
    await (await ctx.admit(plan)).settle({usage: {...usage, costUsd: 0.5}, rate: noRateInfo(200)})
    assert.equal(ctx.spentUsd(), 0.75)
    assert.equal(recorded.length, 2)
  })

  it('stats count entries, fresh ones, hits and what the hits saved, per kind; clearing takes all or only the old', async () => {
    const key = (domain: string) => cacheKey('research', {domain, provider: 'sim', criteria: {state: 'TX'}})
    await writeCache(t.db, 'research', key('a.example'), {domain: 'a.example', provider: 'sim', value: {}, costUsd: 0.5})
    await writeCache(t.db, 'research', key('b.example'), {domain: 'b.example', provider: 'sim', value: {}, costUsd: 0.25})
    await writeCache(t.db, 'contacts', key('a.example'), {domain: 'a.example', provider: 'sim', value: [], costUsd: 1})
    await readCache(t.db, 'research', key('a.example'), DEFAULT_CACHE_TTL_MS)
    await readCache(t.db, 'research', key('a.example'), DEFAULT_CACHE_TTL_MS)
    await sql`update research_cache set created_at = now() - interval '40 days' where domain = 'b.example'`.execute(t.db)

    const stats = await cacheStats(t.db, CACHE_KINDS)
    assert.deepEqual(
      stats.map((s) => ({kind: s.kind, entries: s.entries, fresh: s.fresh, hits: s.hits, savedUsd: s.savedUsd})),
      [
        {kind: 'research', entries: 2, fresh: 1, hits: 2, savedUsd: 1},
        {kind: 'contacts', entries: 1, fresh: 1, hits: 0, savedUsd: 0},
        // Every stage that caches has its line, entries or not.
        {kind: 'enrich', entries: 0, fresh: 0, hits: 0, savedUsd: 0},
      ],
    )
    assert.ok(stats[0].oldest! < stats[0].newest!)

    assert.equal(await clearCache(t.db, 24 * 3600_000), 1, 'only the entry older than a day')
    assert.equal(await clearCache(t.db), 2, 'then the rest')
    assert.deepEqual(
      (await cacheStats(t.db, CACHE_KINDS)).map((s) => [s.kind, s.entries]),
      [
        ['research', 0],
        ['contacts', 0],
        ['enrich', 0],
      ],
    )
  })
})
