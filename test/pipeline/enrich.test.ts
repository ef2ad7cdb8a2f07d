import assert from 'node:assert/strict'

import {presenceOf} from '../../src/agents/simulated/world.js'
import {driveRun} from '../../src/pipeline/orchestrator.js'
import {createRun} from '../../src/pipeline/runs.js'
import {enrich} from '../../src/pipeline/stages/enrich.js'
import {silentLogger} from '../../src/runtime/logger.js'
import {startDashboard} from '../../src/web/server.js'
import {useFreshDatabase} from '../helpers/db.js'
import {get} from '../helpers/sse.js'
import {FAST} from '../helpers/runtime.js'
import {simulatedWith} from '../helpers/simulated-with.js'

type Said = {value: string | null; url: string | null; quote: string | null}
type Scenario = {phone?: (domain: string, shown: string) => Said; linkedin?: (domain: string) => Said}

/** What the model says, one lie (or truth) per company, in the order the companies are enriched. */
const SCENARIOS: Record<string, Scenario> = {
  'phone on its site, written otherwise, cited from a directory': {
    phone: (domain, shown) => ({
      value: `+1.${shown.replace(/\D/g, '').replace(/(\d{3})(\d{3})/, '$1.$2.')}`,
      url: `https://directory.example/${domain}`,
      quote: 'Tel',
    }),
  },
  'a phone its site never shows, cited from its own contact page': {
    phone: (domain) => ({value: '+1 512-555-0000', url: `https://${domain}/contact`, quote: 'Main office: (512) 555-0000'}),
  },
  'no phone number at all': {phone: (domain) => ({value: 'call us', url: `https://${domain}/contact`, quote: 'call us'})},
  "a person's profile for the company page": {linkedin: (domain) => ({value: `https://linkedin.example/in/dana-${domain}`, url: null, quote: null})},
  'a post for the company page': {linkedin: (domain) => ({value: `https://www.linkedin.example/posts/${domain}-hiring`, url: null, quote: null})},
  'a page off LinkedIn': {linkedin: (domain) => ({value: `https://facebook.example/company/${domain}`, url: null, quote: null})},
  'a company page with a trailing slash, on www': {
    linkedin: (domain) => ({value: `www.linkedin.example/company/${domain.replace('.example', '')}/`, url: `https://${domain}/about`, quote: 'Follow us'}),
  },
}

/**
 * The enrich stage's checks overrule the model: on the real pipeline and
 * database, with the simulated world's web read by rvx's own checks, and the
 * model's answers replaced by lies of each kind.
 */
describe('pipeline: enrich (its checks overrule the model)', function () {
  this.timeout(60_000)
  const t = useFreshDatabase()

  it('keeps a phone only where the company shows it and a LinkedIn URL only when it is a company page; else unknown, saying why', async () => {
    const told = new Map<string, string>()
    const names = Object.keys(SCENARIOS)
    const provider = simulatedWith({
      async enrich(request, ctx, sim) {
        const world = await sim.agent(request, ctx)
        const {domain} = (request.input as {company: {domain: string}}).company
        const shown = presenceOf(1, domain).phone
        // The phone scenario goes to a company whose site shows one.
        const name = told.get(domain) ?? names.find((n) => ![...told.values()].includes(n) && (!SCENARIOS[n].phone || shown))!
        told.set(domain, name)
        const honest = {value: shown, url: `https://${domain}/contact`, quote: shown}
        const s = SCENARIOS[name]
        return {...world, value: {phone: s.phone ? s.phone(domain, shown!) : honest, linkedin_company: s.linkedin ? s.linkedin(domain) : {value: null}}}
      },
    })
    const run = await createRun(t.db, {
      criteria: {pms: 'Buildium', state: 'TX'},
      size: {quantity: names.length, contactsMin: 1, contactsMax: 3},
      provider: 'simulated',
      options: {stages: ['enrich']},
    })
    const driven = await driveRun({
      db: t.db,
      databaseUrl: t.url,
      runId: run.id,
      providerFor: () => provider,
      concurrency: 1,
      signal: new AbortController().signal,
      config: {...FAST, maxClaimAhead: 0},
    })
    assert.equal(driven.status, 'completed')

    // Every stage's tasks, enrich's too, came through the one enqueue path: one key format, one task per company or round.
    const tasks = await t.db.selectFrom('tasks').select(['kind', 'payload', 'idempotency_key']).where('scope', '=', `run:${run.id}`).execute()
    assert.deepEqual([...new Set(tasks.map((k) => k.kind))].sort(), ['company', 'contact', 'enrich', 'lead-list'])
    for (const k of tasks) {
      const {companyId, round} = k.payload as {companyId?: number; round?: number}
      assert.equal(k.idempotency_key, `run:${run.id}:${k.kind}:${companyId ?? round}`)
    }

    const rows = await t.db
      .selectFrom('company_facts as f')
      .innerJoin('companies as c', 'c.id', 'f.company_id')
      .select(['c.domain', 'f.value', 'f.evidence'])
      .where('f.run_id', '=', run.id)
      .where('f.stage', '=', 'enrich')
      .execute()
    assert.equal(rows.length, names.length)
    const column = (name: string) => enrich.columns!.find((c) => c.name === name)!
    const by = new Map(rows.map((r) => [told.get(r.domain)!, {domain: r.domain, fact: {value: r.value, evidence: r.evidence}}]))

    const directory = by.get('phone on its site, written otherwise, cited from a directory')!
    assert.notEqual(column('phone').value(directory.fact), 'unknown', 'the number its site shows is kept, however written')
    assert.equal(
      column('phone_evidence').value(directory.fact),
      `https://${directory.domain}/contact "Main office: ${presenceOf(1, directory.domain).phone}"`,
      'the evidence is its own page and the line there, not the directory the model cited',
    )

    const madeUp = by.get('a phone its site never shows, cited from its own contact page')!
    assert.equal(column('phone').value(madeUp.fact), 'unknown')
    assert.match(column('phone_evidence').value(madeUp.fact)!, /not on its own pages: the model's \+1 512-555-0000 appears on none of those read/)

    const none = by.get('no phone number at all')!
    assert.equal(column('phone').value(none.fact), 'unknown')
    assert.match(column('phone_evidence').value(none.fact)!, /not a phone number/)

    const refused: Array<[string, RegExp]> = [
      ["a person's profile for the company page", /is a person's profile, not a company page/],
      ['a post for the company page', /is a post, not a company page/],
      ['a page off LinkedIn', /is not on LinkedIn/],
    ]
    for (const [name, why] of refused) {
      const {fact} = by.get(name)!
      assert.equal(column('linkedin_company').value(fact), 'unknown', name)
      assert.match(column('linkedin_company_evidence').value(fact)!, why, name)
    }

    const slash = by.get('a company page with a trailing slash, on www')!
    assert.equal(column('linkedin_company').value(slash.fact), `https://www.linkedin.example/company/${slash.domain.replace('.example', '')}`)
    assert.equal(column('linkedin_company_evidence').value(slash.fact), `https://${slash.domain}/about "Follow us"`)

    // The run page shows them on each company's card: the value with the page that shows it, or unknown and why.
    const dash = await startDashboard({db: t.db, host: '127.0.0.1', port: 0, intervalMs: 200, log: silentLogger})
    try {
      const page = (await get(`${dash.url}runs/${run.id}`)).body
      const card = (domain: string) => page.slice(page.indexOf(`>${domain}<`), page.indexOf('</article>', page.indexOf(`>${domain}<`)))
      assert.match(card(directory.domain), new RegExp(`<tr data-column="phone">[\\s\\S]*href="https://${directory.domain}/contact"`))
      assert.match(card(madeUp.domain), /<td class="fact-value">unknown<\/td>[\s\S]*not on its own pages/)
      assert.match(card(by.get("a person's profile for the company page")!.domain), /LinkedIn company page[\s\S]*is a person&#39;s profile, not a company page/)
      assert.doesNotMatch(page, /data-column="phone_evidence"/, 'the export-only evidence columns are shown as evidence, not again')
    } finally {
      await dash.close()
    }
  })
})
