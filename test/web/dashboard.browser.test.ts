/// <reference lib="dom" />
// (Callbacks passed to page.evaluate run in the browser.)
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
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
    for (const c of selected) {
      const links = await page.$$eval(`article[data-company="${c.id}"] .sources a`, (as) => as.map((a) => (a as HTMLAnchorElement).href))
      assert.deepEqual(
        links,
        (c.sources as string[]).map((s) => new URL(s).href),
        `source links of ${c.name}`,
      )
      const verdicts = c.verdicts as Record<string, FinalVerdict>
      const shown = await page.$$eval(`article[data-company="${c.id}"] table.verdicts tr`, (rows) =>
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
    }

    assert.ok((await page.locator('table.verdicts .evidence-item a').count()) > 0, 'verdicts come with evidence links')

    const best = await page.getAttribute('article.lead', 'data-company')
    await page.click(`article[data-company="${best}"] summary`)
    assert.ok(await page.isVisible(`article[data-company="${best}"] table.contacts`), 'contacts expand')
    if (SCREENSHOTS) await page.screenshot({path: path.join(SCREENSHOTS, 'dashboard-run.png')})

    // A name from a web page that is markup: it arrives through the live stream and must stay text.
    await t.db.updateTable('companies').set({name: HOSTILE_NAME}).where('id', '=', selected[1].id).execute()
    const name = await page.waitForSelector(`article[data-company="${selected[1].id}"] .company-name:text-is("${HOSTILE_NAME}")`, {timeout: 15_000})
    assert.equal(await name.textContent(), HOSTILE_NAME)
    await page.reload()
    assert.equal(await page.textContent(`article[data-company="${selected[1].id}"] .company-name`), HOSTILE_NAME)
    assert.equal(await page.locator('img').count(), 0, 'no image element made of it')
    assert.deepEqual(dialogs, [], 'no script ran')
  })

  it('on a 390 px phone the pages do not scroll sideways: a wide table scrolls inside its box, none is clipped', async () => {
    const phone = await browser.context.newPage()
    try {
      await phone.setViewportSize({width: 390, height: 844})
      for (const where of ['/runs', `/runs/${runId}`, '/fleet']) {
        await phone.goto(`${base}${where}`)
        await phone.click('article.lead summary').catch(() => {})
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
