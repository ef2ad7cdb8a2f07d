import assert from 'node:assert/strict'
import {sql} from 'kysely'

import type {ResearchProvider} from '../../src/pipeline/provider.js'
import {DEFAULT_SIMULATION} from '../../src/agents/simulated.js'
import {askDiscovery} from '../../src/pipeline/stages/discovery.js'
import {advanceRun} from '../../src/pipeline/advance.js'
import {driveRun} from '../../src/pipeline/orchestrator.js'
import {runScope} from '../../src/pipeline/run-options.js'
import {createRun} from '../../src/pipeline/runs.js'
import {claimTasks, enqueue, retryTask, sweep} from '../../src/runtime/index.js'
import {rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FAST} from '../helpers/runtime.js'
import {freeCall} from '../helpers/call-context.js'
import {simulatedWith} from '../helpers/simulated-with.js'

const SIZE = {contactsMin: 1, contactsMax: 3}
const TARGET_REACHED = (runId: number) => `run ${runId} met its target: no further discovery or research`

const provider = simulatedWith

/**
 * The pipeline's promises about what gets selected, researched and paid for,
 * on the real runtime and database: runs driven in-process by the
 * orchestrator's workers (one slot per stage, so the order of the work, and
 * with the deterministic simulated world the whole run, is fixed).
 */
describe('pipeline: selection, oversampling, replacement and resume', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  // One slot per stage and no claiming ahead: each stage takes its next task only when the last one is done.
  const drive = (runId: number, research: ResearchProvider) =>
    driveRun({
      db: t.db,
      databaseUrl: t.url,
      runId,
      providerFor: () => research,
      concurrency: 1,
      signal: new AbortController().signal,
      config: {...FAST, maxClaimAhead: 0},
    })

  async function companies(runId: number) {
    return t.db.selectFrom('companies').selectAll().where('run_id', '=', runId).orderBy('id').execute()
  }

  async function tasksOf(runId: number, kind: string) {
    const {rows} = await sql<{id: number; status: string; company_id: number}>`
      select id, status, (payload ->> 'companyId')::bigint as company_id from tasks where scope = ${runScope(runId)} and kind = ${kind} order by id`.execute(
      t.db,
    )
    return rows.map((r) => ({...r, company_id: Number(r.company_id)}))
  }

  async function events(taskId: number): Promise<Array<{event: string; reason: string | null}>> {
    return t.db.selectFrom('task_events').select(['event', 'reason']).where('task_id', '=', taskId).orderBy('id').execute()
  }

  async function contactsBy(runId: number): Promise<Map<number, number>> {
    const rows = await t.db
      .selectFrom('contacts')
      .select(['company_id', (eb) => eb.fn.countAll<number>().as('n')])
      .where('run_id', '=', runId)
      .groupBy('company_id')
      .execute()
    return new Map(rows.map((r) => [Number(r.company_id), Number(r.n)]))
  }

  it('discovery oversamples 2x; at the target, queued research is canceled and never paid for', async () => {
    const run = await createRun(t.db, {criteria: {pms: 'Buildium', state: 'TX'}, size: {quantity: 4, ...SIZE}, provider: 'simulated'})
    assert.equal((await drive(run.id, provider())).status, 'completed')

    const found = await companies(run.id)
    assert.equal(found.filter((c) => c.discovery_round === 1).length, 8, 'two candidates per company wanted')
    assert.deepEqual(
      (await tasksOf(run.id, 'lead-list')).map((l) => l.status),
      ['completed'],
      'one discovery round was enough',
    )
    assert.equal(found.filter((c) => c.status === 'selected').length, 4)

    const research = await tasksOf(run.id, 'company')
    const canceled = research.filter((r) => r.status === 'canceled')
    assert.ok(canceled.length > 0 && research.every((r) => ['completed', 'canceled'].includes(r.status)), JSON.stringify(research))
    for (const task of canceled) {
      assert.deepEqual(await events(task.id), [{event: 'canceled', reason: TARGET_REACHED(run.id)}], 'canceled while queued, never claimed')
      assert.equal(found.find((c) => c.id === task.company_id)!.status, 'candidate')
    }

    const {rows: paid} = await sql<{
      task_id: number
    }>`select distinct task_id from llm_calls l join tasks t on t.id = l.task_id where t.scope = ${runScope(run.id)} and t.kind = 'company'`.execute(t.db)
    assert.deepEqual(
      paid.map((p) => Number(p.task_id)).sort((a, b) => a - b),
      research.filter((r) => r.status === 'completed').map((r) => r.id),
      'research calls only for the companies researched',
    )
  })

  it('selects the best --quantity by ICP score, only they get a contact search, and one without decision makers gives its place to the next best', async () => {
    const run = await createRun(t.db, {criteria: {state: 'TX'}, size: {quantity: 3, ...SIZE}, provider: 'simulated'})
    // More qualified than wanted (as when research finishes around the target), ids in a different order than scores.
    const scores = [55, 91, 70, 84, 62, 77]
    const qualified = await t.db
      .insertInto('companies')
      .values(
        scores.map((score) => ({
          run_id: run.id,
          domain: `score-${score}.example`,
          name: `Score ${score} PM`,
          status: 'qualified' as const,
          icp_fit: 'yes' as const,
          icp_score: score,
          reasons: '[]',
          sources: '[]',
          discovered_by: 'simulated',
          researched_at: new Date(),
        })),
      )
      .returning(['id', 'icp_score'])
      .execute()
    const scoreOf = new Map(qualified.map((q) => [Number(q.id), q.icp_score]))
    const candidate = await t.db
      .insertInto('companies')
      .values({run_id: run.id, domain: 'unresearched.example', name: 'Unresearched PM', reasons: '[]', sources: '[]', discovered_by: 'simulated'})
      .returning('id')
      .executeTakeFirstOrThrow()
    await enqueue(t.db, {kind: 'company', payload: {runId: run.id, companyId: candidate.id}, scope: runScope(run.id)})

    assert.equal(await advanceRun(t.db, run.id), 'running')
    const selectedScores = async () =>
      (await companies(run.id))
        .filter((c) => c.status === 'selected')
        .map((c) => c.icp_score)
        .sort((a, b) => b! - a!)
    assert.deepEqual(await selectedScores(), [91, 84, 77])
    assert.deepEqual(
      (await tasksOf(run.id, 'contact')).map((c) => scoreOf.get(c.company_id)),
      [91, 84, 77],
      'a contact search for each selected company, no other',
    )
    assert.deepEqual(
      [...(await tasksOf(run.id, 'lead-list')), ...(await tasksOf(run.id, 'company'))].map((x) => x.status),
      ['canceled', 'canceled'],
      'no discovery or research past the target',
    )

    // The best one has nobody findable.
    const person = (domain: string) => ({full_name: 'Dana Owner', title: 'Owner', tier: 1, email: `dana@${domain}`, confidence: 'high', sources: []})
    const research = provider({
      discovery: async () => assert.fail('no discovery past the target'),
      research: async () => assert.fail('no research past the target'),
      async contacts({input, schema}) {
        const {domain} = (input as {company: {domain: string}}).company
        return {value: schema.parse({contacts: domain === 'score-91.example' ? [] : [person(domain)]}), seen: []}
      },
    })
    assert.equal((await drive(run.id, research)).status, 'completed')

    assert.deepEqual(await selectedScores(), [84, 77, 70], 'the next best by score took its place')
    const dropped = (await companies(run.id)).find((c) => c.icp_score === 91)!
    assert.equal(dropped.status, 'disqualified')
    assert.ok((dropped.reasons as string[]).includes('fewer than 1 decision makers found'), JSON.stringify(dropped.reasons))
    assert.deepEqual(
      (await tasksOf(run.id, 'contact')).map((c) => scoreOf.get(c.company_id)),
      [91, 84, 77, 70],
    )
    const contacts = await contactsBy(run.id)
    assert.deepEqual(
      [...contacts.keys()].map((id) => scoreOf.get(id)).sort((a, b) => b! - a!),
      [84, 77, 70],
      'contacts only for the selected',
    )
    assert.deepEqual(
      (await companies(run.id))
        .filter((c) => c.status === 'qualified')
        .map((c) => c.icp_score)
        .sort(),
      [55, 62],
    )
  })

  it('a selected company without decision makers gives its place: research stopped at the target is reopened', async () => {
    const run = await createRun(t.db, {
      criteria: {pms: 'Buildium', state: 'TX'},
      size: {quantity: 3, ...SIZE},
      provider: 'simulated',
      // The same world as the runs before it: their deliveries and cached research stay out of it (research is stopped at the target).
      options: {includeDelivered: true, fresh: true},
    })
    let nobody: string | undefined
    const searches = new Map<string, number>()
    const research = provider({
      async contacts(request, ctx, sim) {
        const {domain} = (request.input as {company: {domain: string}}).company
        nobody ??= domain
        searches.set(domain, (searches.get(domain) ?? 0) + 1)
        return domain === nobody ? {value: request.schema.parse({contacts: []}), seen: []} : sim.agent(request, ctx)
      },
    })
    assert.equal((await drive(run.id, research)).status, 'completed')

    const all = await companies(run.id)
    const dropped = all.find((c) => c.domain === nobody)!
    assert.equal(dropped.status, 'disqualified')
    assert.ok((dropped.reasons as string[]).includes('fewer than 1 decision makers found'))
    const contactTasks = await tasksOf(run.id, 'contact')
    const droppedTask = contactTasks.find((c) => c.company_id === dropped.id)!
    // A second search at once, in the same attempt (before, a retry 5 s of backoff later), then it settles for nobody.
    assert.equal(searches.get(nobody!), 2, 'searched twice')
    assert.deepEqual(
      (await events(droppedTask.id)).map((e) => e.event),
      ['claimed', 'completed'],
      'one attempt: no backoff for a search that came back short',
    )

    const selected = all.filter((c) => c.status === 'selected')
    assert.equal(selected.length, 3)
    const contacts = await contactsBy(run.id)
    assert.ok(selected.every((c) => (contacts.get(c.id) ?? 0) >= 1) && !contacts.has(dropped.id))
    assert.equal(contactTasks.length, 4, 'one more contact search: the replacement')
    // No qualified company was waiting: the research stopped at the target was reopened first (in company order),
    // before anything else (here the reopened one did not qualify, so a new discovery round found the replacement).
    const replacement = selected.find((c) => c.id === contactTasks.at(-1)!.company_id)!
    const reopened: number[] = []
    for (const task of await tasksOf(run.id, 'company')) {
      const reasons = (await events(task.id)).map((e) => e.reason ?? e.event)
      if (reasons.includes('research reopened: a selected company had no decision makers')) {
        assert.deepEqual(reasons, [TARGET_REACHED(run.id), 'research reopened: a selected company had no decision makers', 'claimed', 'completed'])
        reopened.push(task.company_id)
      }
    }

    assert.ok(reopened.length > 0, 'research stopped at the target was reopened')
    assert.ok(
      all.filter((c) => c.status === 'qualified').every((c) => c.icp_score! <= replacement.icp_score!),
      'nothing better was left waiting',
    )
  })

  it('runs resume --criteria widens a run that needed a decision, and its failed and quarantined tasks get another chance', async () => {
    // A small world: twelve companies in Austin, not enough for six once verified; two of them cannot be researched at first.
    const supply = 12
    const narrow = {pms: 'Buildium', state: 'TX', city: 'Austin'}
    const run = await createRun(t.db, {
      criteria: narrow,
      size: {quantity: 6, ...SIZE},
      provider: 'simulated',
      // About resuming, not about earlier runs: their deliveries and cached research stay out of it.
      options: {simulation: {...DEFAULT_SIMULATION, supply}, includeDelivered: true, fresh: true},
    })
    const world = await askDiscovery(provider({}, supply), {criteria: narrow, want: supply, exclude: []}, freeCall())
    const broken = new Set([world[2].domain, world[4].domain])
    const flaky = provider(
      {
        research: async (request, ctx, sim) => {
          if (broken.has((request.input as {company: {domain: string}}).company.domain))
            throw Object.assign(new Error('upstream said 400: bad request'), {status: 400})
          return sim.agent(request, ctx)
        },
      },
      supply,
    )
    assert.equal((await drive(run.id, flaky)).status, 'needs_decision')
    const stuck = (await tasksOf(run.id, 'company')).filter((r) => r.status === 'failed')
    assert.equal(stuck.length, 2)

    // One of them then crashed its worker three times (a claim whose lease lapses, swept as a crash) and sits quarantined.
    const [quarantined, failed] = stuck
    assert.ok(await retryTask(t.db, quarantined.id))
    for (let i = 0; i < 3; i++) {
      const [claimed] = await claimTasks(t.db, {
        workerId: 'ghost',
        kinds: ['company'],
        scope: runScope(run.id),
        limit: 1,
        leaseMs: 1,
        pool: 'default',
        capabilities: [],
        memoryAvailableGb: 64,
        gpuVramAvailableGb: 0,
      })
      assert.equal(claimed.id, quarantined.id)
      await new Promise((r) => setTimeout(r, 10))
      await sweep(t.db, {deadAfterMs: 15_000, sessionGraceMs: 2000, maxCrashes: 3})
    }

    assert.equal((await t.db.selectFrom('tasks').select('status').where('id', '=', quarantined.id).executeTakeFirstOrThrow()).status, 'quarantined')

    // Wider: all of Texas. The resumed run is driven by a spawned rvx, in the run's own simulated world.
    const resumed = await rvx(
      [
        'runs',
        'resume',
        String(run.id),
        '--criteria',
        '{"pms":"Buildium","state":"TX"}',
        '--output-dir',
        `${process.env.RVX_TEST_HOME}/resume-exports`,
        '--json',
      ],
      {env: {DATABASE_URL: t.url}},
    )
    assert.equal(resumed.code, 0, resumed.stderr)
    assert.equal(JSON.parse(resumed.stdout).status, 'completed')

    for (const task of [quarantined, failed]) {
      const history = await events(task.id)
      assert.equal(history.filter((e) => e.event === 'retried').at(-1)!.reason, `run ${run.id} resumed`)
      assert.equal(history.at(-1)!.event, 'completed')
      const company = (await companies(run.id)).find((c) => c.id === task.company_id)!
      assert.notEqual(company.status, 'candidate', `${company.domain} was researched after all`)
    }

    const all = await companies(run.id)
    const selected = all.filter((c) => c.status === 'selected')
    assert.equal(selected.length, 6)
    assert.ok(
      selected.some((c) => c.city !== 'Austin'),
      `the wider criteria found more of Texas: ${selected.map((c) => c.city)}`,
    )
    assert.deepEqual((await t.db.selectFrom('runs').select('criteria').where('id', '=', run.id).executeTakeFirstOrThrow()).criteria, {
      pms: 'Buildium',
      state: 'TX',
    })
  })
})

/**
 * The research cache through real runs: a company researched before is judged
 * from the cache while its answer is younger than the run's --cache-ttl, and
 * only under the criteria it was judged against.
 */
describe('pipeline: the research cache (its TTL and its key)', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const CRITERIA = {state: 'TX'} as const
  /** Domains research was paid for, in the run being driven. */
  let researched: string[] = []
  // Discovery finds the same companies whatever the criteria, so two criteria meet the same domains.
  const counting = provider({
    discovery: (request, ctx, sim) => sim.agent({...request, input: {...(request.input as object), criteria: CRITERIA}}, ctx),
    research: (request, ctx, sim) => {
      researched.push((request.input as {company: {domain: string}}).company.domain)
      return sim.agent(request, ctx)
    },
  })

  async function run(criteria: Record<string, unknown>, options: {cacheTtlMs?: number} = {}) {
    researched = []
    const created = await createRun(t.db, {criteria, size: {quantity: 3, ...SIZE}, provider: 'simulated', options: {includeDelivered: true, ...options}})
    await driveRun({
      db: t.db,
      databaseUrl: t.url,
      runId: created.id,
      providerFor: () => counting,
      concurrency: 1,
      signal: new AbortController().signal,
      config: {...FAST, maxClaimAhead: 0},
    })
    const rows = await t.db.selectFrom('companies').select(['domain', 'from_cache', 'status']).where('run_id', '=', created.id).execute()
    return {judged: rows.filter((c) => c.status !== 'candidate'), researched: [...researched]}
  }

  it('an answer older than --cache-ttl is a miss and paid again; a younger one is a hit', async () => {
    const first = await run(CRITERIA)
    assert.ok(first.researched.length > 0)

    const young = await run(CRITERIA, {cacheTtlMs: 24 * 3600_000})
    const reused = young.judged.filter((c) => first.researched.includes(c.domain))
    assert.ok(reused.length > 0, 'the second run meets companies the first researched')
    assert.ok(
      reused.every((c) => c.from_cache && !young.researched.includes(c.domain)),
      'within the TTL: judged from the cache, not paid again',
    )

    // Two days later, under a one-day TTL.
    await sql`update research_cache set created_at = created_at - interval '2 days'`.execute(t.db)
    const old = await run(CRITERIA, {cacheTtlMs: 24 * 3600_000})
    const again = old.judged.filter((c) => first.researched.includes(c.domain))
    assert.ok(again.length > 0)
    assert.ok(
      again.every((c) => !c.from_cache && old.researched.includes(c.domain)),
      `past the TTL: researched (paid) again: ${JSON.stringify({again, researched: old.researched})}`,
    )
  })

  it('the same domain under other criteria does not share a cache entry', async () => {
    // Judged under CRITERIA here or in the test before (from the cache or not): an entry under CRITERIA exists for each.
    const first = await run(CRITERIA)
    const other = await run({...CRITERIA, units_min: 20})
    const met = other.judged.filter((c) => first.judged.some((f) => f.domain === c.domain))
    assert.ok(met.length > 0, 'the runs meet the same domains')
    assert.ok(
      met.every((c) => !c.from_cache && other.researched.includes(c.domain)),
      'judged afresh under its own criteria',
    )
    const {rows} = await sql<{n: number}>`
      select count(distinct key)::int as n from research_cache where kind = 'research' and domain = ${met[0].domain}`.execute(t.db)
    assert.equal(rows[0].n, 2, 'one entry per criteria')
  })
})
