import assert from 'node:assert/strict'

import {migrationStatus, migrator} from '../../src/db/migrator.js'
import {companyKey, normalizeDomain} from '../../src/pipeline/domains.js'
import {driveRun} from '../../src/pipeline/orchestrator.js'
import type {AgentRequest, CandidateCompany} from '../../src/pipeline/provider.js'
import {createRun} from '../../src/pipeline/runs.js'
import {dedupe} from '../../src/pipeline/stages/discovery.js'
import {useFreshDatabase} from '../helpers/db.js'
import {FAST} from '../helpers/runtime.js'
import {simulatedWith} from '../helpers/simulated-with.js'

const MIGRATION = '0018_company_key_registrable_domain'
const key = (host: string) => companyKey(normalizeDomain(host))

describe('pipeline: one company, one key', function () {
  this.timeout(60_000)

  it('keys a host by its registrable domain, or by the customer host on a shared platform', () => {
    for (const host of ['blog.acme.com', 'www.acme.com', 'acme.com', 'https://shop.acme.com/about']) assert.equal(key(host), 'acme.com', host)
    assert.equal(key('www.acme.co.uk'), 'acme.co.uk')
    assert.equal(key('mail.acme.co.uk'), 'acme.co.uk', 'not co.uk')
    // Private suffixes of the public-suffix list, and the platforms rvx names itself.
    assert.equal(key('acme.wixsite.com'), 'acme.wixsite.com')
    assert.equal(key('acme.squarespace.com'), 'acme.squarespace.com')
    assert.equal(key('oakridge.managebuilding.com'), 'oakridge.managebuilding.com')
    assert.notEqual(key('oakridge.managebuilding.com'), key('pinecrest.managebuilding.com'))
    assert.equal(companyKey('localhost'), 'localhost', 'no registrable domain: the host itself')
    assert.equal(key('127.0.0.1'), '', 'an IP address is no company domain')
  })

  it('dedupe keeps one candidate per key, and the host found as the site to research', () => {
    const found: CandidateCompany[] = [
      {name: 'Acme blog', domain: 'blog.acme.example', sources: []},
      {name: 'Acme', domain: 'acme.example', website: 'https://acme.example', sources: []},
      {name: 'Acme UK', domain: 'www.acme.co.uk', sources: []},
      {name: 'Excluded', domain: 'portal.excluded.example', sources: []},
    ]
    const fresh = dedupe(found, new Set(['excluded.example']))
    assert.deepEqual(
      fresh.map((c) => [c.domain, c.website]),
      [
        ['acme.example', 'https://blog.acme.example/'],
        ['acme.co.uk', undefined],
      ],
    )
  })

  describe('a run fed blog.acme.example and acme.example', () => {
    const t = useFreshDatabase()

    it('delivers one company for them', async () => {
      // The simulated world with each company found twice more: first on a subdomain (its site given), then with www.
      const research = simulatedWith({
        async discovery(request, ctx, sim) {
          const found = await sim.agent(request as AgentRequest<{companies: Array<{name: string; domain: string}>}>, ctx)
          const companies = found.value.companies.flatMap((c) => [
            {...c, name: `${c.name} blog`, domain: `blog.${c.domain}`},
            c,
            {...c, domain: `www.${c.domain}`},
          ])
          return {...found, value: {companies}}
        },
      })
      const run = await createRun(t.db, {criteria: {pms: 'Buildium', state: 'TX'}, size: {quantity: 4, contactsMin: 1, contactsMax: 3}, provider: 'simulated'})
      const driven = await driveRun({
        db: t.db,
        databaseUrl: t.url,
        runId: run.id,
        providerFor: () => research,
        concurrency: 1,
        signal: new AbortController().signal,
        config: {...FAST, maxClaimAhead: 0},
      })
      assert.equal(driven.status, 'completed')

      const companies = await t.db.selectFrom('companies').select(['domain', 'website', 'status']).where('run_id', '=', run.id).execute()
      const domains = companies.map((c) => c.domain)
      assert.deepEqual(
        domains.filter((d) => d.startsWith('blog.') || d.startsWith('www.')),
        [],
        'no company keyed on a subdomain',
      )
      assert.equal(new Set(domains).size, domains.length)
      const selected = companies.filter((c) => c.status === 'selected')
      assert.equal(selected.length, 4)
      assert.ok(
        companies.every((c) => c.website !== null && new URL(c.website).hostname === c.domain),
        'the site discovery gave',
      )
    })
  })

  describe(`migration ${MIGRATION}`, () => {
    const t = useFreshDatabase({migrate: false})

    it('re-keys each run on its own: one row per key keeps it, the others are disqualified naming it, none deleted', async () => {
      const all = (await migrator(t.db).getMigrations()).map((m) => m.name)
      const before = all[all.indexOf(MIGRATION) - 1]
      assert.equal((await migrator(t.db).migrateTo(before)).error, undefined)

      const size = {quantity: 2, contactsMin: 1, contactsMax: 3}
      const one = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
      const two = await createRun(t.db, {criteria: {state: 'TX'}, size, provider: 'simulated'})
      const insert = async (runId: number, domain: string, status: 'candidate' | 'qualified' | 'selected' | 'disqualified') =>
        (
          await t.db
            .insertInto('companies')
            .values({run_id: runId, domain, name: domain, status, reasons: '[]', sources: '[]', discovered_by: 'simulated'})
            .returning('id')
            .executeTakeFirstOrThrow()
        ).id
      // Run one: the key's own row is only a candidate; its blog was selected (and has a contact).
      const plain = await insert(one.id, 'acme.example', 'candidate')
      const blog = await insert(one.id, 'blog.acme.example', 'selected')
      const shop = await insert(one.id, 'shop.acme.example', 'selected')
      const uk = await insert(one.id, 'mail.acme.co.uk', 'qualified')
      const wix = await insert(one.id, 'acme.wixsite.com', 'qualified')
      await t.db.insertInto('contacts').values({run_id: one.id, company_id: blog, full_name: 'Dana Reyes', sources: '[]'}).execute()
      await t.db.insertInto('contacts').values({run_id: one.id, company_id: shop, full_name: 'Sam Ortiz', sources: '[]'}).execute()
      // Run two holds the same company: it is re-keyed, never merged with run one's.
      const other = await insert(two.id, 'www2.acme.example', 'qualified')

      assert.equal((await migrator(t.db).migrateTo(MIGRATION)).error, undefined)
      assert.equal((await migrationStatus(t.db)).find((m) => m.name === MIGRATION)?.status, 'applied')

      const rows = await t.db.selectFrom('companies').select(['id', 'run_id', 'domain', 'status', 'reasons']).orderBy('id').execute()
      const byId = new Map(rows.map((r) => [r.id, r]))
      assert.equal(rows.length, 6, 'none deleted')
      assert.deepEqual([byId.get(blog)!.domain, byId.get(blog)!.status], ['acme.example', 'selected'], 'furthest along, lowest id, keeps the key')
      for (const [id, host] of [
        [plain, 'acme.example'],
        [shop, 'shop.acme.example'],
      ] as const) {
        const row = byId.get(id)!
        assert.equal(row.status, 'disqualified')
        assert.ok(
          (row.reasons as string[]).includes(`duplicate of company ${blog} (acme.example): one company per registrable domain; found as ${host}`),
          JSON.stringify(row.reasons),
        )
      }
      assert.equal(byId.get(plain)!.domain, 'blog.acme.example', 'the row that held the key took the keeper’s old host')
      assert.deepEqual([byId.get(uk)!.domain, byId.get(uk)!.status], ['acme.co.uk', 'qualified'])
      assert.deepEqual([byId.get(wix)!.domain, byId.get(wix)!.status], ['acme.wixsite.com', 'qualified'])
      assert.deepEqual([byId.get(other)!.run_id, byId.get(other)!.domain, byId.get(other)!.status], [two.id, 'acme.example', 'qualified'])
      assert.equal(
        Number(
          (
            await t.db
              .selectFrom('contacts')
              .select((eb) => eb.fn.countAll().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        ),
        2,
      )
    })
  })
})
