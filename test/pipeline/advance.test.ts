import assert from 'node:assert/strict'
import {sql} from 'kysely'

import type {CompanyStatus, RunStage} from '../../src/db/schema.js'
import {advanceRun} from '../../src/pipeline/advance.js'
import {runScope} from '../../src/pipeline/run-options.js'
import {discovery} from '../../src/pipeline/stages/discovery.js'
import {stageNamed, type StageName} from '../../src/pipeline/stages/index.js'
import {enqueue} from '../../src/runtime/queue.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * The decisions of advance(), one row each, against the real database: a run
 * in a given stage with given companies and tasks; after one advance, what
 * its status and stage are, which companies are selected, which tasks were
 * enqueued, canceled or reopened.
 */

interface Setup {
  quantity: number
  stage: RunStage
  rounds?: number
  options?: Record<string, unknown>
  contactsMin?: number
  /** Companies in id order: status, ICP score, contacts found. */
  companies: Array<{status: CompanyStatus; score?: number; contacts?: number}>
  /** Tasks of the run, by stage, for company `company` (an index into companies) where the stage works on one. */
  tasks?: Array<{stage: StageName; status: 'queued' | 'running' | 'canceled'; company?: number}>
}

interface Expect {
  status: string
  stage: RunStage
  /** Indexes of the companies selected afterwards (in id order). */
  selected?: number[]
  /** Indexes of companies disqualified afterwards. */
  disqualified?: number[]
  /** Live (queued or running) tasks per stage afterwards. */
  live?: Partial<Record<StageName, number>>
  /** Discovery rounds afterwards. */
  rounds?: number
  notes?: RegExp
}

const cases: Array<{name: string; given: Setup; expect: Expect}> = [
  {
    name: 'discovery in flight and short of the target: wait; what qualified is selected and its contact search starts',
    given: {quantity: 3, stage: 'discovery', companies: [{status: 'qualified', score: 80}], tasks: [{stage: 'discovery', status: 'running'}]},
    expect: {status: 'running', stage: 'discovery', selected: [0], live: {discovery: 1, research: 0, contacts: 1}},
  },
  {
    name: 'discovery done, research in flight that can still reach the target: the run is in research',
    given: {
      quantity: 3,
      stage: 'discovery',
      companies: [{status: 'candidate'}, {status: 'candidate'}, {status: 'candidate'}],
      tasks: [
        {stage: 'research', status: 'queued', company: 0},
        {stage: 'research', status: 'queued', company: 1},
        {stage: 'research', status: 'running', company: 2},
      ],
    },
    expect: {status: 'running', stage: 'research', rounds: 1, live: {discovery: 0, research: 3}},
  },
  {
    name: 'research in flight, a company qualifies short of the target: selected at once, its contact search starts, research goes on',
    given: {
      quantity: 2,
      stage: 'research',
      companies: [{status: 'qualified', score: 70}, {status: 'candidate'}, {status: 'candidate'}],
      tasks: [
        {stage: 'research', status: 'running', company: 1},
        {stage: 'research', status: 'queued', company: 2},
      ],
    },
    expect: {status: 'running', stage: 'research', selected: [0], rounds: 1, live: {discovery: 0, research: 2, contacts: 1}},
  },
  {
    name: 'research in flight cannot reach the target even if all of it qualifies: the next discovery round starts now',
    given: {
      quantity: 3,
      stage: 'research',
      companies: [{status: 'qualified', score: 70}, {status: 'disqualified'}, {status: 'candidate'}],
      tasks: [{stage: 'research', status: 'running', company: 2}],
    },
    expect: {status: 'running', stage: 'discovery', selected: [0], rounds: 2, live: {discovery: 1, research: 1, contacts: 1}},
  },
  {
    name: 'target met: the best by score are selected, surplus discovery and research canceled, contacts enqueued for the selected only',
    given: {
      quantity: 2,
      stage: 'research',
      companies: [{status: 'qualified', score: 50}, {status: 'qualified', score: 90}, {status: 'qualified', score: 70}, {status: 'candidate'}],
      tasks: [
        {stage: 'research', status: 'queued'},
        {stage: 'research', status: 'running'},
        {stage: 'discovery', status: 'queued'},
      ],
    },
    expect: {status: 'running', stage: 'contacts', selected: [1, 2], live: {discovery: 0, research: 0, contacts: 2}},
  },
  {
    name: 'target met while discovery is still running: discovery is canceled too',
    given: {quantity: 1, stage: 'discovery', companies: [{status: 'qualified', score: 60}], tasks: [{stage: 'discovery', status: 'running'}]},
    expect: {status: 'running', stage: 'contacts', selected: [0], live: {discovery: 0, contacts: 1}},
  },
  {
    name: 'nothing in flight, short of the target, rounds left: another discovery round',
    given: {quantity: 3, stage: 'research', rounds: 1, companies: [{status: 'qualified', score: 80}, {status: 'disqualified'}]},
    expect: {status: 'running', stage: 'discovery', rounds: 2, selected: [0], live: {discovery: 1, contacts: 1}},
  },
  {
    name: 'supply exhausted with some qualified: find their decision makers first',
    given: {quantity: 3, stage: 'research', options: {discoveryExhausted: true}, companies: [{status: 'qualified', score: 80}, {status: 'disqualified'}]},
    expect: {status: 'running', stage: 'contacts', selected: [0], live: {discovery: 0, contacts: 1}},
  },
  {
    name: 'supply exhausted, contact searches started early still running: the run waits for them in contacts',
    given: {
      quantity: 3,
      stage: 'research',
      options: {discoveryExhausted: true},
      companies: [{status: 'selected', score: 80}, {status: 'disqualified'}],
      tasks: [{stage: 'contacts', status: 'running', company: 0}],
    },
    expect: {status: 'running', stage: 'contacts', selected: [0], live: {contacts: 1}},
  },
  {
    name: 'supply exhausted, contact searches started early all done: the contacts rule settles at once (no task left to wake it)',
    given: {
      quantity: 3,
      stage: 'research',
      options: {discoveryExhausted: true},
      companies: [{status: 'selected', score: 80, contacts: 1}, {status: 'selected', score: 60, contacts: 0}, {status: 'disqualified'}],
    },
    expect: {
      status: 'needs_decision',
      stage: 'contacts',
      selected: [0],
      disqualified: [1, 2],
      notes: /only 1 of 3 companies qualified and have at least 1 decision makers/,
    },
  },
  {
    name: 'supply exhausted, the selected all have decision makers, research of the rest failed: needs a decision (not another reopen)',
    given: {
      quantity: 3,
      stage: 'research',
      options: {discoveryExhausted: true},
      companies: [{status: 'selected', score: 80, contacts: 1}, {status: 'candidate'}],
      tasks: [{stage: 'research', status: 'canceled', company: 1}],
    },
    expect: {status: 'needs_decision', stage: 'research', selected: [0], notes: /discovery found no new companies: 1 of 3 qualified/, live: {research: 0}},
  },
  {
    name: 'supply exhausted, nothing qualified: needs a decision',
    given: {quantity: 3, stage: 'research', options: {discoveryExhausted: true}, companies: [{status: 'disqualified'}]},
    expect: {status: 'needs_decision', stage: 'research', notes: /discovery found no new companies: 0 of 3 qualified/, live: {discovery: 0}},
  },
  {
    name: 'out of discovery rounds, nothing qualified: needs a decision',
    given: {quantity: 2, stage: 'discovery', rounds: 5, companies: []},
    expect: {status: 'needs_decision', stage: 'discovery', notes: /5 discovery rounds done/, rounds: 5},
  },
  {
    name: 'contact searches in flight: wait',
    given: {
      quantity: 2,
      stage: 'contacts',
      companies: [{status: 'selected', contacts: 1}, {status: 'selected'}],
      tasks: [{stage: 'contacts', status: 'running', company: 1}],
    },
    expect: {status: 'running', stage: 'contacts', selected: [0, 1], live: {contacts: 1}},
  },
  {
    name: 'every selected company has decision makers: completed',
    given: {
      quantity: 2,
      stage: 'contacts',
      companies: [
        {status: 'selected', contacts: 2},
        {status: 'selected', contacts: 1},
        {status: 'qualified', score: 99},
      ],
    },
    expect: {status: 'completed', stage: 'done', selected: [0, 1]},
  },
  {
    name: 'a selected company without decision makers gives its place to the next best qualified',
    given: {
      quantity: 2,
      stage: 'contacts',
      companies: [
        {status: 'selected', score: 90, contacts: 1},
        {status: 'selected', score: 80, contacts: 0},
        {status: 'qualified', score: 40},
        {status: 'qualified', score: 60},
      ],
    },
    expect: {status: 'running', stage: 'contacts', selected: [0, 3], disqualified: [1], live: {contacts: 1}},
  },
  {
    name: 'no qualified spare: research of candidates stopped at the target is reopened',
    given: {
      quantity: 2,
      stage: 'contacts',
      companies: [{status: 'selected', contacts: 1}, {status: 'selected', contacts: 0}, {status: 'candidate'}, {status: 'candidate'}, {status: 'candidate'}],
      tasks: [
        {stage: 'research', status: 'canceled', company: 2},
        {stage: 'research', status: 'canceled', company: 3},
        {stage: 'research', status: 'canceled', company: 4},
      ],
    },
    // One place to fill, oversampled 2x: two of the three stopped researches go back, in company order.
    expect: {status: 'running', stage: 'research', selected: [0], disqualified: [1], live: {research: 2, contacts: 0}},
  },
  {
    name: 'no spare, no candidate, discovery exhausted: needs a decision',
    given: {
      quantity: 2,
      stage: 'contacts',
      options: {discoveryExhausted: true},
      companies: [{status: 'selected', contacts: 1}, {status: 'selected', contacts: 0}, {status: 'disqualified'}],
    },
    expect: {
      status: 'needs_decision',
      stage: 'contacts',
      selected: [0],
      disqualified: [1, 2],
      notes: /only 1 of 2 companies qualified and have at least 1 decision makers/,
    },
  },
]

describe('pipeline: advance() decisions (one row per case, real database)', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  for (const c of cases) {
    it(c.name, async () => {
      const {runId, companyIds} = await arrange(c.given)
      await advanceRun(t.db, runId)

      const run = await t.db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow()
      assert.equal(run.status, c.expect.status)
      assert.equal(run.stage, c.expect.stage)
      if (c.expect.rounds !== undefined) assert.equal(run.discovery_rounds, c.expect.rounds)
      if (c.expect.notes) assert.match(run.notes ?? '', c.expect.notes)

      const companies = await t.db.selectFrom('companies').select(['id', 'status']).where('run_id', '=', runId).orderBy('id').execute()
      const indexesOf = (status: CompanyStatus) => companies.filter((x) => x.status === status).map((x) => companyIds.indexOf(x.id))
      if (c.expect.selected) assert.deepEqual(indexesOf('selected'), c.expect.selected, 'selected companies')
      if (c.expect.disqualified) assert.deepEqual(indexesOf('disqualified'), c.expect.disqualified, 'disqualified companies')

      const live = await liveByStage(runId)
      for (const [stage, n] of Object.entries(c.expect.live ?? {})) assert.equal(live[stage as StageName] ?? 0, n, `live ${stage} tasks`)

      // Contact searches only ever go to selected companies.
      const contactTasks = await sql<{company_id: number}>`
        select (payload ->> 'companyId')::bigint as company_id from tasks
        where scope = ${runScope(runId)} and kind = ${stageNamed('contacts').kind} and status in ('queued', 'running')`.execute(t.db)
      const selected = new Set(companies.filter((x) => x.status === 'selected').map((x) => x.id))
      assert.ok(
        contactTasks.rows.every((r) => selected.has(Number(r.company_id))),
        'contacts enqueued for selected companies only',
      )
    })
  }

  it('advance is idempotent: a second call on a settled decision changes nothing', async () => {
    const {runId} = await arrange(cases.find((c) => c.name.startsWith('target met:'))!.given)
    await advanceRun(t.db, runId)
    const before = await liveByStage(runId)
    await advanceRun(t.db, runId)
    assert.deepEqual(await liveByStage(runId), before)
  })

  describe('discovery oversamples what is still wanted', () => {
    const rows = [
      {quantity: 10, open: 0, oversample: undefined, want: 20},
      {quantity: 10, open: 4, oversample: undefined, want: 12},
      {quantity: 10, open: 0, oversample: 3, want: 30},
      {quantity: 5, open: 7, oversample: undefined, want: 1},
      // Research in flight: 5 candidates at the 40% research has qualified so far count as 2 (before, as 5: it asked for 2).
      {quantity: 10, open: 5, qualified: 4, disqualified: 6, oversample: undefined, want: 8},
      // Too few judged to trust a rate: candidates count in full.
      {quantity: 10, open: 5, qualified: 1, disqualified: 3, oversample: undefined, want: 8},
    ]
    for (const r of rows) {
      const judged = r.qualified === undefined ? '' : `, ${r.qualified} of ${r.qualified + r.disqualified!} judged qualified`
      it(`quantity ${r.quantity}, ${r.open} open${judged}, oversample ${r.oversample ?? 'default'}: asks for ${r.want}`, async () => {
        const {runId} = await arrange({
          quantity: r.quantity,
          stage: 'discovery',
          options: r.oversample ? {oversample: r.oversample} : {},
          companies: [
            ...Array.from({length: r.open}, () => ({status: 'candidate' as const})),
            ...Array.from({length: r.qualified ?? 0}, () => ({status: 'qualified' as const, score: 70})),
            ...Array.from({length: r.disqualified ?? 0}, () => ({status: 'disqualified' as const})),
          ],
        })
        const run = await t.db.selectFrom('runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow()
        const input = await discovery.prepare({db: t.db, run, payload: {runId, round: 1}, attempt: 1, maxAttempts: 3})
        assert.equal(input?.want, r.want)
      })
    }
  })

  async function arrange(g: Setup): Promise<{runId: number; companyIds: number[]}> {
    const run = await t.db
      .insertInto('runs')
      .values({
        criteria: '{}',
        quantity: g.quantity,
        contacts_min: g.contactsMin ?? 1,
        contacts_max: 3,
        provider: 'simulated',
        options: JSON.stringify({oversample: 2, maxDiscoveryRounds: 5, contactAttempts: 2, ...g.options}),
        stage: g.stage,
        discovery_rounds: g.rounds ?? 1,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    const companyIds: number[] = []
    for (const [i, c] of g.companies.entries()) {
      const row = await t.db
        .insertInto('companies')
        .values({
          run_id: run.id,
          domain: `c${i}-${run.id}.example`,
          name: `Company ${i}`,
          status: c.status,
          icp_score: c.score ?? null,
          sources: '[]',
          reasons: '[]',
          discovered_by: 'test',
        })
        .returning('id')
        .executeTakeFirstOrThrow()
      companyIds.push(row.id)
      for (let k = 0; k < (c.contacts ?? 0); k++) {
        await t.db
          .insertInto('contacts')
          .values({run_id: run.id, company_id: row.id, full_name: `Person ${k}`, sources: '[]'})
          .execute()
      }
    }

    for (const [i, task] of (g.tasks ?? []).entries()) {
      const stage = stageNamed(task.stage)
      const companyId = task.company === undefined ? undefined : companyIds[task.company]
      const [created] = await enqueue(t.db, {
        kind: stage.kind,
        payload: {runId: run.id, companyId, round: 1},
        scope: runScope(run.id),
        idempotencyKey: `test:${run.id}:${i}`,
      })
      if (task.status !== 'queued') {
        await sql`update tasks set status = ${task.status}, lease_owner = ${task.status === 'running' ? 'someone' : null},
          lease_expires_at = ${task.status === 'running' ? sql`now() + interval '1 minute'` : null} where id = ${created.id}`.execute(t.db)
      }
    }

    return {runId: run.id, companyIds}
  }

  async function liveByStage(runId: number): Promise<Partial<Record<StageName, number>>> {
    const {rows} = await sql<{kind: string; n: number}>`
      select kind, count(*)::int as n from tasks where scope = ${runScope(runId)} and status in ('queued', 'running') group by kind`.execute(t.db)
    const out: Partial<Record<StageName, number>> = {}
    for (const r of rows) {
      const stage = (['discovery', 'research', 'contacts'] as const).find((s) => stageNamed(s).kind === r.kind)!
      out[stage] = r.n
    }

    return out
  }
})
