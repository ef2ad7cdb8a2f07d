/// <reference lib="dom" />
// (Callbacks passed to page.evaluate run in the browser.)
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {sql} from 'kysely'
import type {Page} from 'playwright-core'

import {type FinalVerdict, VERDICT_KEYS} from '../../src/pipeline/verification.js'
import {type Browser, launchBrowser} from '../helpers/browser.js'
import {ROOT, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {spawnCli, type Spawned, waitFor} from '../helpers/processes.js'

const HOSTILE_NAME = '<img src=x onerror=alert(1)>'
/** RVX_SCREENSHOTS=1 (npm run screenshots) saves the run and fleet pages as the README's pictures. */
const SCREENSHOTS = process.env.RVX_SCREENSHOTS ? path.join(ROOT, 'docs') : undefined

/** Starts `rvx dashboard` and returns where it listens (from its log line). */
async function dashboard(args: string[], env: NodeJS.ProcessEnv): Promise<{server: Spawned; port: string}> {
  const server = spawnCli(['dashboard', '--port', '0', '--interval', '500ms', ...args], env)
  const m = await waitFor('the dashboard to listen', async () => /"url":"http:\/\/[^"]*:(\d+)\/"/.exec(server.stderr()), 30_000)
  return {server, port: m[1]}
}

/**
 * The dashboard in a real browser (Debian's headless Chromium) against a live
 * simulated run: `rvx orchestrate --detach`, `rvx worker` processes with
 * simulated latency so the run takes some seconds, `rvx dashboard` spawned
 * from the build, pages followed live over SSE.
 */
describe('dashboard in headless Chromium, against a live simulated run', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  const env = () => ({DATABASE_URL: t.url})
  const victimId = `w-victim-${randomBytes(3).toString('hex')}`
  let browser: Browser
  let page: Page
  let base: string
  let runId: number
  let server: Spawned
  const workers: Spawned[] = []
  const dialogs: string[] = []
  let out: string

  before(async () => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-dash-'))
    const [b, created] = await Promise.all([
      launchBrowser(),
      rvx(['orchestrate', '--provider', 'simulated', '--criteria', '{"pms":"Buildium","state":"TX"}', '--quantity', '6', '--detach', '--json'], {env: env()}),
    ])
    browser = b
    assert.equal(created.code, 0, created.stderr)
    runId = JSON.parse(created.stdout).runId
    const d = await dashboard([], env())
    server = d.server
    base = `http://127.0.0.1:${d.port}`
    page = await browser.context.newPage()
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message())
      void dialog.dismiss()
    })
  })

  after(async () => {
    await browser?.close()
    for (const w of [...workers, server]) w?.child.kill('SIGTERM')
    await Promise.all([...workers, server].map((w) => w?.exited))
    fs.rmSync(out, {recursive: true, force: true})
  })

  const barValues = (p: Page) => p.$$eval(`tr[data-run="${runId}"] progress`, (bars) => bars.map((b) => (b as HTMLProgressElement).value))

  it('the runs page lists the run, and its progress bars move as workers take it on, without a reload', async () => {
    await page.goto(`${base}/runs`)
    const before = await barValues(page)
    assert.equal(before.length, 3, 'a bar per stage')
    assert.ok(
      before.every((v) => v < 100),
      `nothing done yet: ${before}`,
    )
    await page.evaluate(() => ((window as unknown as {sameDocument: boolean}).sameDocument = true))

    const latency = ['--sim-latency', '150ms-400ms']
    workers.push(spawnCli(['worker', 'all', '--concurrency', '3', ...latency], env()))
    workers.push(spawnCli(['worker', 'company', '--id', victimId, '--concurrency', '2', ...latency], env()))
    const moved = await waitFor(
      'a bar to move',
      async () => {
        const now = await barValues(page)
        return now.some((v, i) => v > before[i]) && now
      },
      45_000,
      200,
    )
    assert.ok(moved.some((v, i) => v > before[i]))
    assert.equal(await page.evaluate(() => (window as unknown as {sameDocument?: boolean}).sameDocument), true, 'the same document: no reload')
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1)
    assert.match((await page.textContent('#live-status')) ?? '', /live · updated/)
  })

  it('the fleet page marks a SIGKILLed worker dead, live', async () => {
    await page.goto(`${base}/fleet`)
    await page.waitForSelector(`tr[data-worker="${victimId}"]:not(.dead)`, {timeout: 30_000})
    const victim = workers[1]
    victim.child.kill('SIGKILL')
    assert.equal((await victim.exited).signal, 'SIGKILL')
    const row = await page.waitForSelector(`tr[data-worker="${victimId}"].dead`, {timeout: 20_000})
    assert.match((await row.textContent()) ?? '', /dead/)
    assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'it turned dead without a reload')
    if (SCREENSHOTS) await page.screenshot({path: path.join(SCREENSHOTS, 'dashboard-fleet.png')})
  })

  it('the run page shows the selected companies with their verdicts and evidence links, and a hostile company name as text', async () => {
    await waitFor(
      'the run to complete',
      async () => (await t.db.selectFrom('runs').select('status').where('id', '=', runId).executeTakeFirstOrThrow()).status === 'completed',
      60_000,
      250,
    )
    await page.goto(`${base}/runs/${runId}`)
    const selected = await t.db
      .selectFrom('companies')
      .select(['id', 'name', 'sources', 'verdicts'])
      .where('run_id', '=', runId)
      .where('status', '=', 'selected')
      .orderBy('id')
      .execute()
    assert.equal(selected.length, 6)
    assert.equal(await page.locator('table.leads tr.lead-row').count(), 6, 'one row per company')
    for (const c of selected) {
      const lead = `tbody.lead[data-company="${c.id}"]`
      assert.equal(await page.isVisible(`${lead} table.verdicts`), false, `${c.name}: the verdicts wait below the row`)
      await page.click(`${lead} tr.lead-more summary`)
      assert.equal(await page.locator(`${lead} table.verdicts`).count(), 1, `${c.name}: its verdicts and evidence, once`)
      assert.ok(await page.isVisible(`${lead} table.verdicts`), `${c.name}: they expand below the row`)
      const verdicts = c.verdicts as Record<string, FinalVerdict>
      const shown = await page.$$eval(`${lead} table.verdicts tr`, (rows) =>
        rows.map((r) => ({
          key: r.getAttribute('data-verdict'),
          verdict: r.querySelector('.badge')?.textContent,
          evidence: Array.from(r.querySelectorAll('.evidence-item a'), (a) => (a as HTMLAnchorElement).href),
        })),
      )
      assert.deepEqual(
        shown,
        VERDICT_KEYS.filter((k) => verdicts[k]).map((k) => ({
          key: k,
          verdict: verdicts[k].verdict,
          evidence: verdicts[k].evidence.map((e) => new URL(e.url).href),
        })),
        `verdicts and evidence links of ${c.name}`,
      )
      const evidence = Object.values(verdicts).flatMap((v) => v.evidence.map((e) => new URL(e.url).href))
      const links = await page.$$eval(`${lead} tr.lead-more a`, (as) => as.map((a) => (a as HTMLAnchorElement).href))
      for (const url of new Set(evidence))
        assert.equal(
          links.filter((l) => l === url).length,
          evidence.filter((e) => e === url).length,
          `${c.name}: ${url} is shown once per verdict it stands for, nowhere else`,
        )
    }

    assert.ok((await page.locator('table.verdicts .evidence-item a').count()) > 0, 'verdicts come with evidence links')

    const best = await page.getAttribute('tbody.lead', 'data-company')
    assert.ok(await page.isVisible(`tbody.lead[data-company="${best}"] table.contacts`), 'contacts expand with the verdicts')
    if (SCREENSHOTS) await page.screenshot({path: path.join(SCREENSHOTS, 'dashboard-run.png')})

    // A name from a web page that is markup: it arrives through the live stream and must stay text.
    await t.db.updateTable('companies').set({name: HOSTILE_NAME}).where('id', '=', selected[1].id).execute()
    const name = await page.waitForSelector(`tbody[data-company="${selected[1].id}"] .company-name:text-is("${HOSTILE_NAME}")`, {timeout: 15_000})
    assert.equal(await name.textContent(), HOSTILE_NAME)
    await page.reload()
    assert.equal(await page.textContent(`tbody[data-company="${selected[1].id}"] .company-name`), HOSTILE_NAME)
    assert.equal(await page.locator('img').count(), 0, 'no image element made of it')
    assert.deepEqual(dialogs, [], 'no script ran')
  })

  it('on a 390 px phone the pages do not scroll sideways: a wide table scrolls inside its box, none is clipped', async () => {
    const phone = await browser.context.newPage()
    try {
      await phone.setViewportSize({width: 390, height: 844})
      for (const where of ['/runs', `/runs/${runId}`, '/fleet']) {
        await phone.goto(`${base}${where}`)
        // Expanded, so what expands is measured too (the run page only).
        if ((await phone.locator('tr.lead-more summary').count()) > 0) await phone.locator('tr.lead-more summary').first().click()
        const fit = await phone.evaluate(() => ({
          page: document.documentElement.scrollWidth,
          // What sticks out (for the failure message): elements wider than the screen whose parent is not.
          wide: Array.from(document.querySelectorAll('body *'))
            .filter((e) => e.getBoundingClientRect().right > 391 && (e.parentElement?.getBoundingClientRect().right ?? 0) <= 391)
            .slice(0, 5)
            .map((e) => `${e.tagName.toLowerCase()}.${e.className}`),
          tables: Array.from(document.querySelectorAll('table'), (table) => {
            const box = table.closest('.scroll')
            return {boxed: box !== null, box: box?.clientWidth ?? 0, reach: box?.scrollWidth ?? 0, table: table.offsetWidth}
          }),
        }))
        assert.ok(fit.page <= 390, `${where}: the page is ${fit.page} px wide (${fit.wide.join(', ')})`)
        assert.ok(fit.tables.length > 0, where)
        for (const t of fit.tables) {
          assert.ok(t.boxed && t.box <= 390, `${where}: a table outside a scrolling box: ${JSON.stringify(t)}`)
          assert.ok(t.reach >= t.table, `${where}: a table clipped: ${JSON.stringify(t)}`)
        }
      }
    } finally {
      await phone.close()
    }
  })

  it('a list longer than a page has pages: the 150 selected companies of a run, 100 and then 50, best first', async () => {
    const {rows} = await sql<{id: number}>`
      insert into runs (criteria, quantity, contacts_min, contacts_max, provider, options, status, stage, finished_at)
      values ('{"state":"TX"}', 150, 1, 3, 'simulated', '{}', 'completed', 'done', now()) returning id`.execute(t.db)
    const big = rows[0].id
    await sql`
      insert into companies (run_id, domain, name, status, icp_score, reasons, sources, discovered_by)
      select ${big}, 'c' || n || '.example', 'Company ' || n, 'selected', 100 - n / 2, '[]', '[]', 'simulated' from generate_series(1, 150) n`.execute(t.db)
    const p = await browser.context.newPage()
    try {
      await p.goto(`${base}/runs/${big}`)
      assert.equal(await p.textContent('#run-leads .pager-where'), '1-100 of 150')
      assert.equal(await p.locator('tr.lead-row').count(), 100)
      // Scores 100 down to 25 (two companies each): best first, then in the order they were found.
      assert.equal(await p.textContent('tr.lead-row .company-name'), 'Company 1', 'best first')
      await Promise.all([p.waitForURL(/selected=2/), p.click('#run-leads a[rel="next"]')])
      assert.equal(await p.textContent('#run-leads .pager-where'), '101-150 of 150')
      assert.equal(await p.locator('tr.lead-row').count(), 50)
      assert.equal(await p.textContent('tr.lead-row .company-name'), 'Company 101')
      assert.equal(await p.locator('#run-leads a[rel="next"]').count(), 0, 'the last page')
      await Promise.all([p.waitForURL(/selected=1/), p.locator('#run-leads a[rel="prev"]').first().click()])
      assert.equal(await p.locator('tr.lead-row').count(), 100)
    } finally {
      await p.close()
    }
  })

  it('the CSV downloads are the files rvx runs export writes', async () => {
    const exported = await rvx(['runs', 'export', String(runId), '--output-dir', out, '--json'], {env: env()})
    assert.equal(exported.code, 0, exported.stderr)
    const files = JSON.parse(exported.stdout).files as {companies: string; contacts: string}
    for (const name of ['companies', 'contacts'] as const) {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(`a[href="/runs/${runId}/${name}.csv"]`)])
      assert.equal(download.suggestedFilename(), `run-${runId}-${name}.csv`)
      const saved = path.join(out, `browser-${name}.csv`)
      await download.saveAs(saved)
      assert.equal(fs.readFileSync(saved, 'utf8'), fs.readFileSync(files[name], 'utf8'))
    }
  })

  it('on a non-loopback bind, a request without the token is refused, and the one-time link lets the browser in', async () => {
    const token = randomBytes(16).toString('hex')
    const secured = await dashboard(['--host', '0.0.0.0'], {...env(), RVX_DASHBOARD_TOKEN: token})
    try {
      const url = `http://127.0.0.1:${secured.port}`
      const refused = await page.goto(`${url}/runs`)
      assert.equal(refused?.status(), 401)
      assert.match((await page.textContent('body')) ?? '', /a token is required/)

      const admitted = await page.goto(`${url}/runs?token=${token}`)
      assert.equal(admitted?.status(), 200)
      assert.equal(page.url(), `${url}/runs`, 'the token left the address bar')
      await page.waitForSelector(`tr[data-run="${runId}"]`)
      await page.waitForFunction(() => /live · updated/.test(document.getElementById('live-status')?.textContent ?? ''), undefined, {timeout: 15_000})
    } finally {
      secured.server.child.kill('SIGTERM')
      await secured.server.exited
    }
  })
})
