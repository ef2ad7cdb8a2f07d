import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {parse} from 'csv-parse/sync'
import {sql} from 'kysely'

import {hasStackTrace, lines, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'

/**
 * Spend on the user's path, through spawned `rvx` processes and the simulated
 * world (its model sim-1 is priced like a small real one): a budget stops a
 * run with exit 4 and a reason, `runs resume --max-usd` goes on; a repeated run
 * is judged from the cache at no cost and delivers none of the first run's
 * companies unless asked; --exclude takes a CRM export; what a lead cost is
 * stated.
 */
describe('e2e: budgets, the research cache and suppression', function () {
  this.timeout(240_000)
  const t = useFreshDatabase()
  let out: string
  const env = () => ({DATABASE_URL: t.url, OPENAI_API_KEY: ''})
  const CRITERIA = '{"pms":"Buildium","state":"TX"}'
  const orchestrate = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    rvx(['orchestrate', '--provider', 'simulated', '--output-dir', out, '--json', ...args], {env: {...env(), ...extraEnv}, timeoutMs: 120_000})
  const readCsv = (file: string): Array<Record<string, string>> => parse(fs.readFileSync(file, 'utf8'), {columns: true, skip_empty_lines: true})
  const costOf = async (runId: number) =>
    Number((await sql<{usd: string}>`select coalesce(sum(cost_usd), 0)::text as usd from llm_calls where run_id = ${runId}`.execute(t.db)).rows[0].usd)

  before(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-spend-'))
  })
  after(() => fs.rmSync(out, {recursive: true, force: true}))

  it('a budget stops the run before it would pass it: exit 4, "budget reached: $X of $Y", a partial export; resume --max-usd finishes it', async () => {
    const res = await orchestrate(['--criteria', '{"pms":"AppFolio","state":"FL"}', '--quantity', '8', '--max-usd', '0.004'])
    assert.equal(res.code, 4, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.status, 'needs_decision')
    assert.match(result.progress.notes, /^budget reached: \$0\.\d{4} of \$0\.0040 spent/)
    assert.match(result.progress.notes, /rvx runs resume \d+ --max-usd N/)
    const spent = await costOf(result.runId)
    assert.ok(spent > 0 && spent <= 0.004, `spent ${spent} within the budget`)
    assert.ok(fs.existsSync(result.export.files.companies), 'a partial export is written')
    assert.deepEqual(result.progress.maxUsd, 0.004)

    const shown = await rvx(['runs', 'show', String(result.runId)], {env: env()})
    assert.equal(shown.code, 0, shown.stderr)
    assert.match(shown.stdout, /of a \$0\.0040 budget/)

    // Not above what is spent: refused, nothing changed.
    const low = await rvx(['runs', 'resume', String(result.runId), '--max-usd', '0.0001', '--detach'], {env: env()})
    assert.equal(low.code, 2)
    assert.match(lines(low.stderr).at(-1)!, /max-usd \$0\.0001 is not above the \$0\.\d{4} run \d+ has already spent/)

    const resumed = await rvx(['runs', 'resume', String(result.runId), '--max-usd', '5', '--output-dir', out, '--json'], {env: env(), timeoutMs: 120_000})
    assert.equal(resumed.code, 0, resumed.stderr)
    const after = JSON.parse(resumed.stdout)
    assert.equal(after.status, 'completed')
    assert.equal(after.progress.companies.selected, 8)
    assert.ok((await costOf(result.runId)) > spent)
  })

  it('--max-usd needs a price for the model: a usage error naming RVX_PRICES; with a price file the run is created', async () => {
    const openai = {OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', OPENAI_MODEL: 'acme-llm-7b'}
    const res = await rvx(['orchestrate', '--criteria', CRITERIA, '--quantity', '3', '--max-usd', '2', '--detach'], {env: {...env(), ...openai}})
    assert.equal(res.code, 2)
    assert.ok(!hasStackTrace(res.stderr))
    assert.match(lines(res.stderr).at(-1)!, /max-usd needs the price of acme-llm-7b, which rvx does not know: give it in a JSON file \(RVX_PRICES=/)
    const before = (await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n

    const prices = path.join(out, 'prices.json')
    fs.writeFileSync(prices, JSON.stringify({'acme-llm-7b': {input: 1, cached: 0.5, output: 2}}))
    const ok = await rvx(['orchestrate', '--criteria', CRITERIA, '--quantity', '3', '--max-usd', '2', '--detach', '--json'], {
      env: {...env(), ...openai, RVX_PRICES: prices},
    })
    assert.equal(ok.code, 0, ok.stderr)
    const created = JSON.parse(ok.stdout)
    const run = await t.db.selectFrom('runs').select(['max_usd']).where('id', '=', created.runId).executeTakeFirstOrThrow()
    assert.equal(Number(run.max_usd), 2)
    await rvx(['runs', 'cancel', String(created.runId)], {env: env()})
    assert.equal((await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n, before + 1)

    const bad = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', CRITERIA, '--quantity', '3', '--max-usd', 'lots', '--detach'], {env: env()})
    assert.equal(bad.code, 2)
    assert.match(lines(bad.stderr).at(-1)!, /max-usd must be an amount in US dollars from 0.0001 to 1000000/)
  })

  it('a repeated run: no domain of the first is delivered again, the rest of what it knows is judged from the cache at no cost; --include-delivered reuses all of it', async () => {
    const first = JSON.parse((await orchestrate(['--criteria', CRITERIA, '--quantity', '6'])).stdout)
    assert.equal(first.status, 'completed')
    const firstDomains = readCsv(first.export.files.companies).map((c) => c.domain)
    assert.equal(firstDomains.length, 6)
    const firstCost = await costOf(first.runId)

    // The same request again: none of the six, and the candidates the first run researched but did not select cost nothing now.
    const second = JSON.parse((await orchestrate(['--criteria', CRITERIA, '--quantity', '6'])).stdout)
    assert.equal(second.status, 'completed')
    const secondCompanies = readCsv(second.export.files.companies)
    assert.equal(secondCompanies.length, 6)
    assert.deepEqual(
      secondCompanies.filter((c) => firstDomains.includes(c.domain)),
      [],
      'no domain of the first run is delivered again',
    )
    assert.ok(second.progress.suppression.delivered >= 6)
    const reused = secondCompanies.filter((c) => c.from_cache === 'true')
    assert.ok(second.progress.usage.cacheHits >= reused.length)

    // With --include-delivered: everything the first run researched comes from the cache, with its original date.
    const third = JSON.parse((await orchestrate(['--criteria', CRITERIA, '--quantity', '6', '--include-delivered'])).stdout)
    assert.equal(third.status, 'completed')
    const thirdCompanies = readCsv(third.export.files.companies)
    const again = thirdCompanies.filter((c) => firstDomains.includes(c.domain))
    assert.ok(again.length >= 1, 'delivered companies may come back with --include-delivered')
    assert.ok(
      again.every((c) => c.from_cache === 'true'),
      'a company researched before is judged from the cache',
    )
    const original = await t.db.selectFrom('companies').select(['domain', 'researched_at']).where('run_id', '=', first.runId).execute()
    for (const c of again) {
      assert.equal(c.researched_at, original.find((o) => o.domain === c.domain)!.researched_at!.toISOString(), 'researched_at keeps the original date')
    }

    const {rows} = await sql<{research: number}>`
      select count(*)::int as research from llm_calls l join tasks t on t.id = l.task_id
      where l.run_id = ${third.runId} and t.kind = 'company' and t.payload->>'companyId' in (
        select id::text from companies where run_id = ${third.runId} and from_cache)`.execute(t.db)
    assert.equal(rows[0].research, 0, 'no research call was paid for a company judged from the cache')
    assert.ok((await costOf(third.runId)) < firstCost * 0.5, 'the repeated run costs a fraction of the first')
    const contacts = readCsv(third.export.files.contacts)
    assert.ok(contacts.some((k) => k.from_cache === 'true'))

    // --fresh pays again.
    const fresh = JSON.parse((await orchestrate(['--criteria', CRITERIA, '--quantity', '3', '--include-delivered', '--fresh'])).stdout)
    assert.equal(fresh.progress.usage.cacheHits, 0)
    assert.ok(fresh.progress.usage.calls > 0)
  })

  it('--exclude @crm.csv keeps its domains out (a domain, website or url column); a CSV without one is a usage error', async () => {
    const probed = await orchestrate(['--criteria', '{"state":"TX","city":"Houston"}', '--quantity', '3', '--include-delivered'])
    assert.equal(probed.code, 0, probed.stderr)
    const probe = JSON.parse(probed.stdout)
    const probeDomains = readCsv(probe.export.files.companies).map((c) => c.domain)

    const crm = path.join(out, 'crm.csv')
    fs.writeFileSync(crm, `Company Name,Website,Owner\n${probeDomains.map((d, i) => `"Co ${i}, Inc",https://www.${d}/about,amy`).join('\n')}\n`)
    const res = await orchestrate(['--criteria', '{"state":"TX","city":"Houston"}', '--quantity', '3', '--include-delivered', '--exclude', `@${crm}`])
    assert.equal(res.code, 0, res.stderr)
    const result = JSON.parse(res.stdout)
    assert.equal(result.progress.suppression.excluded, probeDomains.length)
    assert.deepEqual(
      readCsv(result.export.files.companies).filter((c) => probeDomains.includes(c.domain)),
      [],
    )

    const noColumn = path.join(out, 'no-column.csv')
    fs.writeFileSync(noColumn, 'name,owner\nacme,amy\n')
    const bad = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', CRITERIA, '--quantity', '2', '--exclude', `@${noColumn}`], {env: env()})
    assert.equal(bad.code, 2)
    assert.match(lines(bad.stderr).at(-1)!, /has no column named domain, website, url \(its header: name, owner\)/)
    const missing = await rvx(['orchestrate', '--provider', 'simulated', '--criteria', CRITERIA, '--quantity', '2', '--exclude', '@/nonexistent/crm.csv'], {
      env: env(),
    })
    assert.equal(missing.code, 2)
    assert.match(lines(missing.stderr).at(-1)!, /cannot read \/nonexistent\/crm\.csv \(ENOENT\)/)
  })

  it("runs list states each run's leads, cost and $ per lead; cache stats counts hits and savings; cache clear empties it", async () => {
    const list = JSON.parse((await rvx(['runs', 'list', '--json'], {env: env()})).stdout)
    const completed = list.runs.find((r: {status: string; selected: number}) => r.status === 'completed' && r.selected > 0)
    assert.ok(completed.usage.costUsd > 0)
    const table = await rvx(['runs', 'list'], {env: env()})
    assert.match(table.stdout, /\$\/lead/i)

    const stats = JSON.parse((await rvx(['cache', 'stats', '--json'], {env: env()})).stdout)
    const research = stats.cache.find((c: {kind: string}) => c.kind === 'research')
    assert.ok(research.entries > 0 && research.hits > 0 && research.savedUsd > 0, JSON.stringify(research))

    const clear = JSON.parse((await rvx(['cache', 'clear', '--older-than', '1h', '--json'], {env: env()})).stdout)
    assert.equal(clear.removed, 0, 'nothing is an hour old yet')
    const all = JSON.parse((await rvx(['cache', 'clear', '--json'], {env: env()})).stdout)
    assert.ok(all.removed > 0)
    assert.equal((await sql<{n: number}>`select count(*)::int as n from research_cache`.execute(t.db)).rows[0].n, 0)
  })

  it('limits set configures a quota for the fleet and limits shows it', async () => {
    const set = await rvx(
      ['limits', 'set', '--model', 'gpt-4.1-mini', '--endpoint', 'http://user:secret@127.0.0.1:8000/v1', '--rpm', '120', '--tpm', '90000'],
      {env: env()},
    )
    assert.equal(set.code, 0, set.stderr)
    assert.doesNotMatch(set.stdout + set.stderr, /secret/)
    const shown = JSON.parse((await rvx(['limits', '--json'], {env: env()})).stdout)
    const limit = shown.limits.find((l: {key: string}) => l.key === 'http://127.0.0.1:8000/v1 gpt-4.1-mini')
    assert.ok(limit, JSON.stringify(shown))
    assert.equal(limit.limitRpm, 120)
    assert.equal(limit.limitTpm, 90000)
    assert.equal(limit.limitSource, 'configured')
    const none = await rvx(['limits', 'set', '--model', 'gpt-4.1-mini'], {env: env()})
    assert.equal(none.code, 2)
    assert.match(lines(none.stderr).at(-1)!, /needs --rpm, --tpm or both/)
  })
})
