import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import {Kysely, PostgresDialect, sql} from 'kysely'

import {prices} from '../../src/agents/prices.js'
import {DEFAULT_SIMULATION, SimulatedProvider} from '../../src/agents/simulated.js'
import {createPool} from '../../src/db/connect.js'
import type {Database} from '../../src/db/schema.js'
import {renderRun} from '../../src/pipeline/export.js'
import {driveRun} from '../../src/pipeline/orchestrator.js'
import {runScope} from '../../src/pipeline/run-options.js'
import {createRun} from '../../src/pipeline/runs.js'
import {STAGES} from '../../src/pipeline/stages/index.js'
import {saveUsage} from '../../src/pipeline/usage.js'
import {dropReason, dropsByReason} from '../../src/pipeline/drops.js'
import {type FinalVerdict, VERDICT_KEYS} from '../../src/pipeline/verification.js'
import {recordConditions} from '../../src/monitor/conditions.js'
import {claimTasks, enqueue, failTask} from '../../src/runtime/index.js'
import {silentLogger} from '../../src/runtime/logger.js'
import {COOKIE} from '../../src/web/auth.js'
import {type Dashboard, startDashboard} from '../../src/web/server.js'
import {hasStackTrace, lines, rvx} from '../helpers/cli.js'
import {useFreshDatabase} from '../helpers/db.js'
import {spawnCli, waitFor} from '../helpers/processes.js'
import {FAST} from '../helpers/runtime.js'
import {get, SseClient} from '../helpers/sse.js'

const SIZE = {contactsMin: 1, contactsMax: 3}
/** The stages of the runs here (none opts into an opt-in stage). */
const RUN_STAGES = STAGES.filter((s) => !s.optIn)
const HOSTILE_NAME = '<img src=x onerror=alert(1)>'

/** Text as the pages write it (hono's escaping). */
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')

/** An external link as the pages write it. */
const link = (url: string) => `<a href="${escape(new URL(url).href)}" rel="noopener noreferrer nofollow"`

/** The text of the element `<tag ... data-x="id">...</tag>` (first one), for assertions about one row. */
function rowOf(body: string, attribute: string, id: number): string {
  const start = body.indexOf(`${attribute}="${id}"`)
  assert.ok(start >= 0, `no element with ${attribute}="${id}"`)
  return body.slice(start, body.indexOf('</tr>', start))
}

/** The value of each stage's bar in a piece of HTML, by stage name. */
function bars(html: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const m of html.matchAll(/data-stage="(\w+)"[\s\S]*?<progress max="100" value="(\d+)"/g)) out[m[1]] ??= Number(m[2])
  return out
}

describe('dashboard: routes, escaping, tokens and one shared live read (HTTP against an in-process server)', function () {
  this.timeout(120_000)
  const t = useFreshDatabase()
  let dash: Dashboard
  let base: string
  let done: number
  let short: number

  const drive = (runId: number, supply?: number) =>
    driveRun({
      db: t.db,
      databaseUrl: t.url,
      runId,
      providerFor: () => new SimulatedProvider({...DEFAULT_SIMULATION, ...(supply === undefined ? {} : {supply})}),
      concurrency: 2,
      signal: new AbortController().signal,
      config: FAST,
    })

  before(async () => {
    // The simulated model made free here (RVX_PRICES), so the one paid call below is all the cost figures and the $ chart show.
    const pricesFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rvx-prices-')), 'prices.json')
    fs.writeFileSync(pricesFile, JSON.stringify({'sim-1': {input: 0, cached: 0, output: 0}}))
    // In force for this process while the runs are driven (as a command's environment would put it), then the built-in table again.
    prices({RVX_PRICES: pricesFile})
    try {
      const a = await createRun(t.db, {criteria: {pms: 'Buildium', state: 'TX'}, size: {quantity: 4, ...SIZE}, provider: 'simulated'})
      assert.equal((await drive(a.id)).status, 'completed')
      done = a.id
      const b = await createRun(t.db, {criteria: {pms: 'AppFolio', state: 'NC'}, size: {quantity: 30, ...SIZE}, provider: 'simulated'})
      assert.equal((await drive(b.id, 12)).status, 'needs_decision')
      short = b.id
    } finally {
      prices({})
      fs.rmSync(path.dirname(pricesFile), {recursive: true, force: true})
    }

    // A paid call of one research task, for the cost figures and the $ chart.
    const task = await t.db.selectFrom('tasks').select('id').where('scope', '=', runScope(done)).where('kind', '=', 'company').executeTakeFirstOrThrow()
    await saveUsage(t.db, [
      {
        runId: done,
        taskId: task.id,
        provider: 'openai',
        model: 'm',
        inputTokens: 10,
        outputTokens: 5,
        cachedTokens: 0,
        latencyMs: 5,
        costUsd: 0.0123,
        outcome: 'ok',
      },
    ])
    dash = await startDashboard({db: t.db, host: '127.0.0.1', port: 0, intervalMs: 200, log: silentLogger})
    base = dash.url.replace(/\/$/, '')
  })

  after(() => dash?.close())

  it('GET /runs lists every run with its status, a bar per stage of the stage table, counts, cost and age; ?status filters', async () => {
    const res = await get(`${base}/runs`)
    assert.equal(res.status, 200)
    assert.match(String(res.headers['content-type']), /^text\/html/)
    const row = rowOf(res.body, 'data-run', done)
    assert.match(row, new RegExp(`href="/runs/${done}"`))
    assert.match(row, /status-completed/)
    assert.deepEqual(bars(row), Object.fromEntries(RUN_STAGES.map((s) => [s.name, 100])), 'a completed run: every stage it has full')
    assert.match(row, /4\/4 selected/)
    assert.match(row, /\$0\.0123/)
    const shortRow = rowOf(res.body, 'data-run', short)
    assert.match(shortRow, /status-needs_decision/)
    assert.deepEqual(
      Object.keys(bars(shortRow)),
      RUN_STAGES.map((s) => s.name),
    )
    assert.ok(bars(shortRow).contacts < 100, `short of its target: ${JSON.stringify(bars(shortRow))}`)

    const completed = await get(`${base}/runs?status=completed`)
    assert.match(completed.body, new RegExp(`data-run="${done}"`))
    assert.doesNotMatch(completed.body, new RegExp(`data-run="${short}"`))
    const waiting = await get(`${base}/runs?status=needs_decision`)
    assert.match(waiting.body, new RegExp(`data-run="${short}"`))
    assert.doesNotMatch(waiting.body, new RegExp(`data-run="${done}"`))
    const bad = await get(`${base}/runs?status=sleeping`)
    assert.equal(bad.status, 400)
    assert.match(bad.body, /status must be one of running, needs_decision, completed, failed, canceled/)
  })

  it('GET /runs/:id shows the header, the selected companies with their verdicts, evidence and contacts (email status), the disqualified and why, downloads and task events', async () => {
    const res = await get(`${base}/runs/${done}`)
    assert.equal(res.status, 200)
    assert.match(res.body, /<span class="selected-count">4<\/span> of 4 selected/)
    assert.match(res.body, /\$0\.0123 \(simulated\)/, 'cost, labelled: the run is simulated')
    // Cost per lead: the cost over the 4 companies delivered.
    assert.match(res.body, /\$ per lead<\/dt>\s*<dd>\$0\.0031<\/dd>/)
    const selected = await t.db.selectFrom('companies').selectAll().where('run_id', '=', done).where('status', '=', 'selected').execute()
    assert.equal(selected.length, 4)
    let evidence = 0
    assert.equal(res.body.match(/<tr class="lead-row">/g)?.length, 4, 'one row per company')
    for (const c of selected) {
      // The company's rows: up to the next company's, or the end of the list.
      const start = res.body.indexOf(`<tbody class="lead" data-company="${c.id}"`)
      const next = res.body.indexOf('<tbody class="lead"', start + 1)
      const card = res.body.slice(start, next > 0 ? next : res.body.indexOf('id="run-disqualified"'))
      const row = card.slice(0, card.indexOf('</tr>'))
      assert.ok(row.includes(escape(c.name)), `the row names ${c.name}`)
      assert.ok(row.includes(`>${c.domain}</a>`), `the row links ${c.domain}`)
      assert.match(row, new RegExp(`<td class="num icp">${c.icp_score}`), 'its ICP score')
      const verdicts = c.verdicts as Record<string, FinalVerdict>
      // The reasons the verdicts table does not say already; each verdict's own line is not repeated.
      for (const reason of c.reasons as string[]) {
        const own = !(reason.slice(0, reason.indexOf(':')) in verdicts)
        assert.equal(card.includes(`<li>${escape(reason)}</li>`), own, `reason ${reason}`)
      }

      // Evidence once: each link as often as the verdicts cite it, no list of sources beside them.
      const cited = Object.values(verdicts).flatMap((v) => v.evidence.map((e) => e.url))
      const below = card.slice(row.length)
      for (const url of new Set(cited))
        assert.equal(below.split(link(url)).length - 1, cited.filter((u) => u === url).length, `${c.name}: ${url} shown once per verdict`)
      assert.ok(Object.keys(verdicts).length > 0, 'research recorded verdicts')
      for (const key of VERDICT_KEYS.filter((k) => verdicts[k])) {
        const row = card.slice(card.indexOf(`<tr data-verdict="${key}">`), card.indexOf('</tr>', card.indexOf(`<tr data-verdict="${key}">`)))
        assert.ok(row.includes(`verdict-${verdicts[key].verdict}">${verdicts[key].verdict}</span>`), `${c.name}: ${key} is ${verdicts[key].verdict}`)
        for (const e of verdicts[key].evidence) {
          assert.ok(row.includes(link(e.url)), `${key} evidence ${e.url}`)
          if (e.quote) assert.ok(row.includes(`<q>${escape(e.quote)}</q>`), `${key} quote ${e.quote}`)
          evidence++
        }
      }

      const contacts = await t.db.selectFrom('contacts').select(['full_name', 'email_status']).where('company_id', '=', c.id).execute()
      assert.ok(contacts.length > 0)
      assert.match(card, new RegExp(`<details data-key="lead-${c.id}">\\s*<summary>verdicts and evidence, ${contacts.length} contacts?</summary>`))
      for (const k of contacts) {
        assert.ok(card.includes(`<td>${escape(k.full_name)}</td>`), `contact ${k.full_name}`)
        if (k.email_status) assert.ok(card.includes(`class="badge email-${k.email_status}"`), `email status of ${k.full_name}`)
      }
    }

    assert.ok(evidence > 0, 'verdicts came with evidence')
    const disqualified = await t.db.selectFrom('companies').selectAll().where('run_id', '=', done).where('status', '=', 'disqualified').execute()
    assert.ok(disqualified.length > 0)
    for (const c of disqualified) {
      const row = rowOf(res.body, 'data-company', c.id)
      assert.ok(row.includes(escape((c.reasons as string[]).join('; '))), `why ${c.name} was not picked`)
      assert.ok(c.disqualified_by.length > 0)
      const said = c.disqualified_by.map((k) => dropReason(k, (c.verdicts as Record<string, FinalVerdict>)[k]?.verdict ?? null)).join(', ')
      assert.match(row, new RegExp(`<td class="kept-out">\\s*${said}\\s*</td>`), `what kept ${c.name} out`)
    }

    // The drops by reason, as runs show counts them.
    for (const d of await dropsByReason(t.db, done))
      assert.match(res.body, new RegExp(`<tr data-reason="${d.key}">\\s*<td>${d.reason}</td>\\s*<td class="num">${d.count}</td>`))
    for (const file of ['companies.csv', 'contacts.csv', 'companies.json', 'contacts.json']) assert.ok(res.body.includes(`href="/runs/${done}/${file}"`))
    assert.match(res.body, /<td>completed<\/td>/, 'task events')
    assert.doesNotMatch(res.body, /needs a decision/)
  })

  it('a run that needs a decision shows its options as the commands to run', async () => {
    const res = await get(`${base}/runs/${short}`)
    assert.match(res.body, /This run needs a decision/)
    assert.ok(res.body.includes(`<code>rvx runs accept ${short}</code>`))
    assert.ok(
      res.body.includes(`<code>rvx runs resume ${short} --criteria &#39;{&quot;pms&quot;:&quot;AppFolio&quot;,&quot;state&quot;:&quot;NC&quot;}&#39;</code>`),
    )
    assert.ok(res.body.includes(`<code>rvx runs cancel ${short}</code>`))
    assert.match(res.body, /Selected companies \(\d+\)/)
  })

  it('the run page lists tasks that failed with their error, and marks the failure among the task events', async () => {
    const [task] = await enqueue(t.db, {kind: 'company', payload: {runId: short, companyId: 0}, scope: runScope(short)})
    const [claimed] = await claimTasks(t.db, {
      workerId: 'w-test',
      kinds: ['company'],
      limit: 1,
      leaseMs: 30_000,
      pool: 'default',
      capabilities: [],
      memoryAvailableGb: 64,
      gpuVramAvailableGb: 0,
      scope: runScope(short),
    })
    assert.equal(claimed.id, task.id)
    await failTask(t.db, {taskId: claimed.id, epoch: claimed.epoch, workerId: 'w-test'}, '<b>boom</b>: the provider said no', {permanent: true, retryInMs: 0})
    const res = await get(`${base}/runs/${short}`)
    const problem = res.body.slice(res.body.indexOf('<table class="problems">'), res.body.indexOf('</table>', res.body.indexOf('<table class="problems">')))
    assert.match(problem, new RegExp(`<td class="num">${task.id}</td>\\s*<td>research</td>\\s*<td>failed</td>`))
    assert.ok(problem.includes('&lt;b&gt;boom&lt;/b&gt;: the provider said no'))
    assert.match(
      res.body,
      new RegExp(`<tr class="bad">\\s*<td>[^<]+</td>\\s*<td class="num">${task.id}</td>\\s*<td>research</td>\\s*<td>failed</td>`),
      'the failed event',
    )
  })

  it("the CSV and JSON downloads are renderRun's files (what rvx runs export writes), as attachments", async () => {
    for (const format of ['csv', 'json'] as const) {
      const rendered = await renderRun(t.db, done, format)
      for (const name of ['companies', 'contacts'] as const) {
        const res = await get(`${base}/runs/${done}/${name}.${format}`)
        assert.equal(res.status, 200)
        assert.equal(res.body, rendered.files[name])
        assert.equal(res.headers['content-disposition'], `attachment; filename="run-${done}-${name}.${format}"`)
        assert.match(String(res.headers['content-type']), format === 'csv' ? /^text\/csv/ : /^application\/json/)
      }
    }
  })

  it('unknown runs and paths are 404 pages, a bad stream request is 400; nothing but GET is served', async () => {
    assert.equal((await get(`${base}/runs/99999`)).status, 404)
    assert.match((await get(`${base}/runs/99999`)).body, /run 99999 does not exist/)
    assert.equal((await get(`${base}/runs/99999/companies.csv`)).status, 404)
    assert.equal((await get(`${base}/runs/abc`)).status, 404)
    assert.equal((await get(`${base}/runs/${done}/secrets.txt`)).status, 404)
    assert.equal((await get(`${base}/assets/../package.json`)).status, 404)
    assert.equal((await get(`${base}/nowhere`)).status, 404)
    assert.equal((await get(`${base}/events?page=nothing`)).status, 400)
    const post = await fetch(`${base}/runs`, {method: 'POST'})
    assert.equal(post.status, 404)
    const root = await fetch(`${base}/`, {redirect: 'manual'})
    assert.equal(root.headers.get('location'), '/runs')
  })

  it('serves a favicon (no 404 for /favicon.ico) and every page links it', async () => {
    for (const url of [`${base}/favicon.ico`, `${base}/assets/favicon.svg`]) {
      const icon = await fetch(url)
      assert.equal(icon.status, 200, url)
      assert.equal(icon.headers.get('content-type'), 'image/svg+xml')
      assert.match(await icon.text(), /^<svg /)
    }

    for (const path of ['/runs', `/runs/${done}`, '/fleet'])
      assert.ok((await get(`${base}${path}`)).body.includes('<link rel="icon" href="/assets/favicon.svg"'), path)
  })

  it('lists longer than a page have pages: runs 100 at a time (?p=), a bad page number is a 400', async () => {
    const before = (await sql<{n: number}>`select count(*)::int as n from runs`.execute(t.db)).rows[0].n
    const {rows} = await sql<{id: number}>`
      insert into runs (criteria, quantity, contacts_min, contacts_max, provider, options, status)
      select '{"state":"TX"}', 1, 1, 3, 'simulated', '{}', 'canceled' from generate_series(1, 105 - ${before}) returning id`.execute(t.db)
    try {
      const first = await get(`${base}/runs`)
      assert.equal(first.body.match(/<tr data-run=/g)?.length, 100)
      assert.match(first.body, /<span class="pager-where">1-100 of 105<\/span>/)
      assert.ok(first.body.includes('<a rel="next" href="/runs?p=2">'))
      const second = await get(`${base}/runs?p=2`)
      assert.equal(second.body.match(/<tr data-run=/g)?.length, 5)
      assert.match(second.body, /<span class="pager-where">101-105 of 105<\/span>/)
      assert.match(second.body, new RegExp(`data-run="${done}"`), 'the oldest runs are on the last page')
      assert.ok(second.body.includes('<a rel="prev" href="/runs?p=1">'))
      assert.doesNotMatch(second.body, /rel="next"/)
      assert.match((await get(`${base}/runs?status=canceled`)).body, new RegExp(`<span class="pager-where">1-100 of ${rows.length}</span>`))
      // The live stream of page 2 sends page 2.
      const sse = await SseClient.open(`${base}/events?page=runs&p=2`)
      try {
        const {event} = await sse.next((e) => e.event === 'regions')
        assert.equal(JSON.parse(event.data)['runs-table'].match(/<tr data-run=/g)?.length, 5)
      } finally {
        sse.close()
      }

      for (const bad of ['/runs?p=0', '/runs?p=x', `/runs/${done}?selected=-1`, '/events?page=runs&p=999999999']) {
        const res = await get(`${base}${bad}`)
        assert.equal(res.status, 400, bad)
      }
    } finally {
      await t.db
        .deleteFrom('runs')
        .where(
          'id',
          'in',
          rows.map((r) => r.id),
        )
        .execute()
    }
  })

  it('a finished run says how long it took; one that has not finished, its time so far', async () => {
    const finished = (await get(`${base}/runs/${done}`)).body
    assert.match(finished, /<dt>took<\/dt>/)
    assert.doesNotMatch(finished, /time so far/)
    assert.match((await get(`${base}/runs/${short}`)).body, /<dt>time so far<\/dt>/)
  })

  it('every table sits in a box that scrolls sideways on a narrow screen', async () => {
    for (const path of ['/runs', `/runs/${done}`, '/fleet']) {
      const body = (await get(`${base}${path}`)).body
      const tables = body.match(/<table/g)?.length ?? 0
      assert.ok(tables > 0, path)
      assert.equal(body.match(/<div class="scroll">\s*<table/g)?.length ?? 0, tables, path)
    }
  })

  it('every response has the security headers: a CSP without inline script or style, nosniff, no-referrer, no framing', async () => {
    const sse = await SseClient.open(`${base}/events?page=fleet`)
    sse.close()
    const responses = [
      await get(`${base}/runs`),
      await get(`${base}/runs/${done}`),
      await get(`${base}/fleet`),
      await get(`${base}/assets/live.js`),
      await get(`${base}/runs/${done}/companies.csv`),
      await get(`${base}/nowhere`),
      {status: sse.status, headers: sse.headers, body: ''},
    ]
    for (const r of responses) {
      const csp = String(r.headers['content-security-policy'])
      assert.match(csp, /default-src 'none'/)
      assert.match(csp, /script-src 'self'(;|$)/)
      assert.match(csp, /style-src 'self'(;|$)/)
      assert.match(csp, /frame-ancestors 'none'/)
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/)
      assert.equal(r.headers['x-content-type-options'], 'nosniff')
      assert.equal(r.headers['referrer-policy'], 'no-referrer')
      assert.equal(r.headers['x-frame-options'], 'DENY')
    }

    for (const r of responses.slice(0, 3)) {
      assert.doesNotMatch(r.body, /<script(?![^>]*\ssrc=)/, 'no inline script')
      assert.doesNotMatch(r.body, /\sstyle=|\son[a-z]+=/i, 'no inline style or handler')
      assert.equal(r.headers['cache-control'], 'no-store')
    }

    assert.equal(sse.status, 200)
    assert.match(String(sse.headers['content-type']), /^text\/event-stream/)
  })

  it('values from web pages and models are escaped: a hostile company name, reason and source render as text; only http(s) sources are links', async () => {
    const victim = await t.db.selectFrom('companies').select('id').where('run_id', '=', done).where('status', '=', 'selected').executeTakeFirstOrThrow()
    await t.db
      .updateTable('companies')
      .set({
        name: HOSTILE_NAME,
        reasons: JSON.stringify(['<script>alert(2)</script> uses Buildium']),
        website: 'javascript:alert(3)',
        verdicts: JSON.stringify({
          pms: {
            verdict: 'match',
            by: 'model',
            evidence: [
              {url: 'javascript:alert(5)', quote: '</q><script>alert(6)</script>'},
              {url: 'https://ok.example/"onmouseover="alert(4)', quote: ''},
            ],
            note: '<i>7</i>',
          },
        }),
      })
      .where('id', '=', victim.id)
      .execute()
    const sse = await SseClient.open(`${base}/events?page=run&id=${done}`)
    try {
      const page = (await get(`${base}/runs/${done}`)).body
      const {event} = await sse.next((e) => e.event === 'regions' && e.data.includes('run-leads'))
      const live = JSON.parse(event.data)['run-leads'] as string
      for (const html of [page, live]) {
        assert.ok(html.includes('&lt;img src=x onerror=alert(1)&gt;'), 'the name, as text')
        assert.ok(!html.includes('<img src=x'), 'never as markup')
        assert.ok(html.includes('<li>&lt;script&gt;alert(2)&lt;/script&gt; uses Buildium</li>'))
        assert.ok(!html.includes('<script>alert(2)'))
        assert.ok(/<td class="domain"><span>[^<]+<\/span><\/td>/.test(html), 'a javascript: website is shown, not linked')
        assert.ok(!/href="javascript:/i.test(html))
        assert.ok(html.includes('href="https://ok.example/%22onmouseover=%22alert(4)"'), 'a quote in a URL cannot leave its attribute')
        assert.ok(
          html.includes('<span>javascript:alert(5)</span> <q>&lt;/q&gt;&lt;script&gt;alert(6)&lt;/script&gt;</q>'),
          'evidence: the URL as text, the quote escaped',
        )
        assert.ok(html.includes('<div class="note">&lt;i&gt;7&lt;/i&gt;</div>'))
      }
    } finally {
      sse.close()
    }
  })

  it('a hostile company name is text on every page that shows one: the disqualified table, a task error and an alert too, served and live', async () => {
    const hostile = '<img src=x onerror=alert(9)>"><svg onload=alert(10)>'
    const escaped = escape(hostile)
    const out = await t.db.selectFrom('companies').select(['id', 'run_id', 'name']).where('status', '=', 'disqualified').orderBy('id').executeTakeFirstOrThrow()
    const runId = Number(out.run_id)
    await t.db.updateTable('companies').set({name: hostile}).where('id', '=', out.id).execute()
    // A failed task's error and an open alert that name the company (as a model's or a page's words can).
    const task = await t.db
      .selectFrom('tasks')
      .select(['id', 'status', 'last_error'])
      .where('scope', '=', runScope(runId))
      .where('kind', '=', 'company')
      .where('status', '=', 'completed')
      .orderBy('id')
      .executeTakeFirstOrThrow()
    await t.db
      .updateTable('tasks')
      .set({status: 'failed', last_error: `research of ${hostile} failed`})
      .where('id', '=', task.id)
      .execute()
    await recordConditions(t.db, [{key: 'test:hostile', kind: 'run_stuck', severity: 'warning', subject: `research of ${hostile} is stuck`, details: {}}], {
      deliverNow: true,
    })
    const runSse = await SseClient.open(`${base}/events?page=run&id=${runId}`)
    const fleetSse = await SseClient.open(`${base}/events?page=fleet`)
    try {
      const page = (await get(`${base}/runs/${runId}`)).body
      const {event} = await runSse.next((e) => e.event === 'regions' && e.data.includes('run-disqualified') && e.data.includes('run-activity'))
      const live = JSON.parse(event.data) as Record<string, string>
      const fleet = (await get(`${base}/fleet`)).body
      const {event: fleetEvent} = await fleetSse.next((e) => e.event === 'regions' && e.data.includes('fleet-alerts'))
      const liveFleet = Object.values(JSON.parse(fleetEvent.data) as Record<string, string>).join('\n')
      const disqualifiedRow = rowOf(page, 'data-company', Number(out.id))
      assert.ok(disqualifiedRow.includes(`<td class="company-name">${escaped}</td>`), 'the disqualified table names it as text')
      for (const [where, html] of [
        ['the run page', page],
        ['its live disqualified table', live['run-disqualified']],
        ['its live activity (the task error)', live['run-activity']],
        ['the fleet page (the alert)', fleet],
        ['the live fleet page', liveFleet],
      ] as const) {
        assert.ok(html.includes(escaped), `${where}: the name as text`)
        assert.ok(!/<img src=x|<svg onload/.test(html), `${where}: never as markup`)
      }
    } finally {
      runSse.close()
      fleetSse.close()
      // As the tests after this one expect the runs.
      await t.db.updateTable('companies').set({name: out.name}).where('id', '=', out.id).execute()
      await t.db.updateTable('tasks').set({status: task.status, last_error: task.last_error}).where('id', '=', task.id).execute()
      await sql`delete from alerts where key = 'test:hostile'`.execute(t.db)
    }
  })

  it('GET /fleet shows workers by stage, the queue, runs in progress, open alerts and the last-hour chart', async () => {
    await recordConditions(t.db, [{key: 'test:alert', kind: 'run_stuck', severity: 'warning', subject: 'run <b>7</b> is stuck', details: {}}], {
      deliverNow: true,
    })
    const res = await get(`${base}/fleet`)
    assert.equal(res.status, 200)
    assert.ok(res.body.includes('run &lt;b&gt;7&lt;/b&gt; is stuck'), 'the open alert, escaped')
    // The in-process workers of the runs above have stopped: their stages and last-5-minute completions remain, named as stages.
    assert.match(res.body, /<h2>Workers by stage<\/h2>/)
    for (const s of RUN_STAGES) assert.match(res.body, new RegExp(`<td>${s.name}</td>`))
    for (const s of STAGES) if (s.kind !== s.name) assert.doesNotMatch(res.body, new RegExp(`<td>${s.kind}</td>`))
    assert.match(res.body, /Tasks completed per minute <span class="total">\((\d+) in the last hour\)/)
    const completed = Number(/Tasks completed per minute <span class="total">\((\d+) in the last hour\)/.exec(res.body)![1])
    const events = await t.db
      .selectFrom('task_events')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('event', '=', 'completed')
      .executeTakeFirstOrThrow()
    assert.equal(completed, Number(events.n))
    assert.match(res.body, /\$ per minute <span class="total">\(\$0\.0123 in the last hour\)/)
    assert.match(res.body, /<title>research: \$0\.0123, this minute<\/title>/)
    // Scaled to where the data is: everything above happened in the last minutes, so the axis spans 10, not 60.
    assert.equal(res.body.match(/>10 min ago<\/text>/g)?.length, 2, 'both charts')
    assert.doesNotMatch(res.body, />60 min ago</)
  })

  it('the live stream sends every region of its page first, then only the regions that changed, on one connection', async () => {
    const sse = await SseClient.open(`${base}/events?page=run&id=${done}`)
    try {
      const first = await sse.next((e) => e.event === 'regions')
      assert.deepEqual(Object.keys(JSON.parse(first.event.data)).sort(), [
        'live-status',
        'run-activity',
        'run-decision',
        'run-disqualified',
        'run-header',
        'run-leads',
      ])
      const quiet = await sse.next((e) => e.event === 'regions', first.index + 1)
      assert.deepEqual(Object.keys(JSON.parse(quiet.event.data)), ['live-status'], 'a finished run: only the status line changes')
      const company = await t.db
        .selectFrom('companies')
        .select('id')
        .where('run_id', '=', done)
        .where('status', '=', 'selected')
        .orderBy('id', 'desc')
        .executeTakeFirstOrThrow()
      await t.db.updateTable('companies').set({name: 'Renamed Realty'}).where('id', '=', company.id).execute()
      const change = await sse.next((e) => e.event === 'regions' && e.data.includes('Renamed Realty'), quiet.index + 1)
      assert.deepEqual(
        Object.keys(JSON.parse(change.event.data)).filter((k) => k !== 'live-status'),
        ['run-leads'],
        'only the region that shows the name (and the status line, once a second)',
      )
    } finally {
      sse.close()
    }

    const runs = await SseClient.open(`${base}/events?page=runs`)
    try {
      const first = await runs.next((e) => e.event === 'regions')
      assert.deepEqual(Object.keys(JSON.parse(first.event.data)).sort(), ['live-status', 'runs-filter', 'runs-table'])
      const added = await createRun(t.db, {criteria: {state: 'FL'}, size: {quantity: 2, ...SIZE}, provider: 'simulated'})
      const change = await runs.next((e) => e.event === 'regions' && e.data.includes(`data-run=\\"${added.id}\\"`), first.index + 1)
      assert.ok(JSON.parse(change.event.data)['runs-filter'].includes('running (1)'))
    } finally {
      runs.close()
    }
  })

  it('ten live viewers cost the database what one does: each tick reads each source once and sends the same queries', async () => {
    for (const page of ['fleet', `run&id=${done}`, 'runs']) {
      const d = await startDashboard({db: t.db, host: '127.0.0.1', port: 0, intervalMs: 150, chartEveryMs: 150, log: silentLogger})
      const clients: SseClient[] = []
      try {
        const url = `${d.url}events?page=${page}`
        const phase = async (viewers: number) => {
          while (clients.length < viewers) clients.push(await SseClient.open(url))
          await Promise.all(clients.map((c) => c.next((e) => e.event === 'regions')))
          const from = d.stats().ticks.at(-1)!.tick
          const ticks = await waitFor('four ticks with every viewer', async () => {
            const t = d.stats().ticks.filter((x) => x.tick > from && x.clients === viewers)
            return t.length >= 4 && t
          })
          return ticks
        }

        const one = await phase(1)
        const ten = await phase(10)
        const perTick = one[0].queries
        assert.ok(perTick > 0)
        assert.deepEqual(
          ten.map((x) => [x.reads, x.queries]),
          ten.map(() => [one[0].reads, perTick]),
          `${page}: one viewer ${JSON.stringify(one)}, ten ${JSON.stringify(ten)}`,
        )
        assert.deepEqual(
          one.map((x) => x.queries),
          one.map(() => perTick),
        )
        assert.equal(d.stats().streams, 10)
      } finally {
        for (const c of clients) c.close()
        await d.close()
      }
    }
  })

  it('a port in use is a one-line usage error that names the flag', async () => {
    const port = Number(new URL(base).port)
    await assert.rejects(
      startDashboard({db: t.db, host: '127.0.0.1', port, intervalMs: 200, log: silentLogger}),
      (error: Error & {code?: string; exitCode?: number}) => {
        assert.equal(error.code, 'port_in_use')
        assert.equal(error.exitCode, 2)
        assert.equal(error.message, `${port} on 127.0.0.1 is in use: pick another (--port)`)
        return true
      },
    )
  })

  it('without its database, pages answer 503 in one line and live pages say so, retrying', async () => {
    const pool = createPool('postgres://rvx:x@127.0.0.1:1/nothing', {connectTimeoutMs: 2000})
    const db = new Kysely<Database>({dialect: new PostgresDialect({pool})})
    const log: string[] = []
    const lost = await startDashboard({db, host: '127.0.0.1', port: 0, intervalMs: 200, log: {...silentLogger, warn: (_o, m) => log.push(String(m))}})
    try {
      const res = await get(`${lost.url}runs`)
      assert.equal(res.status, 503)
      assert.match(res.body, /The dashboard cannot reach the database right now; reload in a moment\./)
      assert.ok(!res.body.includes('127.0.0.1:1') && !res.body.includes('ECONNREFUSED'), 'no connection details for the viewer')
      const sse = await SseClient.open(`${lost.url}events?page=fleet`)
      try {
        const {event} = await sse.next((e) => e.event === 'regions')
        assert.match(JSON.parse(event.data)['live-status'], /cannot read the database \(retrying/)
        await sse.next((e) => e.event === 'regions', sse.events.indexOf(event) + 1)
      } finally {
        sse.close()
      }

      assert.ok(log.some((m) => /reading fleet failed/.test(m)))
    } finally {
      await lost.close()
      await db.destroy()
    }
  })

  it('without a token, only loopback host names are answered (a DNS name pointed at 127.0.0.1 gets nothing)', async () => {
    const port = new URL(base).port
    assert.equal((await get(`${base}/runs`, {host: `evil.example:${port}`})).status, 403)
    assert.equal((await get(`${base}/runs`, {host: `localhost:${port}`})).status, 200)
    assert.equal((await get(`${base}/runs`, {host: `[::1]:${port}`})).status, 200)
  })

  describe('with a token', () => {
    const token = randomBytes(16).toString('hex')
    let secured: Dashboard
    let url: string

    before(async () => {
      secured = await startDashboard({db: t.db, host: '127.0.0.1', port: 0, token, intervalMs: 200, log: silentLogger})
      url = secured.url.replace(/\/$/, '')
    })

    after(() => secured?.close())

    it('refuses every request without it or with a wrong one (401), and takes it as a bearer header', async () => {
      for (const path of ['/runs', `/runs/${done}`, '/fleet', '/events?page=runs', '/assets/live.js', `/runs/${done}/companies.csv`, '/healthz']) {
        const none = await get(url + path)
        assert.equal(none.status, 401, path)
        assert.match(none.body, /a token is required/)
        assert.ok(!none.body.includes(token))
        assert.equal((await get(url + path, {authorization: `Bearer ${token}x`})).status, 401, path)
        assert.equal((await get(url + path, {authorization: `Bearer ${token.slice(0, -1)}`})).status, 401, path)
      }

      const ok = await get(`${url}/runs`, {authorization: `Bearer ${token}`})
      assert.equal(ok.status, 200)
      assert.match(ok.body, new RegExp(`data-run="${done}"`))
      assert.ok(!ok.body.includes(token))
    })

    it('a one-time ?token= link becomes a cookie (not the token itself) and is taken out of the address', async () => {
      assert.equal((await get(`${url}/runs?token=${token}x`)).status, 401)
      const link = await get(`${url}/runs/${done}?token=${token}&x=1`)
      assert.equal(link.status, 303)
      assert.equal(link.headers.location, `/runs/${done}?x=1`)
      const setCookie = String(link.headers['set-cookie'])
      const value = new RegExp(`${COOKIE}=([^;]+)`).exec(setCookie)![1]
      assert.ok(!setCookie.includes(token), 'the cookie does not hold the token')
      assert.match(setCookie, /HttpOnly/)
      assert.match(setCookie, /SameSite=Lax/)

      const page = await get(`${url}/runs/${done}`, {cookie: `${COOKIE}=${value}`})
      assert.equal(page.status, 200)
      const sse = await SseClient.open(`${url}/events?page=runs`, {cookie: `${COOKIE}=${value}`})
      try {
        assert.equal(sse.status, 200)
        await sse.next((e) => e.event === 'regions')
      } finally {
        sse.close()
      }

      assert.equal((await get(`${url}/runs`, {cookie: `${COOKIE}=${value.slice(0, -2)}xx`})).status, 401)
      assert.equal((await get(`${url}/runs`, {cookie: `${COOKIE}=${token}`})).status, 401, 'the token is not the cookie')
    })
  })

  describe('rvx dashboard (spawned)', () => {
    const env = () => ({DATABASE_URL: t.url})

    it('refuses to listen beyond loopback without a token, and a short token, in one line with exit 2', async () => {
      const open = await rvx(['dashboard', '--host', '0.0.0.0', '--port', '0'], {env: env()})
      assert.equal(open.code, 2, open.stderr)
      assert.deepEqual(lines(open.stderr), [
        'Error: --host 0.0.0.0 is reachable from other machines: give a token (--token or RVX_DASHBOARD_TOKEN), or leave --host at 127.0.0.1',
      ])
      const weak = await rvx(['dashboard', '--host', '0.0.0.0', '--port', '0'], {env: {...env(), RVX_DASHBOARD_TOKEN: 'hunter2hunter2'}})
      assert.equal(weak.code, 2, weak.stderr)
      assert.equal(lines(weak.stderr).length, 1)
      // The value came from RVX_DASHBOARD_TOKEN: the error names that, not --token (issue 23, item 8).
      assert.match(weak.stderr, /^Error: RVX_DASHBOARD_TOKEN is too short \(14 characters\): use at least 16/)
      assert.ok(!weak.stderr.includes('hunter2hunter2'))
      const flag = await rvx(['dashboard', '--host', '0.0.0.0', '--port', '0', '--token', 'hunter2hunter2'], {env: env()})
      assert.match(flag.stderr, /^Error: --token is too short/)
      assert.ok(!hasStackTrace(open.stderr + weak.stderr + flag.stderr))
    })

    it('refuses a token of spaces or with control characters, naming where it came from', async () => {
      for (const [args, extra, pattern] of [
        [['--token', ' '.repeat(20)], {}, /^Error: --token must be printable characters without spaces or control characters/],
        [[], {RVX_DASHBOARD_TOKEN: ' '.repeat(20)}, /^Error: RVX_DASHBOARD_TOKEN must be printable characters without spaces/],
        [[], {RVX_DASHBOARD_TOKEN: `${randomBytes(12).toString('hex')}\u0007`}, /^Error: RVX_DASHBOARD_TOKEN must be printable/],
      ] as const) {
        const r = await rvx(['dashboard', '--host', '0.0.0.0', '--port', '0', ...args], {env: {...env(), ...extra}})
        assert.equal(r.code, 2, r.stderr)
        assert.equal(lines(r.stderr).length, 1, r.stderr)
        assert.match(r.stderr, pattern)
      }
    })

    it('answers /events for a run that does not exist with 404, and logs nothing about it', async () => {
      const server = spawnCli(['dashboard', '--port', '0', '--interval', '250ms'], env())
      try {
        const listening = await waitFor(
          'the dashboard to say where it listens',
          async () => /"url":"(http:\/\/127\.0\.0\.1:\d+)\/"/.exec(server.stderr()),
          30_000,
        )
        // The status line only: a stream (the 200 of before) does not end.
        const status = (url: string) =>
          new Promise<number>((resolve, reject) => {
            const request = http.get(url, (res) => {
              resolve(res.statusCode ?? 0)
              request.destroy()
            })
            request.on('error', reject)
          })
        assert.equal(await status(`${listening[1]}/events?page=run&id=999999999999999`), 404)
        assert.equal(await status(`${listening[1]}/events?page=fleet`), 200, 'other streams are served as before')
        // Ticks of the fleet stream (250 ms) would have logged a failed read of the missing run by now.
        await new Promise((resolve) => setTimeout(resolve, 1000))
        assert.doesNotMatch(server.stderr(), /999999999999999|reading .* failed/)
      } finally {
        server.child.kill('SIGTERM')
        await server.exited
      }
    })

    it('on 0.0.0.0 with a token: refuses requests without it, serves them with it, never logs it, and exits 143 on SIGTERM', async () => {
      const token = randomBytes(16).toString('hex')
      const server = spawnCli(['dashboard', '--host', '0.0.0.0', '--port', '0'], {...env(), RVX_DASHBOARD_TOKEN: token})
      const listening = await waitFor('the dashboard to say where it listens', async () => /"url":"http:\/\/0\.0\.0\.0:(\d+)\/"/.exec(server.stderr()), 30_000)
      const url = `http://127.0.0.1:${listening[1]}`
      assert.equal((await get(`${url}/runs`)).status, 401)
      assert.equal((await get(`${url}/runs`, {authorization: `Bearer ${token}`})).status, 200)
      assert.equal((await get(`${url}/runs?token=${token}`)).status, 303)
      server.child.kill('SIGTERM')
      assert.deepEqual(await server.exited, {code: 143, signal: null})
      assert.ok(!server.stderr().includes(token) && !server.stdout().includes(token), 'the token is never logged')
      assert.ok(!hasStackTrace(server.stderr()))
    })
  })
})
